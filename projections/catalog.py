"""The public catalog: listed apps, their full-text index, filters, sorts and facets.

Search uses SQLite FTS5 on the embedded store and a tsvector + GIN index on PostgreSQL.
`installs` counts the app's active installations. Facet counts of queries without text
come from `catalog_facet_counts`, which the projection keeps exact; with text they are
counted over the matches, computed once per query.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any
from uuid import UUID

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Connection

from domain import values as v
from domain.app_listing import AppListing
from domain.installation import Installation
from projections.db import UTCDateTime, metadata
from projections.runner import Batch, Handler, Projection, event_of, tracking

apps = sa.Table(
    "catalog_apps",
    metadata,
    sa.Column("id", sa.Uuid, primary_key=True),
    # The Listed event's position: a stable integer key for the full-text index.
    sa.Column("seq", sa.BigInteger, nullable=False, unique=True),
    sa.Column("slug", sa.String(64), nullable=False, index=True),
    sa.Column("name", sa.String(80), nullable=False),
    sa.Column("name_key", sa.String(80), nullable=False),
    sa.Column("tagline", sa.String(160), nullable=False),
    sa.Column("developer_id", sa.Uuid, nullable=False, index=True),
    sa.Column("details", sa.JSON, nullable=False),
    sa.Column("listed_at", UTCDateTime, nullable=False),
    sa.Column("updated_at", UTCDateTime, nullable=False),
    sa.Column("delisted_at", UTCDateTime, nullable=True),
    sa.Column("installs", sa.Integer, nullable=False, default=0),
    # Categories and platforms as they are shown, and as bit sets over the closed
    # vocabularies (values.CATEGORIES / PLATFORMS): filters and every facet count are then
    # one scan without joins.
    sa.Column("categories", sa.JSON, nullable=False),
    sa.Column("platforms", sa.JSON, nullable=False),
    sa.Column("category_bits", sa.Integer, nullable=False),
    sa.Column("platform_bits", sa.Integer, nullable=False),
)

CATEGORY_BIT = {slug: 1 << i for i, slug in enumerate(v.CATEGORIES)}
PLATFORM_BIT = {slug: 1 << i for i, slug in enumerate(v.PLATFORMS)}

# Which app each installation belongs to and whether it counts as an install now.
app_installations = sa.Table(
    "catalog_installations",
    metadata,
    sa.Column("installation_id", sa.Uuid, primary_key=True),
    sa.Column("app_id", sa.Uuid, nullable=False),
    sa.Column("active", sa.Boolean, nullable=False, default=False),
)

# Listed apps per combination of categories and platforms (bit sets). Queries without text
# add these up (a few thousand rows at most) instead of counting every app.
facet_counts = sa.Table(
    "catalog_facet_counts",
    metadata,
    sa.Column("category_bits", sa.Integer, primary_key=True, autoincrement=False),
    sa.Column("platform_bits", sa.Integer, primary_key=True, autoincrement=False),
    sa.Column("apps", sa.Integer, nullable=False),
    # Both group-bys of a search walk an index in their order (no sort, no row lookups).
    sa.Index("catalog_facet_counts_by_platform", "platform_bits", "category_bits", "apps"),
    sqlite_with_rowid=False,
)

# The app columns a text search filters, counts and sorts on.
SEARCH_COLUMNS = (
    "delisted_at",
    "category_bits",
    "platform_bits",
    "installs",
    "name_key",
    "id",
    "listed_at",
)

# PostgreSQL only: the search document (on SQLite the FTS5 table `catalog_fts` instead),
# and a copy of the app's SEARCH_COLUMNS, so a text search reads this table alone: joining
# its matches to catalog_apps cost as much as matching.
_pg_metadata = sa.MetaData()
pg_search = sa.Table(
    "catalog_search",
    _pg_metadata,
    sa.Column("seq", sa.BigInteger, primary_key=True, autoincrement=False),
    sa.Column("document", postgresql.TSVECTOR, nullable=False),
    *(sa.Column(c, apps.c[c].type, nullable=True) for c in SEARCH_COLUMNS),
    sa.Index("catalog_search_document", "document", postgresql_using="gin"),
)

# bm25 weights of the FTS5 columns: name, tagline, description, benefits, tags.
_FTS_WEIGHTS = "10.0, 5.0, 1.0, 2.0, 4.0"
_MAX_TERMS = 12
RELATED_LIMIT = 6


class CatalogProjection(Projection):
    """Builds the catalog from AppListing events and installation activity."""

    name = "catalog"
    tables = (apps, app_installations, facet_counts)

    def handlers(self) -> Mapping[type[Any], Handler]:
        return {
            event_of(AppListing, "Listed"): self._listed,
            event_of(AppListing, "Updated"): self._updated,
            event_of(AppListing, "Delisted"): self._delisted,
            event_of(Installation, "Installed"): self._installed,
            event_of(Installation, "Authorized"): self._activated,
            event_of(Installation, "Renewed"): self._activated,
            event_of(Installation, "Cancelled"): self._deactivated,
            event_of(Installation, "Expired"): self._deactivated,
        }

    def create(self, conn: Connection) -> None:
        inspector = sa.inspect(conn)
        if inspector.has_table(apps.name) and not inspector.has_table(facet_counts.name):
            # A catalog built by an earlier release has no facet counts: rebuild it by replay.
            self.drop(conn)
            conn.execute(tracking.update().where(tracking.c.name == self.name).values(position=0))
        super().create(conn)
        # One index per sort, in its exact order and covering the filters, so a page
        # without text is an index walk that never reads the (large) rows.
        conn.exec_driver_sql(
            "CREATE INDEX IF NOT EXISTS catalog_apps_popular ON catalog_apps"
            " (installs DESC, name_key, id, delisted_at, category_bits, platform_bits, seq)"
        )
        conn.exec_driver_sql(
            "CREATE INDEX IF NOT EXISTS catalog_apps_by_name ON catalog_apps"
            " (name_key, id, delisted_at, category_bits, platform_bits, seq)"
        )
        conn.exec_driver_sql(
            "CREATE INDEX IF NOT EXISTS catalog_apps_newest ON catalog_apps"
            " (listed_at DESC, seq DESC, delisted_at, category_bits, platform_bits)"
        )
        # Every column a text search reads from the apps it matched (looked up by seq).
        conn.exec_driver_sql(
            "CREATE INDEX IF NOT EXISTS catalog_apps_scan ON catalog_apps"
            " (seq, delisted_at, category_bits, platform_bits, installs, name_key, id, listed_at)"
        )
        if conn.dialect.name == "postgresql":
            pg_search.create(conn, checkfirst=True)
        else:
            # Prefix indexes for the lengths people type: every term is matched as a
            # prefix, and a short prefix otherwise merges the lists of all its terms.
            conn.exec_driver_sql(
                "CREATE VIRTUAL TABLE IF NOT EXISTS catalog_fts USING fts5("
                "name, tagline, description, benefits, tags, tokenize='unicode61',"
                " prefix='2 3 4 5 6 7')"
            )

    def drop(self, conn: Connection) -> None:
        super().drop(conn)
        if conn.dialect.name == "postgresql":
            pg_search.drop(conn, checkfirst=True)
        else:
            conn.exec_driver_sql("DROP TABLE IF EXISTS catalog_fts")

    # --- handlers ---------------------------------------------------------------------
    def _listed(self, batch: Batch, e: Any, position: int) -> None:
        details = dict(e.details)
        row = batch.add(
            apps,
            {
                "id": e.originator_id,
                "seq": position,
                "developer_id": e.developer_id,
                "details": details,
                "listed_at": e.listed_at,
                "updated_at": e.listed_at,
                "delisted_at": None,
                "installs": 0,
                **_columns(details),
            },
        )
        _count(batch, row, +1)
        batch.extra.setdefault("search", {})[position] = _document(position, details)
        _touch(batch, position)

    def _updated(self, batch: Batch, e: Any, position: int) -> None:
        row = batch.require(apps, e.originator_id)
        listed = row["delisted_at"] is None
        if listed:
            _count(batch, row, -1)
        details = {**row["details"], **e.changes}
        batch.update(
            apps, e.originator_id, details=details, updated_at=e.updated_at, **_columns(details)
        )
        if listed:
            _count(batch, row, +1)
        batch.extra.setdefault("search", {})[row["seq"]] = _document(row["seq"], details)
        _touch(batch, row["seq"])

    def _delisted(self, batch: Batch, e: Any, position: int) -> None:
        row = batch.require(apps, e.originator_id)
        if row["delisted_at"] is None:
            _count(batch, row, -1)
        batch.update(apps, e.originator_id, delisted_at=e.delisted_at)
        _touch(batch, row["seq"])

    def _installed(self, batch: Batch, e: Any, position: int) -> None:
        batch.add(
            app_installations,
            {"installation_id": e.originator_id, "app_id": e.app_id, "active": False},
        )

    def _activated(self, batch: Batch, e: Any, position: int) -> None:
        self._set_active(batch, e.originator_id, True)

    def _deactivated(self, batch: Batch, e: Any, position: int) -> None:
        self._set_active(batch, e.originator_id, False)

    def _set_active(self, batch: Batch, installation_id: UUID, active: bool) -> None:
        installation = batch.require(app_installations, installation_id)
        if installation["active"] == active:
            return
        batch.update(app_installations, installation_id, active=active)
        app = batch.require(apps, installation["app_id"])
        batch.update(apps, app["id"], installs=app["installs"] + (1 if active else -1))
        _touch(batch, app["seq"])

    def finish(self, batch: Batch) -> None:
        documents = list(batch.extra.get("search", {}).values())
        if documents:
            _index(batch.conn, documents)
        if batch.conn.dialect.name == "postgresql":
            # Search rows written above carry their columns already.
            touched = set(batch.extra.get("touched", {})) - set(batch.extra.get("search", {}))
            if touched:
                _copy_search_columns(batch.conn, sorted(touched))
        changes = batch.extra.get("facet_counts", {})
        _add_facet_counts(batch.conn, {key: n for key, n in changes.items() if n})


def _touch(batch: Batch, seq: int) -> None:
    """Notes an app whose search columns may have changed in this batch."""
    batch.extra.setdefault("touched", {})[seq] = True


def _copy_search_columns(conn: Connection, seqs: list[int]) -> None:
    """Copies the SEARCH_COLUMNS of these apps (already written) to their search rows."""
    assignments = ", ".join(f"{c} = a.{c}" for c in SEARCH_COLUMNS)
    conn.execute(
        sa.text(
            f"UPDATE catalog_search AS s SET {assignments} FROM catalog_apps AS a"
            " WHERE a.seq = s.seq AND a.seq = ANY(:seqs)"
        ),
        {"seqs": seqs},
    )


def _count(batch: Batch, row: Mapping[str, Any], n: int) -> None:
    """Adds `n` listed apps to the row's combination of categories and platforms."""
    key = (row["category_bits"], row["platform_bits"])
    changes = batch.extra.setdefault("facet_counts", {})
    changes[key] = changes.get(key, 0) + n


def _add_facet_counts(conn: Connection, changes: Mapping[tuple[int, int], int]) -> None:
    """Adds a batch's changes to the facet counts (in the batch's transaction)."""
    if not changes:
        return
    insert = postgresql.insert if conn.dialect.name == "postgresql" else sqlite.insert
    statement = insert(facet_counts)
    statement = statement.on_conflict_do_update(
        index_elements=[facet_counts.c.category_bits, facet_counts.c.platform_bits],
        set_={"apps": facet_counts.c.apps + statement.excluded.apps},
    )
    conn.execute(
        statement,
        [
            {"category_bits": c, "platform_bits": p, "apps": n}
            for (c, p), n in sorted(changes.items())
        ],
    )
    # No empty combinations: the table stays the same however the log was batched.
    conn.execute(facet_counts.delete().where(facet_counts.c.apps == 0))


def _columns(details: Mapping[str, Any]) -> dict[str, Any]:
    return {
        "slug": details["slug"],
        "name": details["name"],
        "name_key": str(details["name"]).casefold(),
        "tagline": details["tagline"],
        "categories": list(details["categories"]),
        "platforms": list(details["platforms"]),
        "category_bits": bits(details["categories"], CATEGORY_BIT),
        "platform_bits": bits(details["platforms"], PLATFORM_BIT),
    }


def bits(slugs: Iterable[str], vocabulary: Mapping[str, int]) -> int:
    """The bit set of these slugs (unknown ones have no bit)."""
    out = 0
    for slug in slugs:
        out |= vocabulary.get(slug, 0)
    return out


def _tags(details: Mapping[str, Any]) -> str:
    words = [*details["categories"], *details["platforms"]]
    words += [v.CATEGORIES.get(c, c) for c in details["categories"]]
    words += [v.PLATFORMS.get(p, p) for p in details["platforms"]]
    return " ".join(words)


def _document(seq: int, details: Mapping[str, Any]) -> dict[str, Any]:
    """An app's search document: name, tagline, description, benefits, tags."""
    return {
        "seq": seq,
        "name": details["name"],
        "tagline": details["tagline"],
        "description": details["description"],
        "benefits": " ".join(details.get("benefits", [])),
        "tags": _tags(details),
    }


def _index(conn: Connection, documents: list[dict[str, Any]]) -> None:
    """Writes (or rewrites) search documents in bulk."""
    if conn.dialect.name == "postgresql":
        # With the app's search columns (its row is written already): one row version.
        copied = ", ".join(SEARCH_COLUMNS)
        conn.execute(
            sa.text(
                f"INSERT INTO catalog_search (seq, document, {copied}) SELECT a.seq,"
                " setweight(to_tsvector('simple', :name), 'A')"
                " || setweight(to_tsvector('simple', :tagline), 'B')"
                " || setweight(to_tsvector('simple', :tags), 'B')"
                " || setweight(to_tsvector('simple', :benefits), 'C')"
                " || setweight(to_tsvector('simple', :description), 'D'),"
                f" {', '.join(f'a.{c}' for c in SEARCH_COLUMNS)}"
                " FROM catalog_apps AS a WHERE a.seq = :seq"
                " ON CONFLICT (seq) DO UPDATE SET document = excluded.document,"
                f" {', '.join(f'{c} = excluded.{c}' for c in SEARCH_COLUMNS)}"
            ),
            documents,
        )
    else:
        conn.execute(sa.text("DELETE FROM catalog_fts WHERE rowid = :seq"), documents)
        conn.execute(
            sa.text(
                "INSERT INTO catalog_fts (rowid, name, tagline, description, benefits, tags)"
                " VALUES (:seq, :name, :tagline, :description, :benefits, :tags)"
            ),
            documents,
        )


# --- queries ---------------------------------------------------------------------------
@dataclass(frozen=True)
class CatalogQuery:
    """A catalog search. Several categories (or platforms) match any of them."""

    q: str | None = None
    categories: tuple[str, ...] = ()
    platforms: tuple[str, ...] = ()
    sort: str | None = None
    page: int = 1
    page_size: int = 20

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
}

_PAGE_PART = len(FACETS)  # the part of the search statement that holds the page


def _fts_matches(terms: list[str], *, ranked: bool) -> sa.Subquery:
    """SQLite: (seq, rank) of the apps whose search document has every term (as a prefix).

    Unranked (rank 0) unless asked: ranking every match is the expensive part.
    """
    rank = f"-bm25(catalog_fts, {_FTS_WEIGHTS})" if ranked else "0.0"
    return (
        sa.text(
            f"SELECT rowid AS seq, {rank} AS rank FROM catalog_fts WHERE catalog_fts MATCH :match"
        )
        .bindparams(match=" ".join(f'"{t}"*' for t in terms))
        .columns(sa.column("seq", sa.BigInteger), sa.column("rank", sa.Float))
        .subquery("matches")
    )


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
    }


# The columns of a list item (not the large `details`).
_ITEM_COLUMNS = [
    apps.c[name]
    for name in ("id", "slug", "name", "tagline", "categories", "platforms", "installs")
] + [apps.c.listed_at]


def _has(column: sa.ColumnElement[int], mask: int) -> sa.ColumnElement[bool]:
    return column.op("&")(mask) != 0


def _filtered(source: sa.FromClause, wanted: Mapping[str, int], *, but: str = "") -> list[Any]:
    """The facet filters of a query on `source` (all but the facet named `but`)."""
    return [
        _has(source.c[f.column], wanted[f.name]) for f in FACETS if wanted[f.name] and f.name != but
    ]


def _candidates(conn: Connection, query: CatalogQuery, keys: list[str]) -> sa.CTE:
    """The listed apps whose search document has every term (as a prefix), with their
    facet bit sets and sort keys (`rank` only when sorting by it: ranking every match is
    the expensive part).

    Materialized: the full-text match runs once, and the facet counts and the page all
    read it.
    """
    ranked = "rank" in keys
    names = list(dict.fromkeys(["seq", *(f.column for f in FACETS), *keys]))
    if ranked:
        names.remove("rank")
    columns: list[sa.ColumnElement[Any]]
    if conn.dialect.name == "postgresql":
        match = sa.func.to_tsquery(
            sa.literal_column("'simple'"), " & ".join(f"{t}:*" for t in query.terms)
        )
        columns = [pg_search.c[name] for name in names]
        if ranked:
            columns.append(sa.func.ts_rank(pg_search.c.document, match).label("rank"))
        rows = sa.select(*columns).where(
            pg_search.c.document.op("@@")(match), pg_search.c.delisted_at.is_(None)
        )
    else:
        matches = _fts_matches(query.terms, ranked=ranked)
        columns = [apps.c[name] for name in names]
        if ranked:
            columns.append(matches.c.rank)
        rows = (
            sa.select(*columns)
            .select_from(apps.join(matches, matches.c.seq == apps.c.seq))
            .where(apps.c.delisted_at.is_(None))
        )
    return rows.cte("candidates").prefix_with("MATERIALIZED")


def _sources(
    conn: Connection, query: CatalogQuery, keys: list[str]
) -> tuple[sa.FromClause, sa.ColumnElement[Any], sa.FromClause, list[Any]]:
    """Where a search counts (rows, weight of a row) and pages (rows, conditions)."""
    if query.terms:
        candidates = _candidates(conn, query, keys)
        return candidates, sa.func.count(), candidates, []
    # No text: the facets add up the projection's running counts (a filter other than
    # the facets would count the apps instead); the page walks the index of its sort.
    return facet_counts, sa.func.sum(facet_counts.c.apps), apps, [apps.c.delisted_at.is_(None)]


def _facet_part(
    part: int,
    facet: _Facet,
    counted: sa.FromClause,
    weight: sa.ColumnElement[Any],
    wanted: Mapping[str, int],
) -> sa.Select[Any]:
    """(part, bit set, apps) for one facet, under every filter but its own."""
    column = counted.c[facet.column]
    return (
        sa.select(
            sa.literal_column(str(part)).label("part"),
            sa.cast(column, sa.BigInteger).label("key"),
            sa.cast(weight, sa.BigInteger).label("n"),
            sa.cast(sa.null(), sa.BigInteger).label("ordinal"),
        )
        .where(*_filtered(counted, wanted, but=facet.name))
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
    wanted = {f.name: f.wanted(query) for f in FACETS}
    keys = [k for k, _ in SORTS[query.effective_sort]]
    counted, weight, paged, conditions = _sources(conn, query, keys)
    parts = [_facet_part(i, f, counted, weight, wanted) for i, f in enumerate(FACETS)]
    parts.append(_page_part(paged, conditions, wanted, query))
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


def find_app(conn: Connection, id_or_slug: str) -> Any | None:
    """The listed app with this id or slug (a row), or None."""
    try:
        condition = apps.c.id == UUID(id_or_slug)
    except ValueError:
        condition = apps.c.slug == id_or_slug
    return conn.execute(sa.select(apps).where(condition, apps.c.delisted_at.is_(None))).first()


def find_any_app(conn: Connection, app_id: UUID) -> Any | None:
    """The app with this id, listed or not (a row), or None."""
    return conn.execute(sa.select(apps).where(apps.c.id == app_id)).first()


def related(conn: Connection, app_id: UUID, limit: int = RELATED_LIMIT) -> list[dict[str, Any]]:
    """Listed apps sharing a category (worth 2) and/or a platform (worth 1) with this one."""
    me = conn.execute(
        sa.select(apps.c.category_bits, apps.c.platform_bits).where(apps.c.id == app_id)
    ).first()
    if me is None:
        return []
    same_category = _has(apps.c.category_bits, me.category_bits)
    same_platform = _has(apps.c.platform_bits, me.platform_bits)
    score = sa.case((same_category, 2), else_=0) + sa.case((same_platform, 1), else_=0)
    rows = conn.execute(
        sa.select(*_ITEM_COLUMNS)
        .where(
            apps.c.delisted_at.is_(None),
            apps.c.id != app_id,
            sa.or_(same_category, same_platform),
        )
        .order_by(score.desc(), apps.c.installs.desc(), apps.c.name_key, apps.c.id)
        .limit(limit)
    ).all()
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
        "durations": list(d["durations"]),
        "developer_id": row.developer_id,
        "updated_at": row.updated_at,
    }
