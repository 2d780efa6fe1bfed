"""The read side assembled: the engine, every projection and the runner over them."""

from __future__ import annotations

import sqlalchemy as sa

from application.store import Store
from projections import recently_viewed
from projections.catalog import CatalogProjection
from projections.db import create_read_engine
from projections.incidents import IncidentsProjection
from projections.my_apps import MyAppsProjection
from projections.notifications import NotificationsProjection
from projections.projection import Projection
from projections.reviews import ReviewsProjection
from projections.runner import DEFAULT_BATCH, Projector
from projections.webhook_deliveries import WebhookDeliveriesProjection


def all_projections() -> list[Projection]:
    """Every read model built from the log, by name: catalog, my_apps, incidents,
    webhook_deliveries, notifications, reviews."""
    return [
        CatalogProjection(),
        MyAppsProjection(),
        IncidentsProjection(),
        WebhookDeliveriesProjection(),
        NotificationsProjection(),
        ReviewsProjection(),
    ]


def build_projector(
    store: Store,
    database_url: str,
    *,
    names: list[str] | None = None,
    batch_size: int = DEFAULT_BATCH,
    setup: bool = True,
    timeout: int = 2,
) -> Projector:
    """A runner over the named projections (default all), tables created if `setup`;
    `timeout`: seconds a read waits for a connection or a lock (projections.db)."""
    projections = [p for p in all_projections() if names is None or p.name in names]
    if names is not None and len(projections) != len(set(names)):
        known = ", ".join(p.name for p in all_projections())
        raise ValueError(f"unknown projection in {names}; known: {known}")
    projector = Projector(
        store, create_read_engine(database_url, timeout=timeout), projections, batch_size=batch_size
    )
    if setup:
        projector.setup()
        with projector.engine.begin() as conn:
            recently_viewed.create(conn)
    return projector


def snapshot(projector: Projector) -> dict[str, list[tuple[object, ...]]]:
    """Every row of every projection table, sorted: to compare live and replayed models."""
    out: dict[str, list[tuple[object, ...]]] = {}
    with projector.engine.connect() as conn:
        for projection in projector.projections.values():
            for table in projection.tables:
                rows = conn.execute(sa.select(table)).all()
                out[table.name] = sorted((tuple(r) for r in rows), key=repr)
    return out
