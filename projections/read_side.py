"""The read side assembled: the engine, every projection and the runner over them."""

from __future__ import annotations

from domain.store import AppStore
from projections import recently_viewed
from projections.catalog import CatalogProjection
from projections.db import create_read_engine
from projections.incidents import IncidentsProjection
from projections.my_apps import MyAppsProjection
from projections.runner import DEFAULT_BATCH, Projection, Projector


def all_projections() -> list[Projection]:
    """Every read model built from the log, by name: catalog, my_apps, incidents."""
    return [CatalogProjection(), MyAppsProjection(), IncidentsProjection()]


def build_projector(
    store: AppStore,
    database_url: str,
    *,
    names: list[str] | None = None,
    batch_size: int = DEFAULT_BATCH,
    setup: bool = True,
) -> Projector:
    """A runner over the named projections (default all), tables created if `setup`."""
    projections = [p for p in all_projections() if names is None or p.name in names]
    if names is not None and len(projections) != len(set(names)):
        known = ", ".join(p.name for p in all_projections())
        raise ValueError(f"unknown projection in {names}; known: {known}")
    projector = Projector(
        store, create_read_engine(database_url), projections, batch_size=batch_size
    )
    if setup:
        projector.setup()
        with projector.engine.begin() as conn:
            recently_viewed.create(conn)
    return projector
