"""The public catalog: listed apps, their full-text index, filters, sorts and facets.

Search uses SQLite FTS5 on the embedded store and a tsvector + GIN index on PostgreSQL.
`installs` counts the app's active installations.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any
from uuid import UUID

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql
from sqlalchemy.engine import Connection

from domain import values as v
from domain.app_listing import AppListing
from domain.installation import Installation
from projections.batch import Batch
from projections.db import UTCDateTime, metadata
from projections.projection import On, Projection, on

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

# PostgreSQL only: the search document (on SQLite the FTS5 table `catalog_fts` instead).
_pg_metadata = sa.MetaData()
pg_search = sa.Table(
    "catalog_search",
    _pg_metadata,
    sa.Column("seq", sa.BigInteger, primary_key=True, autoincrement=False),
    sa.Column("document", postgresql.TSVECTOR, nullable=False),
    sa.Index("catalog_search_document", "document", postgresql_using="gin"),
)

# bm25 weights of the FTS5 columns: name, tagline, description, benefits, tags.
_FTS_WEIGHTS = "10.0, 5.0, 1.0, 2.0, 4.0"
_MAX_TERMS = 12
SORTS = ("popular", "relevant", "new", "name")
RELATED_LIMIT = 6


class CatalogProjection(Projection):
    """Builds the catalog from AppListing events and installation activity."""

    name = "catalog"
    tables = (apps, app_installations)

    def handlers(self) -> Sequence[On[Any]]:
        return [
            on(AppListing.Listed, self._listed),
            on(AppListing.Updated, self._updated),
            on(AppListing.Delisted, self._delisted),
            on(Installation.Installed, self._installed),
            on(Installation.Authorized, self._activated),
            on(Installation.Renewed, self._activated),
            on(Installation.Cancelled, self._deactivated),
            on(Installation.Expired, self._deactivated),
        ]

    def create(self, conn: Connection) -> None:
        super().create(conn)
        # Indexes in the exact order of the sorts, so a page is an index walk.
        conn.exec_driver_sql(
            "CREATE INDEX IF NOT EXISTS catalog_apps_popular"
            " ON catalog_apps (installs DESC, name_key, id)"
        )
        conn.exec_driver_sql(
            "CREATE INDEX IF NOT EXISTS catalog_apps_by_name ON catalog_apps (name_key, id)"
        )
        conn.exec_driver_sql(
            "CREATE INDEX IF NOT EXISTS catalog_apps_newest"
            " ON catalog_apps (listed_at DESC, seq DESC)"
        )
        # Every column counting, filtering and sorting read: those scans never touch the
        # (large) rows, only the page's rows are read.
        conn.exec_driver_sql(
            "CREATE INDEX IF NOT EXISTS catalog_apps_scan ON catalog_apps"
            " (seq, delisted_at, category_bits, platform_bits, installs, name_key, id, listed_at)"
        )
        if conn.dialect.name == "postgresql":
            pg_search.create(conn, checkfirst=True)
        else:
            conn.exec_driver_sql(
                "CREATE VIRTUAL TABLE IF NOT EXISTS catalog_fts USING fts5("
                "name, tagline, description, benefits, tags, tokenize='unicode61')"
            )

    def drop(self, conn: Connection) -> None:
        super().drop(conn)
        if conn.dialect.name == "postgresql":
            pg_search.drop(conn, checkfirst=True)
        else:
            conn.exec_driver_sql("DROP TABLE IF EXISTS catalog_fts")

    # --- handlers ---------------------------------------------------------------------
    def _listed(self, batch: Batch, e: AppListing.Listed, position: int) -> None:
        details = dict(e.details)
        batch.add(
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
        batch.extra.setdefault("search", {})[position] = _document(position, details)

    def _updated(self, batch: Batch, e: AppListing.Updated, position: int) -> None:
        row = batch.require(apps, e.originator_id)
        details = {**row["details"], **e.changes}
        batch.update(
            apps, e.originator_id, details=details, updated_at=e.updated_at, **_columns(details)
        )
        batch.extra.setdefault("search", {})[row["seq"]] = _document(row["seq"], details)

    def _delisted(self, batch: Batch, e: AppListing.Delisted, position: int) -> None:
        batch.update(apps, e.originator_id, delisted_at=e.delisted_at)

    def _installed(self, batch: Batch, e: Installation.Installed, position: int) -> None:
        batch.add(
            app_installations,
            {"installation_id": e.originator_id, "app_id": e.app_id, "active": False},
        )

    def _activated(
        self, batch: Batch, e: Installation.Authorized | Installation.Renewed, position: int
    ) -> None:
        self._set_active(batch, e.originator_id, True)

    def _deactivated(
        self, batch: Batch, e: Installation.Cancelled | Installation.Expired, position: int
    ) -> None:
        self._set_active(batch, e.originator_id, False)

    def _set_active(self, batch: Batch, installation_id: UUID, active: bool) -> None:
        installation = batch.require(app_installations, installation_id)
        if installation["active"] == active:
            return
        batch.update(app_installations, installation_id, active=active)
        app = batch.require(apps, installation["app_id"])
        batch.update(apps, app["id"], installs=app["installs"] + (1 if active else -1))

    def finish(self, batch: Batch) -> None:
        documents = list(batch.extra.get("search", {}).values())
        if documents:
            _index(batch.conn, documents)


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
        conn.execute(
            sa.text(
                "INSERT INTO catalog_search (seq, document) VALUES (:seq,"
                " setweight(to_tsvector('simple', :name), 'A')"
                " || setweight(to_tsvector('simple', :tagline), 'B')"
                " || setweight(to_tsvector('simple', :tags), 'B')"
                " || setweight(to_tsvector('simple', :benefits), 'C')"
                " || setweight(to_tsvector('simple', :description), 'D'))"
                " ON CONFLICT (seq) DO UPDATE SET document = excluded.document"
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


def _matches(conn: Connection, terms: list[str], *, ranked: bool = True) -> sa.Subquery:
    """(seq, rank) of the apps whose search document has every term (as a prefix).

    Unranked (rank 0) for counting: ranking every match is the expensive part.
    """
    if conn.dialect.name == "postgresql":
        rank = "ts_rank(document, query)" if ranked else "0.0"
        return (
            sa.text(
                f"SELECT seq, {rank} AS rank"
                " FROM catalog_search, to_tsquery('simple', :match) AS query"
                " WHERE document @@ query"
            )
            .bindparams(match=" & ".join(f"{t}:*" for t in terms))
            .columns(sa.column("seq", sa.BigInteger), sa.column("rank", sa.Float))
            .subquery("matches")
        )
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


def _has(column: sa.Column[int], mask: int) -> sa.ColumnElement[bool]:
    return column.op("&")(mask) != 0


def search(conn: Connection, query: CatalogQuery) -> CatalogPage:
    """One page of listed apps matching the query, with its total and facet counts.

    Facets count under the current query: the category counts apply the text and the
    platform filter (not the category filter, so other categories can be offered), and
    the other way round for platforms.
    """
    terms = query.terms
    source: sa.FromClause = apps
    counted: sa.FromClause = apps
    rank: Any = sa.literal(0.0)
    if terms:
        matches = _matches(conn, terms)
        source = apps.join(matches, matches.c.seq == apps.c.seq)
        rank = matches.c.rank
        unranked = _matches(conn, terms, ranked=False)
        counted = apps.join(unranked, unranked.c.seq == apps.c.seq)
    listed = apps.c.delisted_at.is_(None)
    category_ok: sa.ColumnElement[bool] = sa.true()
    platform_ok: sa.ColumnElement[bool] = sa.true()
    if query.categories:
        category_ok = _has(apps.c.category_bits, bits(query.categories, CATEGORY_BIT))
    if query.platforms:
        platform_ok = _has(apps.c.platform_bits, bits(query.platforms, PLATFORM_BIT))

    # Facets: few distinct bit sets, so group by them and add the bits up here.
    by_categories = conn.execute(
        sa.select(apps.c.category_bits, sa.func.count())
        .select_from(counted)
        .where(listed, platform_ok)
        .group_by(apps.c.category_bits)
    ).all()
    by_platforms = conn.execute(
        sa.select(apps.c.platform_bits, sa.func.count())
        .select_from(counted)
        .where(listed, category_ok)
        .group_by(apps.c.platform_bits)
    ).all()
    wanted = bits(query.categories, CATEGORY_BIT)
    total = sum(n for b, n in by_categories if not wanted or b & wanted)
    category_counts = {
        c: sum(n for b, n in by_categories if b & bit) for c, bit in CATEGORY_BIT.items()
    }
    platform_counts = {
        p: sum(n for b, n in by_platforms if b & bit) for p, bit in PLATFORM_BIT.items()
    }
    order = {
        "relevant": [rank.desc(), apps.c.installs.desc(), apps.c.name_key, apps.c.id],
        "popular": [apps.c.installs.desc(), apps.c.name_key, apps.c.id],
        "new": [apps.c.listed_at.desc(), apps.c.seq.desc()],
        "name": [apps.c.name_key, apps.c.id],
    }[query.effective_sort]
    # The page's keys first (from the index), then only those rows.
    page = [
        seq
        for (seq,) in conn.execute(
            sa.select(apps.c.seq)
            .select_from(source)
            .where(listed, category_ok, platform_ok)
            .order_by(*order)
            .limit(query.page_size)
            .offset((query.page - 1) * query.page_size)
        )
    ]
    rows = {}
    if page:
        found = conn.execute(sa.select(*_ITEM_COLUMNS, apps.c.seq).where(apps.c.seq.in_(page)))
        rows = {r.seq: r for r in found}
    return CatalogPage(
        items=[item_of(rows[seq]) for seq in page],
        total=total,
        page=query.page,
        page_size=query.page_size,
        facets={"categories": category_counts, "platforms": platform_counts},
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
        "optional_scopes": list(d.get("optional_scopes", [])),
        "durations": list(d["durations"]),
        "developer_id": row.developer_id,
        "updated_at": row.updated_at,
    }
