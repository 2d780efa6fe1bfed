"""Catalog text search: the listed apps' words in memory, as bitmaps over dense slots.

A common term matches tens of thousands of apps at 100,000, and an exact total, exact facet
counts and a ranking all look at every match: in SQL that is 190-840 ns a match (see
docs/search-at-scale.md). Here each serving process keeps, per database, every listed app
in a dense `slot` and Python integers as bitmaps (one bit per slot): one per category, per
platform and per frequent prefix of the documents' words (and of the names' words). A
query ANDs its terms' bitmaps; the total and each facet count are `bit_count()`s, and the
page walks an order kept sorted in memory (or sorts a sparse match set).

What matches is defined once (projections/catalog_documents.py): a term matches an app
when it is a prefix of a word of its document. Relevance is the number of query terms
found in the app's name, then the popular order (installs, name, id).

Fresh: `catalog_apps.revision` is the position of a row's last change. Every search first
reads the largest revision (one index lookup); rows changed since the index last looked
are read and applied, so a search after a write the caller waited for sees it. A smaller
largest revision means the catalog was rebuilt: the index is built again.
"""

from __future__ import annotations

import bisect
import heapq
import threading
import weakref
from collections.abc import Callable, Iterable, Mapping
from typing import Any, Protocol

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from projections.catalog import CATEGORY_BIT, PLATFORM_BIT
from projections.catalog_prefixes import Prefixes, bitmap, slots_of
from projections.catalog_text_rows import HEAD, KEYS, TextApp, changed, listed, text_app
from projections.db import holding, long_work

# A prefix gets a bitmap when at least this share of the listed apps has it (and at least
# MIN_FREQUENT apps); rarer ones are looked up word by word.
FREQUENT_SHARE = 100
MIN_FREQUENT = 8
# A refresh over more log positions than this is long work (projections/db.py), not done on
# the serving thread (a position changes one app at most).
SHORT_REFRESH = 500


class TextQuery(Protocol):
    """What a text search needs of a CatalogQuery."""

    @property
    def terms(self) -> list[str]: ...
    @property
    def effective_sort(self) -> str: ...
    @property
    def categories(self) -> tuple[str, ...]: ...
    @property
    def platforms(self) -> tuple[str, ...]: ...
    @property
    def page(self) -> int: ...
    @property
    def page_size(self) -> int: ...
    @property
    def min_rating(self) -> float | None: ...


class TextIndex:
    """The listed apps of one catalog database, for text queries."""

    def __init__(self) -> None:
        self.head = -1  # the largest revision applied
        self.lock = threading.Lock()
        self._clear()

    def _clear(self) -> None:
        self.apps: list[TextApp | None] = []  # by slot
        self.slot_of: dict[int, int] = {}  # app id (int) -> slot
        self.free: list[int] = []
        self.documents = Prefixes()
        self.names = Prefixes()
        self.facets = {
            "categories": {slug: 0 for slug in CATEGORY_BIT},
            "platforms": {slug: 0 for slug in PLATFORM_BIT},
        }
        self.orders: dict[str, list[tuple[Any, ...]]] = {sort: [] for sort in KEYS}
        self.ratings: list[tuple[float, int]] = []  # (average, slot) of the rated apps
        self._rated: dict[float, int] = {}

    # --- keeping up with the read model ---------------------------------------------------
    def refresh(self, conn: Connection) -> None:
        """Applies the rows changed since the last look (or builds the index again)."""
        head = conn.execute(HEAD).scalar() or 0
        if head == self.head:
            return
        if head < self.head or self.head < 0:
            long_work("the text index is to be built")  # seconds at 100,000 apps
            self.build(conn.execute(listed(conn.dialect.name)))
        else:
            if head - self.head > SHORT_REFRESH:
                long_work("many apps changed since the text index last looked")
            for row in conn.execute(changed(conn.dialect.name), {"since": self.head}):
                self.apply(row)
        self.head = head

    def build(self, rows: Iterable[Any]) -> None:
        """Every listed app at once (bitmaps of the frequent prefixes from the word lists)."""
        self._clear()
        built = [text_app(r) for r in rows]
        self.apps = list(built)
        self.slot_of = {a.id: slot for slot, a in enumerate(built)}
        threshold = max(MIN_FREQUENT, len(built) // FREQUENT_SHARE)
        self.documents.build({slot: a.words for slot, a in enumerate(built)}, threshold)
        self.names.build({slot: a.name_words for slot, a in enumerate(built)}, threshold)
        for facet, vocabulary, column in (
            ("categories", CATEGORY_BIT, "category_bits"),
            ("platforms", PLATFORM_BIT, "platform_bits"),
        ):
            for slug, bit in vocabulary.items():
                chosen = (s for s, a in enumerate(built) if getattr(a, column) & bit)
                self.facets[facet][slug] = bitmap(chosen)
        for sort, key in KEYS.items():
            self.orders[sort] = sorted((*key(a), slot) for slot, a in enumerate(built))
        self.ratings = sorted(
            (a.rating_average, slot) for slot, a in enumerate(built) if a.rating_average is not None
        )

    def apply(self, row: Any) -> None:
        """One changed app row: listed (new or changed) or delisted."""
        app_id = row.id.int
        slot = self.slot_of.get(app_id)
        old = None if slot is None else self.apps[slot]
        new = text_app(row) if row.delisted_at is None else None
        if old is None and new is None:
            return
        if slot is None:
            slot = self.free.pop() if self.free else len(self.apps)
            if slot == len(self.apps):
                self.apps.append(None)
            self.slot_of[app_id] = slot
        self.documents.change(slot, old.words if old else (), new.words if new else ())
        self.names.change(slot, old.name_words if old else (), new.name_words if new else ())
        self._rated.clear()
        for app, sign in ((old, -1), (new, +1)):
            if app is not None:
                self._place(slot, app, sign)
        self.apps[slot] = new
        if new is None:
            del self.slot_of[app_id]
            self.free.append(slot)

    def _place(self, slot: int, app: TextApp, sign: int) -> None:
        """Adds (sign +1) or removes (-1) an app's entries in the orders and facets."""
        for sort, key in KEYS.items():
            entry = (*key(app), slot)
            order = self.orders[sort]
            if sign > 0:
                bisect.insort(order, entry)
            else:
                del order[bisect.bisect_left(order, entry)]
        if app.rating_average is not None:
            entry_r = (app.rating_average, slot)
            if sign > 0:
                bisect.insort(self.ratings, entry_r)
            else:
                del self.ratings[bisect.bisect_left(self.ratings, entry_r)]
        bit = 1 << slot
        for facet, vocabulary, bits in (
            ("categories", CATEGORY_BIT, app.category_bits),
            ("platforms", PLATFORM_BIT, app.platform_bits),
        ):
            for slug, mask in vocabulary.items():
                if bits & mask:
                    maps = self.facets[facet]
                    maps[slug] = maps[slug] | bit if sign > 0 else maps[slug] & ~bit

    # --- answering --------------------------------------------------------------------------
    def answer(self, query: TextQuery) -> tuple[list[int], int, dict[str, dict[str, int]]]:
        """(the page's seqs in order, the total, the facet counts) of a text query."""
        terms = query.terms
        matched = -1  # every slot
        for term in terms:
            matched &= self.documents.match(term)
        if matched < 0:
            matched = bitmap(self.slot_of.values())
        if query.min_rating is not None:
            matched &= self.rated(query.min_rating)
        chosen = {
            facet: self._any(facet, getattr(query, facet), vocabulary)
            for facet, vocabulary in (("categories", CATEGORY_BIT), ("platforms", PLATFORM_BIT))
        }
        facets: dict[str, dict[str, int]] = {}
        for facet, other in (("categories", "platforms"), ("platforms", "categories")):
            mask = chosen[other]
            under = matched if mask is None else matched & mask
            facets[facet] = {
                slug: (under & m).bit_count() for slug, m in self.facets[facet].items()
            }
        selected = matched
        for mask in chosen.values():
            if mask is not None:
                selected &= mask
        total = selected.bit_count()
        sort = query.effective_sort
        if sort == "relevant":
            tiers, order = self._tiers(selected, terms), self.orders["popular"]
        else:
            tiers, order = [selected], self.orders[sort]
        offset, limit = (query.page - 1) * query.page_size, query.page_size
        slots: list[int] = []
        for tier in tiers:
            n = tier.bit_count()
            if offset >= n:
                offset -= n
                continue
            slots += self._page(
                tier,
                n,
                KEYS["popular" if sort == "relevant" else sort],
                order,
                offset,
                limit - len(slots),
            )
            offset = 0
            if len(slots) >= limit:
                break
        seqs = [a.seq for a in (self.apps[s] for s in slots) if a is not None]
        return seqs, total, facets

    def _any(self, facet: str, slugs: Iterable[str], vocabulary: Mapping[str, int]) -> int | None:
        """The apps in any of these categories (or platforms); None: no filter (as
        catalog_search: unknown slugs filter nothing)."""
        known = [slug for slug in slugs if slug in vocabulary]
        if not known:
            return None
        out = 0
        for slug in known:
            out |= self.facets[facet][slug]
        return out

    def rated(self, least: float) -> int:
        """The apps whose shown average is at least `least`."""
        if least not in self._rated:
            start = bisect.bisect_left(self.ratings, (least, -1))
            self._rated[least] = bitmap(slot for _, slot in self.ratings[start:])
        return self._rated[least]

    def _tiers(self, selected: int, terms: list[str]) -> list[int]:
        """The selected apps by the number of terms found in their names, most first."""
        exact = [selected]  # exact[k]: apps with exactly k of the terms so far in the name
        for term in terms:
            named = self.names.match(term)
            grown = [0] * (len(exact) + 1)
            for k, apps_k in enumerate(exact):
                grown[k] |= apps_k & ~named
                grown[k + 1] |= apps_k & named
            exact = grown
        return exact[::-1]

    def _page(
        self,
        tier: int,
        count: int,
        key: Callable[[TextApp], tuple[Any, ...]],
        order: list[tuple[Any, ...]],
        offset: int,
        limit: int,
    ) -> list[int]:
        """Slots offset..offset+limit of a bitmap in an order: walk the order when the
        bitmap is dense, else sort its few slots."""
        wanted = offset + limit
        if count * count * 8 > wanted * len(order):
            member = tier.to_bytes(len(self.apps) // 8 + 1, "little")
            out: list[int] = []
            for entry in order:
                slot = entry[-1]
                if member[slot >> 3] >> (slot & 7) & 1:
                    out.append(slot)
                    if len(out) == wanted:
                        break
            return out[offset:]
        keyed = ((*key(self.apps[s]), s) for s in slots_of(tier))  # type: ignore[arg-type]
        return [entry[-1] for entry in heapq.nsmallest(wanted, keyed)][offset:]


_INDEXES: weakref.WeakKeyDictionary[sa.Engine, TextIndex] = weakref.WeakKeyDictionary()
_INDEXES_LOCK = threading.Lock()


def index_of(conn: Connection) -> TextIndex:
    """The text index of this connection's database (one per engine, built on first use)."""
    with _INDEXES_LOCK:
        index = _INDEXES.get(conn.engine)
        if index is None:
            index = _INDEXES[conn.engine] = TextIndex()
    return index


def search(conn: Connection, query: TextQuery) -> tuple[list[int], int, dict[str, dict[str, int]]]:
    """(the page's seqs in order, the total, the facet counts) of a query with text."""
    index = index_of(conn)
    with holding(index.lock):  # (a read on the serving thread waits for no build)
        index.refresh(conn)
        return index.answer(query)


def warm(conn: Connection) -> None:
    """Builds this database's text index now (a serving process at start-up), so the first
    text search does not wait for it (seconds at 100,000 apps)."""
    index = index_of(conn)
    with index.lock:
        index.refresh(conn)
