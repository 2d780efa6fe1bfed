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
from uuid import UUID

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from projections import catalog_text
from projections.catalog import CATEGORY_BIT, PLATFORM_BIT, apps, bits, facet_counts

_MAX_TERMS = 12
RELATED_LIMIT = 6


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

# Each sort's keys (column, descending), the last one unique so pages never overlap.
SORTS: dict[str, tuple[tuple[str, bool], ...]] = {
    "relevant": (("rank", True), ("installs", True), ("name_key", False), ("id", False)),
    "popular": (("installs", True), ("name_key", False), ("id", False)),
    "new": (("listed_at", True), ("seq", True)),
    "name": (("name_key", False), ("id", False)),
    "rating": (("rating_score", True), ("rating_count", True), ("name_key", False), ("id", False)),
}

_PAGE_PART = len(FACETS)  # the part of the search statement that holds the page


def item_of(row: Any) -> dict[str, Any]:
    """A catalog list item from an `apps` row."""
    return {
        "id": row.id,
        "slug": row.slug,
        "name": row.name,
        "tagline": row.tagline,
        "categories": list(row.categories),
        "platforms": list(row.platforms),
        "installs": row.installs,
        "listed_at": row.listed_at,
        "rating": {"average": row.rating_average, "count": row.rating_count},
    }


# The columns of a list item (not the large `details`).
_ITEM_COLUMNS = [
    apps.c[name]
    for name in ("id", "slug", "name", "tagline", "categories", "platforms", "installs")
] + [apps.c.listed_at, apps.c.rating_average, apps.c.rating_count]


def _has(
    column: sa.ColumnElement[int], mask: int | sa.BindParameter[int]
) -> sa.ColumnElement[bool]:
    return column.op("&")(mask) != 0


def _filtered(source: sa.FromClause, wanted: Mapping[str, int], *, but: str = "") -> list[Any]:
    """The facet filters of a query on `source` (all but the facet named `but`)."""
    return [
        _has(source.c[f.column], wanted[f.name]) for f in FACETS if wanted[f.name] and f.name != but
    ]


def _rated(source: sa.FromClause, query: CatalogQuery) -> list[Any]:
    """The minimum-rating filter on `source` (apps without reviews have no average)."""
    if query.min_rating is None:
        return []
    return [source.c.rating_average >= query.min_rating]


@dataclass(frozen=True)
class _Sources:
    """Where a search counts (rows, the weight of a row, conditions) and pages."""

    counted: sa.FromClause
    weight: sa.ColumnElement[Any]
    counted_if: list[Any]
    paged: sa.FromClause
    paged_if: list[Any]


def _sources(conn: Connection, query: CatalogQuery, keys: list[str]) -> _Sources:
    listed = [apps.c.delisted_at.is_(None), *_rated(apps, query)]
    if query.min_rating is not None:
        # The running counts know no rating: count the listed apps rated high enough
        # (a range of the catalog_apps_rated index).
        return _Sources(apps, sa.func.count(), listed, apps, listed)
    # No text: the facets add up the projection's running counts; the page walks the
    # index of its sort.
    return _Sources(facet_counts, sa.func.sum(facet_counts.c.apps), [], apps, listed)


def _facet_part(
    part: int, facet: _Facet, sources: _Sources, wanted: Mapping[str, int]
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
    paged: sa.FromClause, conditions: list[Any], wanted: Mapping[str, int], query: CatalogQuery
) -> sa.Select[Any]:
    """(part, seq, 0, place) for the apps of the query's page, under every filter."""
    sort = SORTS[query.effective_sort]
    page = (
        sa.select(*(paged.c[k] for k in dict.fromkeys(["seq", *(k for k, _ in sort)])))
        .where(*conditions, *_filtered(paged, wanted))
        .order_by(*(paged.c[k].desc() if desc else paged.c[k] for k, desc in sort))
        .limit(query.page_size)
        .offset((query.page - 1) * query.page_size)
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
    keys = [k for k, _ in SORTS[query.effective_sort]]
    sources = _sources(conn, query, keys)
    parts = [_facet_part(i, f, sources, wanted) for i, f in enumerate(FACETS)]
    parts.append(_page_part(sources.paged, sources.paged_if, wanted, query))
    counts: dict[int, list[tuple[int, int]]] = {part: [] for part in range(len(FACETS))}
    placed: list[tuple[int, int]] = []
    for part, key, n, place in conn.execute(sa.union_all(*parts)).all():
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
        found = conn.execute(sa.select(*_ITEM_COLUMNS, apps.c.seq).where(apps.c.seq.in_(seqs)))
        rows = {r.seq: r for r in found}
    return CatalogPage(
        items=[item_of(rows[seq]) for seq in seqs],
        total=total,
        page=query.page,
        page_size=query.page_size,
        facets=facets,
    )


# The detail page's statements, built once with bound parameters: SQLAlchemy computes a
# statement's cache key once per object, not on every request.
_LISTED_BY_ID = sa.select(apps).where(
    apps.c.id == sa.bindparam("key", type_=sa.Uuid()), apps.c.delisted_at.is_(None)
)
_LISTED_BY_SLUG = sa.select(apps).where(
    apps.c.slug == sa.bindparam("key", type_=sa.String()), apps.c.delisted_at.is_(None)
)


def find_app(conn: Connection, id_or_slug: str) -> Any | None:
    """The listed app with this id or slug (a row), or None."""
    key: UUID | str
    try:
        statement, key = _LISTED_BY_ID, UUID(id_or_slug)
    except ValueError:
        statement, key = _LISTED_BY_SLUG, id_or_slug
    return conn.execute(statement, {"key": key}).first()


def find_any_app(conn: Connection, app_id: UUID) -> Any | None:
    """The app with this id, listed or not (a row), or None."""
    return conn.execute(sa.select(apps).where(apps.c.id == app_id)).first()


def _related_tiers() -> tuple[sa.Select[Any], ...]:
    """Best score first (both 3, category 2, platform 1), then most installed: one walk of
    the popular index per score that stops at the limit, rather than scoring and sorting
    every listed app (2.7 ms per detail at 2k apps, linear in the catalog)."""
    same_category = _has(apps.c.category_bits, sa.bindparam("categories", type_=sa.BigInteger()))
    same_platform = _has(apps.c.platform_bits, sa.bindparam("platforms", type_=sa.BigInteger()))
    return tuple(
        sa.select(*_ITEM_COLUMNS)
        .where(
            apps.c.delisted_at.is_(None),
            apps.c.id != sa.bindparam("app_id", type_=sa.Uuid()),
            tier,
        )
        .order_by(apps.c.installs.desc(), apps.c.name_key, apps.c.id)
        .limit(sa.bindparam("limit", type_=sa.Integer()))
        for tier in (
            sa.and_(same_category, same_platform),
            sa.and_(same_category, sa.not_(same_platform)),
            sa.and_(sa.not_(same_category), same_platform),
        )
    )


_RELATED_TIERS = _related_tiers()
_BITS_OF = sa.select(apps.c.category_bits, apps.c.platform_bits).where(
    apps.c.id == sa.bindparam("app_id", type_=sa.Uuid())
)


def related(conn: Connection, app_id: UUID, limit: int = RELATED_LIMIT) -> list[dict[str, Any]]:
    """Listed apps sharing a category (worth 2) and/or a platform (worth 1) with this one."""
    me = conn.execute(_BITS_OF, {"app_id": app_id}).first()
    if me is None:
        return []
    rows: list[Any] = []
    for tier in _RELATED_TIERS:
        if len(rows) >= limit:
            break
        params = {
            "app_id": app_id,
            "categories": me.category_bits,
            "platforms": me.platform_bits,
            "limit": limit - len(rows),
        }
        rows += conn.execute(tier, params).all()
    return [item_of(r) for r in rows]


def detail_of(row: Any) -> dict[str, Any]:
    """The public detail of an app row (without `related`)."""
    d = row.details
    contact = d["contact"]
    return {
        **item_of(row),
        "description": d["description"],
        "benefits": list(d.get("benefits", [])),
        "compatibility": list(d.get("compatibility", [])),
        "media": list(d.get("media", [])),
        "partner_url": d["partner_url"],
        "faqs": list(d.get("faqs", [])),
        "contact": {
            "email": contact["email"],
            "phone": contact["phone"],
            "mailto": f"mailto:{contact['email']}",
        },
        "scopes": list(d["scopes"]),
        "optional_scopes": list(d.get("optional_scopes", [])),
        "durations": list(d["durations"]),
        "developer_id": row.developer_id,
        "updated_at": row.updated_at,
    }
