"""The Starlette application: the route table, the store, the read side, background work.

`create_app(settings)` is the factory. Route modules read `request.app.state`:
`store` (AppStore), `settings`, `projector` (read-model engine + runner),
`consistency_timeout` (seconds a read-your-writes wait may take).
"""

from __future__ import annotations

import contextlib
import importlib
import logging
import threading
from collections.abc import AsyncIterator
from types import ModuleType
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
from projections.runner import DEFAULT_BATCH
from web import routes as web_routes

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


# Modules other engineers own that contribute routes: each exports `routes` (Starlette
# routes, or `endpoints` (api.routing.Endpoint) to be documented automatically) and may
# export `extend_openapi(document)`. A module not in this tree yet is skipped.
CONTRIBUTED_MODULES = ("oauth", "sync_events")


def _contributed() -> list[ModuleType]:
    modules = []
    for name in CONTRIBUTED_MODULES:
        try:
            modules.append(importlib.import_module(f"api.{name}"))
        except ModuleNotFoundError as error:
            if error.name != f"api.{name}":
                raise  # the module exists but is broken: say so
    return modules


def _contributed_endpoints() -> list[Endpoint]:
    return [e for m in _contributed() for e in getattr(m, "endpoints", [])]


def _extend_openapi(document: dict[str, Any]) -> None:
    """Documents the routes other modules contribute, if present."""
    for module in _contributed():
        extend = getattr(module, "extend_openapi", None)
        if extend is not None:
            extend(document)


def routes() -> list[BaseRoute]:
    """The whole route table: ours, ops, the contributed modules' routes, and the pages."""
    contributed = [r for m in _contributed() for r in getattr(m, "routes", [])]
    endpoints = [*ENDPOINTS, *_contributed_endpoints()]
    # The web pages (and /static) until composition moves to appstore/.
    return [*(e.route() for e in endpoints), *ops.plain_routes, *contributed, *web_routes.routes]


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
    batch_size: int = DEFAULT_BATCH,
) -> Starlette:
    """The API for these settings.

    With `run_projections`, a background thread applies new events (polling every 50 ms,
    woken at once by writes in this process); otherwise a separate `appstore project`
    does it. With `sweep_interval`, expired/lapsed installations are swept periodically.
    """
    # Tokens, sessions and installations are read on most requests: keep them cached
    # (each read still fetches newer events, so other processes' writes are seen).
    store = store or build_store(settings, clock=clock, aggregate_cache=20_000)
    projector = build_projector(store, settings.database_url, batch_size=batch_size)

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        # Fresh per start-up, so an app can be started again (tests, reloads).
        stop = threading.Event()
        threads: list[threading.Thread] = []
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
    app.state.openapi = openapi(
        [*ENDPOINTS, *_contributed_endpoints()], "App & Service Store", "1.0.0"
    )
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
