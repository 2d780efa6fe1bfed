"""Catalog queries: search with filters, sorts and facet counts; an app's detail; related apps.

Facet counts of queries without text come from `catalog_facet_counts`, which the catalog
projection keeps exact. A minimum rating is a filter the running counts do not know: under
one, the apps are counted. Queries with text are answered by projections/catalog_text.py
(results, total and facet counts); this module reads their page's rows.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from projections import catalog_text
from projections.catalog import CATEGORY_BIT, PLATFORM_BIT, apps, bits, facet_counts
from projections.catalog_detail import ITEM_COLUMNS, has_bits

# Re-exported: the detail queries live in catalog_detail (this module kept to searching).
from projections.catalog_detail import RELATED_LIMIT as RELATED_LIMIT
from projections.catalog_detail import detail_of as detail_of
from projections.catalog_detail import find_any_app as find_any_app
from projections.catalog_detail import find_app as find_app
from projections.catalog_detail import item_of as item_of
from projections.catalog_detail import related as related

_MAX_TERMS = 12


@dataclass(frozen=True)
class CatalogQuery:
    """A catalog search. Several categories (or platforms) match any of them."""

    q: str | None = None
    categories: tuple[str, ...] = ()
    platforms: tuple[str, ...] = ()
    sort: str | None = None
    page: int = 1
    page_size: int = 20
    min_rating: float | None = None  # apps whose shown average is at least this

    @property
    def terms(self) -> list[str]:
        """The words searched for (letters and digits only), at most a dozen."""
        return re.findall(r"[^\W_]+", (self.q or "").casefold())[:_MAX_TERMS]

    @property
    def effective_sort(self) -> str:
        """`relevant` when searching, `popular` otherwise, unless a sort is asked for."""
        if self.sort == "relevant" and not self.terms:
            return "popular"
        return self.sort or ("relevant" if self.terms else "popular")


@dataclass(frozen=True)
class CatalogPage:
    items: list[dict[str, Any]]
    total: int
    page: int
    page_size: int
    facets: dict[str, dict[str, int]] = field(default_factory=dict)


# A facet: a filter whose values are also counted. Its column holds a bit set over the
# vocabulary, in `apps`, in `facet_counts` and in the matches of a text search.
@dataclass(frozen=True)
class _Facet:
    name: str
    column: str
    vocabulary: Mapping[str, int]

    def wanted(self, query: CatalogQuery) -> int:
        """The bit set the query filters on (0: no filter)."""
        return bits(getattr(query, self.name), self.vocabulary)


FACETS = (
    _Facet("categories", "category_bits", CATEGORY_BIT),
    _Facet("platforms", "platform_bits", PLATFORM_BIT),
)

# Each sort's keys (column, descending), the last one unique so pages never overlap. Text
# queries (`relevant`) are ordered by projections/catalog_text.py.
SORTS: dict[str, tuple[tuple[str, bool], ...]] = {
    "popular": (("installs", True), ("name_key", False), ("id", False)),
    "new": (("listed_at", True), ("seq", True)),
    "name": (("name_key", False), ("id", False)),
    "rating": (("rating_score", True), ("rating_count", True), ("name_key", False), ("id", False)),
}

_PAGE_PART = len(FACETS)  # the part of the search statement that holds the page


def _filtered(source: sa.FromClause, wanted: Mapping[str, Any], *, but: str = "") -> list[Any]:
    """The facet filters of a query on `source` (all but the facet named `but`); a mask is
    a bit set (0: no filter) or a bound parameter."""
    return [
        has_bits(source.c[f.column], mask)
        for f in FACETS
        if (mask := wanted[f.name]) is not None
        and (isinstance(mask, sa.BindParameter) or mask)
        and f.name != but
    ]


@dataclass(frozen=True)
class _Sources:
    """Where a search counts (rows, the weight of a row, conditions) and pages."""

    counted: sa.FromClause
    weight: sa.ColumnElement[Any]
    counted_if: list[Any]
    paged: sa.FromClause
    paged_if: list[Any]


def _facet_part(
    part: int, facet: _Facet, sources: _Sources, wanted: Mapping[str, Any]
) -> sa.Select[Any]:
    """(part, bit set, apps) for one facet, under every filter but its own."""
    column = sources.counted.c[facet.column]
    return (
        sa.select(
            sa.literal_column(str(part)).label("part"),
            sa.cast(column, sa.BigInteger).label("key"),
            sa.cast(sources.weight, sa.BigInteger).label("n"),
            sa.cast(sa.null(), sa.BigInteger).label("ordinal"),
        )
        .where(*sources.counted_if, *_filtered(sources.counted, wanted, but=facet.name))
        .group_by(column)
    )


def _page_part(
    paged: sa.FromClause,
    conditions: list[Any],
    wanted: Mapping[str, Any],
    query: CatalogQuery,
    *,
    bound: bool = False,
) -> sa.Select[Any]:
    """(part, seq, 0, place) for the apps of the query's page, under every filter (the
    page's limit and offset bound as `b_limit`, `b_offset` if `bound`)."""
    sort = SORTS[query.effective_sort]
    limit: Any = sa.bindparam("b_limit", type_=sa.Integer()) if bound else query.page_size
    offset: Any = (
        sa.bindparam("b_offset", type_=sa.Integer())
        if bound
        else (query.page - 1) * query.page_size
    )
    page = (
        sa.select(*(paged.c[k] for k in dict.fromkeys(["seq", *(k for k, _ in sort)])))
        .where(*conditions, *_filtered(paged, wanted))
        .order_by(*(paged.c[k].desc() if desc else paged.c[k] for k, desc in sort))
        .limit(limit)
        .offset(offset)
        .subquery("page")
    )
    # A union keeps no order: each row carries its place, in the database's own ordering.
    place = sa.func.row_number().over(
        order_by=[page.c[k].desc() if desc else page.c[k] for k, desc in sort]
    )
    return sa.select(
        sa.literal_column(str(_PAGE_PART)),
        page.c.seq,
        sa.cast(sa.literal_column("0"), sa.BigInteger),
        place,
    )


# Searches without text, by shape: (sort, which facets filter, a minimum rating or not).
_BROWSES: dict[tuple[str, tuple[bool, ...], bool], sa.CompoundSelect[Any]] = {}


def _browse(
    query: CatalogQuery, wanted: Mapping[str, int]
) -> tuple[sa.CompoundSelect[Any], dict[str, Any]]:
    """The statement of a search without text and its parameters: built once per shape
    with bound parameters (SQLAlchemy computes a statement's cache key once per object,
    and building and keying it was most of a search's CPU)."""
    rated = query.min_rating is not None
    shape = (query.effective_sort, tuple(bool(wanted[f.name]) for f in FACETS), rated)
    statement = _BROWSES.get(shape)
    if statement is None:
        masks = {
            f.name: sa.bindparam(f"b_{f.name}", type_=sa.BigInteger()) if wanted[f.name] else 0
            for f in FACETS
        }
        listed: list[Any] = [apps.c.delisted_at.is_(None)]
        if rated:
            # The running counts know no rating: count the listed apps rated high enough
            # (a range of the catalog_apps_rated index).
            listed.append(apps.c.rating_average >= sa.bindparam("b_min_rating", type_=sa.Float()))
            sources = _Sources(apps, sa.func.count(), listed, apps, listed)
        else:
            # The facets add up the projection's running counts; the page walks the index
            # of its sort.
            sources = _Sources(facet_counts, sa.func.sum(facet_counts.c.apps), [], apps, listed)
        parts = [_facet_part(i, f, sources, masks) for i, f in enumerate(FACETS)]
        parts.append(_page_part(apps, listed, masks, query, bound=True))
        statement = _BROWSES.setdefault(shape, sa.union_all(*parts))
    params: dict[str, Any] = {f"b_{f.name}": wanted[f.name] for f in FACETS if wanted[f.name]}
    params.update(b_limit=query.page_size, b_offset=(query.page - 1) * query.page_size)
    if rated:
        params["b_min_rating"] = query.min_rating
    return statement, params


def search(conn: Connection, query: CatalogQuery) -> CatalogPage:
    """One page of listed apps matching the query, with its total and facet counts.

    Facets count under the current query: the category counts apply the text and the
    platform filter (not the category filter, so other categories can be offered), and
    the other way round for platforms. One statement answers it all: a part per facet
    (bit set, count) and a part with the page's keys in order.
    """
    if query.terms:
        return _page_of(conn, query, *catalog_text.search(conn, query))
    wanted = {f.name: f.wanted(query) for f in FACETS}
    statement, params = _browse(query, wanted)
    counts: dict[int, list[tuple[int, int]]] = {part: [] for part in range(len(FACETS))}
    placed: list[tuple[int, int]] = []
    for part, key, n, place in conn.execute(statement, params).all():
        if part == _PAGE_PART:
            placed.append((place, key))
        else:
            counts[part].append((key, n))
    seqs = [seq for _, seq in sorted(placed)]
    facets = {
        f.name: {
            slug: sum(n for b, n in counts[part] if b & bit) for slug, bit in f.vocabulary.items()
        }
        for part, f in enumerate(FACETS)
    }
    # The first facet's counts apply every other filter: its groups that pass its own
    # filter add up to the total.
    first = FACETS[0]
    total = sum(n for b, n in counts[0] if not wanted[first.name] or b & wanted[first.name])
    return _page_of(conn, query, seqs, total, facets)


def _page_of(
    conn: Connection, query: CatalogQuery, seqs: list[int], total: int, facets: Any
) -> CatalogPage:
    """The page of these apps (by seq, in order), with the total and facet counts."""
    rows = {}
    if seqs:
        found = conn.execute(_ITEMS_BY_SEQ, {"b_seqs": seqs})
        rows = {r.seq: r for r in found}
    return CatalogPage(
        items=[item_of(rows[seq]) for seq in seqs],
        total=total,
        page=query.page,
        page_size=query.page_size,
        facets=facets,
    )


# A page's items by seq, built once (as the statements below, and `_browse`'s).
_ITEMS_BY_SEQ = sa.select(*ITEM_COLUMNS, apps.c.seq).where(
    apps.c.seq.in_(sa.bindparam("b_seqs", expanding=True))
)
