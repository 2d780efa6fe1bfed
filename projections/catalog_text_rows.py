"""The listed apps' rows as the text index reads them (projections/catalog_text.py):
the columns it keeps, each sort's key, and the statements that read them."""

from __future__ import annotations

import sys
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import sqlalchemy as sa

from projections.catalog import apps
from projections.catalog_documents import document_words, name_words


@dataclass(frozen=True, slots=True)
class TextApp:
    seq: int
    id: int
    installs: int
    name_key: str
    listed_us: int
    rating_average: float | None
    rating_count: int
    rating_score: float
    category_bits: int
    platform_bits: int
    # Distinct words, each string shared by every app that has it (memory).
    words: tuple[str, ...]
    name_words: tuple[str, ...]


_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_MICROSECOND = timedelta(microseconds=1)

# Each sort's key of an app, smallest first (as SORTS in catalog_search orders them).
KEYS: dict[str, Callable[[TextApp], tuple[Any, ...]]] = {
    "popular": lambda a: (-a.installs, a.name_key, a.id),
    "new": lambda a: (-a.listed_us, -a.seq),
    "name": lambda a: (a.name_key, a.id),
    "rating": lambda a: (-a.rating_score, -a.rating_count, a.name_key, a.id),
}

_COLUMNS = [
    apps.c[name]
    for name in (
        "id",
        "seq",
        "name",
        "tagline",
        "categories",
        "platforms",
        "name_key",
        "installs",
        "listed_at",
        "delisted_at",
        "rating_average",
        "rating_count",
        "rating_score",
        "category_bits",
        "platform_bits",
    )
]


def _text_columns(dialect: str) -> list[sa.ColumnElement[Any]]:
    """The description and the benefits (joined by spaces) out of the app's `details`,
    without reading the rest of that large JSON document."""
    if dialect == "postgresql":
        return [
            sa.literal_column("catalog_apps.details ->> 'description'").label("description"),
            sa.literal_column(
                "(SELECT string_agg(b, ' ') FROM"
                " json_array_elements_text(catalog_apps.details -> 'benefits') AS b)"
            ).label("benefits"),
        ]
    return [
        sa.literal_column("json_extract(catalog_apps.details, '$.description')").label(
            "description"
        ),
        sa.literal_column(
            "(SELECT group_concat(value, ' ') FROM json_each(catalog_apps.details, '$.benefits'))"
        ).label("benefits"),
    ]


HEAD = sa.select(sa.func.max(apps.c.revision))


def changed(dialect: str) -> sa.Select[Any]:
    return sa.select(*_COLUMNS, *_text_columns(dialect)).where(
        apps.c.revision > sa.bindparam("since", type_=sa.BigInteger)
    )


def listed(dialect: str) -> sa.Select[Any]:
    """Every listed app, read in parts (the rows are not all held at once)."""
    return (
        sa.select(*_COLUMNS, *_text_columns(dialect))
        .where(apps.c.delisted_at.is_(None))
        .execution_options(yield_per=2000)
    )


def text_app(row: Any) -> TextApp:
    listed_at = row.listed_at
    if listed_at.tzinfo is None:
        listed_at = listed_at.replace(tzinfo=UTC)
    return TextApp(
        seq=row.seq,
        id=row.id.int,
        installs=row.installs,
        name_key=row.name_key,
        listed_us=(listed_at - _EPOCH) // _MICROSECOND,
        rating_average=row.rating_average,
        rating_count=row.rating_count,
        rating_score=row.rating_score,
        category_bits=row.category_bits,
        platform_bits=row.platform_bits,
        words=_shared(
            document_words(
                row.name,
                row.tagline,
                row.description,
                row.benefits or "",
                row.categories,
                row.platforms,
            )
        ),
        name_words=_shared(name_words(row.name)),
    )


def _shared(words: frozenset[str]) -> tuple[str, ...]:
    return tuple(map(sys.intern, words))
