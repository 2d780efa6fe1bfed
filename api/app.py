"""The Starlette application: the route table, the store, the read side, background work.

`create_app(settings)` is the factory. Route modules read `request.app.state`:
`store` (AppStore), `settings`, `projector` (read-model engine + runner),
`consistency_timeout` (seconds a read-your-writes wait may take).
"""

from __future__ import annotations

import contextlib
import logging
import threading
from collections.abc import AsyncIterator
from typing import Any

from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute

from api import accounts, audit, catalog, developer, incidents, installations, my_apps, ops
from api.answers import AnswerCache
from api.consistency import DEFAULT_WAIT
from api.metrics import Metrics
from api.problems import Problem
from api.routing import Endpoint, openapi
from appstore.settings import Settings
from appstore.wiring import build_store
from domain.clock import Clock
from domain.store import AppStore
from projections.read_side import build_projector

log = logging.getLogger("appstore.api")

ENDPOINTS: list[Endpoint] = [
    *accounts.endpoints,
    *catalog.endpoints,
    *developer.endpoints,
    *installations.endpoints,
    *my_apps.endpoints,
    *incidents.endpoints,
    *audit.endpoints,
    *ops.endpoints,
]


def _extra_routes() -> list[BaseRoute]:
    """Routes other modules contribute (OAuth), if present."""
    try:
        from api import oauth
    except ImportError:  # pragma: no cover - OAuth not installed in this tree
        return []
    return list(oauth.routes)


def _extend_openapi(document: dict[str, Any]) -> None:
    """Documents the routes other modules contribute (OAuth), if present."""
    try:
        from api import oauth
    except ImportError:  # pragma: no cover - OAuth not installed in this tree
        return
    oauth.extend_openapi(document)


def routes() -> list[BaseRoute]:
    # The OAuth authorization record `GET /v1/me/apps/{id}` must come after our
    # `/v1/me/apps/...` POST routes only for clarity: paths differ, order is irrelevant.
    return [*(e.route() for e in ENDPOINTS), *ops.plain_routes, *_extra_routes()]


async def _http_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, HTTPException)
    title = {404: "Not found", 405: "Method not allowed"}.get(exc.status_code, "HTTP error")
    return Problem(
        exc.status_code, title, str(exc.detail), headers=dict(exc.headers or {})
    ).response()


async def _server_error(request: Request, exc: Exception) -> Response:
    log.exception("unhandled error on %s %s", request.method, request.url.path, exc_info=exc)
    return Problem(500, "Internal server error", "something went wrong on our side").response()


def create_app(
    settings: Settings,
    store: AppStore | None = None,
    clock: Clock | None = None,
    *,
    run_projections: bool = True,
    sweep_interval: float | None = None,
    consistency_timeout: float = DEFAULT_WAIT,
    batch_size: int = 500,
) -> Starlette:
    """The API for these settings.

    With `run_projections`, a background thread applies new events (polling every 50 ms,
    woken at once by writes in this process); otherwise a separate `appstore project`
    does it. With `sweep_interval`, expired/lapsed installations are swept periodically.
    """
    store = store or build_store(settings, clock=clock)
    projector = build_projector(store, settings.database_url, batch_size=batch_size)
    stop = threading.Event()
    threads: list[threading.Thread] = []

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        if run_projections:
            threads.append(
                threading.Thread(
                    target=projector.run_forever, args=(stop,), name="projector", daemon=True
                )
            )
        if sweep_interval:
            threads.append(
                threading.Thread(
                    target=_sweep_forever,
                    args=(store, projector, stop, sweep_interval),
                    name="sweeper",
                    daemon=True,
                )
            )
        for thread in threads:
            thread.start()
        try:
            yield
        finally:
            stop.set()
            projector.wake.set()
            for thread in threads:
                thread.join(timeout=5)

    app = Starlette(
        routes=routes(),
        lifespan=lifespan,
        exception_handlers={HTTPException: _http_error, Exception: _server_error},
    )
    app.state.store = store
    app.state.settings = settings
    app.state.projector = projector
    app.state.consistency_timeout = consistency_timeout
    app.state.metrics = Metrics(projector)
    app.state.catalog_answers = AnswerCache("catalog")
    app.state.openapi = openapi(ENDPOINTS, "App & Service Store", "1.0.0")
    _extend_openapi(app.state.openapi)
    return app


def _sweep_forever(store: AppStore, projector: Any, stop: threading.Event, every: float) -> None:
    from appstore.processes import sweep

    while not stop.wait(every):
        try:
            result = sweep(store, projector)
            if result.expired or result.lapsed:
                log.info("swept: %d expired, %d lapsed", result.expired, result.lapsed)
        except Exception:  # keep sweeping; the next round retries
            log.exception("expiry sweep failed")
