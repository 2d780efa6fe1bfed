"""An app's search document and its words: the one definition of what text search matches.

A document is the app's name, tagline, description, benefits and tags (its categories and
platforms, as slugs and as labels). Its words are the runs of letters and digits of the
casefolded text (`[^\\W_]+`), exactly as the words of a query (CatalogQuery.terms); a query
term matches a document when it is a prefix of one of the document's words.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Iterable, Mapping
from typing import Any

from domain import values as v

_WORD = re.compile(r"[^\W_]+")


# ASCII text: every character but a letter or a digit separates words (as `_WORD`).
_ASCII_SEPARATORS = str.maketrans({chr(c): " " for c in range(128) if not chr(c).isalnum()})


def words(text: str) -> list[str]:
    """The words of a text (or of a query), casefolded."""
    if text.isascii():  # the same words, found faster
        return text.lower().translate(_ASCII_SEPARATORS).split()
    return _WORD.findall(text.casefold())


def _tags(details: Mapping[str, Any]) -> str:
    words = [*details["categories"], *details["platforms"]]
    words += [v.CATEGORIES.get(c, c) for c in details["categories"]]
    words += [v.PLATFORMS.get(p, p) for p in details["platforms"]]
    return " ".join(words)


def document_words(
    name: str,
    tagline: str,
    description: str,
    benefits: str,
    categories: Iterable[str],
    platforms: Iterable[str],
) -> frozenset[str]:
    """The distinct words of an app's search document (`benefits` joined by spaces)."""
    main = words(" ".join((name, tagline, description, benefits)))
    return frozenset(main).union(_tag_words(tuple(categories), tuple(platforms)))


@functools.lru_cache(maxsize=4096)
def _tag_words(categories: tuple[str, ...], platforms: tuple[str, ...]) -> frozenset[str]:
    return frozenset(words(_tags({"categories": categories, "platforms": platforms})))


def name_words(name: str) -> frozenset[str]:
    """The distinct words of an app's name (relevance counts the terms found there)."""
    return frozenset(words(name))
