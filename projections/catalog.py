"""The public catalog: listed apps, filters, sorts and facets.

Text search is answered by an in-memory index of each serving process
(projections/catalog_text.py), which reads the rows changed since it last looked by their
`revision`. `installs` counts the app's active installations; the rating columns come
from its reviews (projections/catalog_ratings.py). Facet counts of queries without text
come from `catalog_facet_counts`, which the projection keeps exact.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any
from uuid import UUID

import sqlalchemy as sa
from sqlalchemy.dialects import sqlite
from sqlalchemy.engine import Connection

from domain import values as v
from domain.app_listing import AppListing
from domain.installation import Installation
from projections import catalog_ratings as ratings
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
    # The counted reviews' stars and number, the average shown (one decimal, None without
    # reviews: `min_rating` filters on it) and the Bayesian score `sort=rating` ranks by.
    sa.Column("rating_sum", sa.Integer, nullable=False, default=0),
    sa.Column("rating_count", sa.Integer, nullable=False, default=0),
    sa.Column("rating_average", sa.Float, nullable=True),
    sa.Column("rating_score", sa.Float, nullable=False, default=ratings.PRIOR_MEAN),
    # Categories and platforms as they are shown, and as bit sets over the closed
    # vocabularies (values.CATEGORIES / PLATFORMS): filters and every facet count are then
    # one scan without joins.
    sa.Column("categories", sa.JSON, nullable=False),
    sa.Column("platforms", sa.JSON, nullable=False),
    sa.Column("category_bits", sa.Integer, nullable=False),
    sa.Column("platform_bits", sa.Integer, nullable=False),
    # The position of the row's last change: text search (catalog_text) reads what changed.
    sa.Column("revision", sa.BigInteger, nullable=False, default=0, index=True),
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


class CatalogProjection(Projection):
    """Builds the catalog from AppListing events and installation activity."""

    name = "catalog"
    # Apply time per event of the bench log, relative (see Projection); 3.0, not the 4.0 its
    # own apply time gives: in two processes the catalog's steps wait for the server (its ten
    # indexes) while the others' use the CPU, and the split this gives (catalog with
    # notifications and reviews) came out faster (60k catch-up 3.35-3.44 s against 3.54-3.64;
    # 1M replay 45.5-46.1 s against 48.8-51.9).
    replay_cost = 3.0
    tables = (apps, app_installations, facet_counts, ratings.counted_reviews)
    # 2: the search tables (FTS5 prefix indexes, PostgreSQL search columns) changed.
    # 3: ratings, and the sort indexes cover `rating_average`. 4: `revision`, no full-text
    # tables (text search: projections/catalog_text.py).
    version = 4

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
            *(on(event_class, self._reviewed) for event_class in ratings.EVENTS),
        ]

    def prepare(self, batch: Batch, events: Sequence[Any]) -> None:
        """The installations and apps the events need that earlier steps wrote: one round
        trip each (not those the events create)."""
        made = {e.originator_id: e for e in events if isinstance(e, _MADE)}
        ids = {e.originator_id for e in events if isinstance(e, _ACTIVITY)} - made.keys()
        app_ids = {row["app_id"] for row in batch.get_many(app_installations, ids)}
        app_ids.update(e.originator_id for e in events if isinstance(e, _CHANGED))
        app_ids.update(e.app_id for e in made.values() if isinstance(e, Installation.Installed))
        batch.get_many(apps, app_ids - made.keys())

    def create(self, conn: Connection) -> None:
        super().create(conn)
        # One index per sort, in its exact order and covering the filters, so a page
        # without text is an index walk that never reads the (large) rows.
        filters = "delisted_at, category_bits, platform_bits, rating_average"
        for name, order in (
            ("popular", f"installs DESC, name_key, id, {filters}, seq"),
            ("by_name", f"name_key, id, {filters}, seq"),
            ("newest", f"listed_at DESC, seq DESC, {filters}"),
            ("by_rating", f"rating_score DESC, rating_count DESC, name_key, id, {filters}, seq"),
        ):
            conn.exec_driver_sql(
                f"CREATE INDEX IF NOT EXISTS catalog_apps_{name} ON catalog_apps ({order})"
            )
        # Facet counts under a minimum rating: a range of this index, without the rows.
        conn.exec_driver_sql(
            "CREATE INDEX IF NOT EXISTS catalog_apps_rated ON catalog_apps"
            " (rating_average, delisted_at, category_bits, platform_bits)"
        )

    def drop(self, conn: Connection) -> None:
        super().drop(conn)
        # The full-text tables of releases before the text index (projections/catalog_text).
        if conn.dialect.name == "postgresql":
            conn.exec_driver_sql("DROP TABLE IF EXISTS catalog_search")
        else:
            conn.exec_driver_sql("DROP TABLE IF EXISTS catalog_fts")

    # --- handlers ---------------------------------------------------------------------
    def _listed(self, batch: Batch, e: AppListing.Listed, position: int) -> None:
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
                "revision": position,
                **ratings.rating_columns(0, 0),
                **_columns(details),
            },
        )
        _count(batch, row, +1)

    def _updated(self, batch: Batch, e: AppListing.Updated, position: int) -> None:
        row = batch.require(apps, e.originator_id)
        listed = row["delisted_at"] is None
        if listed:
            _count(batch, row, -1)
        details = {**row["details"], **e.changes}
        batch.update(
            apps,
            e.originator_id,
            details=details,
            updated_at=e.updated_at,
            revision=position,
            **_columns(details),
        )
        if listed:
            _count(batch, row, +1)

    def _delisted(self, batch: Batch, e: AppListing.Delisted, position: int) -> None:
        row = batch.require(apps, e.originator_id)
        if row["delisted_at"] is None:
            _count(batch, row, -1)
        batch.update(apps, e.originator_id, delisted_at=e.delisted_at, revision=position)

    def _installed(self, batch: Batch, e: Installation.Installed, position: int) -> None:
        batch.add(
            app_installations,
            {"installation_id": e.originator_id, "app_id": e.app_id, "active": False},
        )

    def _activated(
        self, batch: Batch, e: Installation.Authorized | Installation.Renewed, position: int
    ) -> None:
        self._set_active(batch, e.originator_id, True, position)

    def _deactivated(
        self, batch: Batch, e: Installation.Cancelled | Installation.Expired, position: int
    ) -> None:
        self._set_active(batch, e.originator_id, False, position)

    def _set_active(self, batch: Batch, installation_id: UUID, active: bool, position: int) -> None:
        installation = batch.require(app_installations, installation_id)
        if installation["active"] == active:
            return
        batch.update(app_installations, installation_id, active=active)
        app = batch.require(apps, installation["app_id"])
        installs = app["installs"] + (1 if active else -1)
        batch.update(apps, app["id"], installs=installs, revision=position)

    def _reviewed(self, batch: Batch, e: ratings.ReviewEvent, position: int) -> None:
        change = ratings.rating_change(batch, e)
        if change is None:
            return
        app_id, stars, reviews = change
        app = batch.require(apps, app_id)
        total, count = app["rating_sum"] + stars, app["rating_count"] + reviews
        batch.update(apps, app_id, revision=position, **ratings.rating_columns(total, count))

    def finish(self, batch: Batch) -> None:
        changes = batch.extra.get("facet_counts", {})
        _add_facet_counts(batch.conn, {key: n for key, n in changes.items() if n})


# The installation events that change whether an installation counts in its app's installs.
_ACTIVITY = Installation.Authorized | Installation.Renewed | Installation.Cancelled
_ACTIVITY |= Installation.Expired
_MADE = Installation.Installed | AppListing.Listed  # events creating their row
_CHANGED = AppListing.Updated | AppListing.Delisted


def _count(batch: Batch, row: Mapping[str, Any], n: int) -> None:
    """Adds `n` listed apps to the row's combination of categories and platforms."""
    key = (row["category_bits"], row["platform_bits"])
    changes = batch.extra.setdefault("facet_counts", {})
    changes[key] = changes.get(key, 0) + n


def _add_facet_counts(conn: Connection, changes: Mapping[tuple[int, int], int]) -> None:
    """Adds a batch's changes to the facet counts (in the batch's transaction)."""
    if not changes:
        return
    upsert, delete_empty = _facet_statements(conn.dialect.name)
    ordered = sorted(changes.items())
    if conn.dialect.name == "postgresql":  # one statement, its rows as three arrays
        columns = {"c": [c for (c, _), _ in ordered], "p": [p for (_, p), _ in ordered]}
        conn.execute(upsert, {**columns, "n": [n for _, n in ordered]})
    else:
        rows = [{"category_bits": c, "platform_bits": p, "apps": n} for (c, p), n in ordered]
        conn.execute(upsert, rows)
    # No empty combinations: the table stays the same however the log was batched. Only a
    # count that went down can have reached 0 (no change is 0: `finish` leaves those out).
    if any(n < 0 for n in changes.values()):
        conn.execute(delete_empty)


_FACET_STATEMENTS: dict[str, tuple[Any, Any]] = {}


def _facet_statements(dialect: str) -> tuple[Any, Any]:
    """The facet counts' upsert and the delete of empty combinations, built once per
    dialect (SQLAlchemy computes a statement's cache key once per object)."""
    found = _FACET_STATEMENTS.get(dialect)
    if found is None:
        upsert: Any
        if dialect == "postgresql":  # an executemany would be a pipeline, compiled each time
            upsert = sa.text(
                "INSERT INTO catalog_facet_counts AS f (category_bits, platform_bits, apps)"
                " SELECT * FROM unnest(CAST(:c AS INTEGER[]), CAST(:p AS INTEGER[]),"
                " CAST(:n AS INTEGER[])) ON CONFLICT (category_bits, platform_bits)"
                " DO UPDATE SET apps = f.apps + excluded.apps"
            )
        else:
            statement = sqlite.insert(facet_counts)
            upsert = statement.on_conflict_do_update(
                index_elements=[facet_counts.c.category_bits, facet_counts.c.platform_bits],
                set_={"apps": facet_counts.c.apps + statement.excluded.apps},
            )
        found = (upsert, facet_counts.delete().where(facet_counts.c.apps == 0))
        _FACET_STATEMENTS[dialect] = found
    return found


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
