"""The composition root: builds each process's objects once, from the settings.

Every entry point (appstore/cli.py, the uvicorn worker factory, tests) builds through here:
`build_store` (the write side), `build_projector` (the read side), `create_app` (the HTTP
app: the JSON API, the web pages, and the background loops of an embedded store),
`worker_config` (the Kafka consumer).
"""

from __future__ import annotations

import contextlib
import logging
import random
import threading
import time
from collections.abc import AsyncIterator
from functools import partial
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlsplit

import sqlalchemy as sa
from eventsourcing.persistence import IntegrityError, InternalError, ProgrammingError
from psycopg.errors import DuplicateObject, DuplicateTable
from starlette.applications import Starlette
from starlette.middleware import Middleware

from api.answers import AnswerCache
from api.app import openapi_document
from api.app import routes as api_routes
from api.consistency import DEFAULT_WAIT
from api.metrics import Metrics, MetricsMiddleware
from api.middleware import RequestLimits, SecurityHeaders
from api.problems import EXCEPTION_HANDLERS
from application.expiry import sweep
from application.loops import LoopHealth, Loops, ReadinessPolicy, SupervisedLoop
from application.store import Store
from appstore.collector import batch_work_only, freeze_start_up
from appstore.outbound import build_dispatchers, dispatcher_loops, secret_box
from appstore.settings import Settings
from consumers.config import WorkerConfig
from consumers.health import ConsumerHealth
from domain.clock import Clock
from domain.credentials import Passwords
from projections import catalog_text
from projections.db import reads_in_process
from projections.due_installations import DueInstallations
from projections.read_side import build_projector
from projections.runner import Projector
from web import authorize
from web import routes as web_routes

log = logging.getLogger("appstore")

STARTUP_ATTEMPTS = 8
# Seconds a store call waits for the database before it fails (Settings.database_timeout).
DATABASE_TIMEOUT = 2
# Tokens, sessions and installations are read on most requests: the API keeps them cached
# (each read still fetches newer events, so other processes' writes are seen).
API_AGGREGATE_CACHE = 20_000


def event_store_env(database_url: str, timeout: int = DATABASE_TIMEOUT) -> dict[str, str]:
    """The `eventsourcing` environment for a database URL; `timeout` bounds each wait for
    the database (a connection from the pool, a lock), so an outage fails fast."""
    parts = urlsplit(database_url)
    scheme = parts.scheme.split("+")[0]
    if scheme == "sqlite":
        # sqlite:///relative/path.db  or  sqlite:////absolute/path.db
        path = database_url.split("://", 1)[1][1:] if "://" in database_url else ""
        if not path:
            raise ValueError(f"no file in {database_url!r}")
        if path != ":memory:":
            Path(path).parent.mkdir(parents=True, exist_ok=True)
        return {
            "PERSISTENCE_MODULE": "eventsourcing.sqlite",
            "SQLITE_DBNAME": path
            if path != ":memory:"
            else "file::memory:?mode=memory&cache=shared",
            "SQLITE_LOCK_TIMEOUT": "10",
        }
    if scheme in ("postgresql", "postgres"):
        return {
            "PERSISTENCE_MODULE": "application.availability:FailFastPostgresFactory",
            "POSTGRES_DBNAME": parts.path.lstrip("/") or "appstore",
            "POSTGRES_HOST": parts.hostname or "127.0.0.1",
            "POSTGRES_PORT": str(parts.port or 5432),
            "POSTGRES_USER": unquote(parts.username or "postgres"),
            "POSTGRES_PASSWORD": unquote(parts.password or ""),
            # Writers serialise on a table lock; a stuck one must not block the rest forever.
            "POSTGRES_LOCK_TIMEOUT": str(2 * timeout),
            "POSTGRES_POOL_SIZE": "5",
            "POSTGRES_MAX_OVERFLOW": "10",
            # Fail fast: the wait for a pooled connection (eventsourcing calls it the connect
            # timeout), two attempts per call (application/availability.py), a transaction
            # left idle is ended, connections are renewed. They are not pinged each time
            # they leave the pool (a round trip per statement, a third of a command's time):
            # a failed attempt checks the pool instead (a restarted or swept server leaves
            # dead connections behind) before the second.
            "POSTGRES_CONNECT_TIMEOUT": str(timeout),
            "POSTGRES_IDLE_IN_TRANSACTION_SESSION_TIMEOUT": str(max(5, 2 * timeout)),
            "POSTGRES_CONN_MAX_AGE": "600",
            "POSTGRES_PRE_PING": "no",
        }
    raise ValueError(f"unsupported APPSTORE_DATABASE_URL scheme {parts.scheme!r}")


def build_store(
    settings: Settings, *, clock: Clock | None = None, aggregate_cache: int = 0
) -> Store:
    """The write side (event store + commands) for these settings.

    `aggregate_cache` keeps that many recently used aggregates in memory; each read still
    fetches the events appended since (fast-forward), so other writers are never missed.
    Worth it where the same aggregates are hit again and again (the API, the consumer).
    """
    passwords = Passwords.fast() if settings.fast_password_hashing else Passwords()
    env = event_store_env(settings.database_url, settings.database_timeout)
    for attempt in range(1, STARTUP_ATTEMPTS + 1):
        try:
            return Store(env, clock=clock, passwords=passwords, aggregate_cache=aggregate_cache)
        except (InternalError, IntegrityError, ProgrammingError) as error:
            # Processes starting together all run eventsourcing's CREATE TABLE IF NOT EXISTS
            # and CREATE OR REPLACE FUNCTION; PostgreSQL refuses the losers of that race
            # ("tuple concurrently updated", a duplicate key in pg_type, or "relation ...
            # already exists"). The schema is there a moment later: try again.
            racing = not isinstance(error, ProgrammingError) or isinstance(
                error.__cause__, DuplicateTable | DuplicateObject
            )
            if not racing or attempt == STARTUP_ATTEMPTS:
                raise
            time.sleep(random.uniform(0.05, 0.2) * attempt)
    raise AssertionError("unreachable")


def read_side(store: Store, settings: Settings, **options: Any) -> Projector:
    """The read models of these settings (created or rebuilt as needed)."""
    options.setdefault("batch_size", settings.projector.batch_size)
    options.setdefault("timeout", settings.database_timeout)
    projector = build_projector(store, settings.database_url, **options)
    projector.spawn = partial(projector_in_a_lane, settings)  # Projector.processes
    return projector


def projector_in_a_lane(settings: Settings, names: list[str], batch_size: int) -> Projector:
    """In a spawned process of a catch-up's lanes (projections/process_lanes.py): a projector
    over these read models (set up by the process that spawned it), collecting less."""
    batch_work_only()
    store = build_store(settings)
    return read_side(store, settings, names=names, batch_size=batch_size, setup=False)


def worker_config(settings: Settings, **overrides: Any) -> WorkerConfig:
    """How the Kafka consumer of these settings talks to the broker."""
    if not settings.kafka_bootstrap_servers:
        raise ValueError("APPSTORE_KAFKA_BOOTSTRAP_SERVERS is not set")
    values: dict[str, Any] = {
        "bootstrap_servers": settings.kafka_bootstrap_servers,
        "topic": settings.sync_events_topic,
        "group_id": settings.consumer.group_id,
        "partitions": settings.consumer.partitions,
        "batch_size": settings.consumer.batch_size,
    }
    values.update({k: val for k, val in overrides.items() if val is not None})
    return WorkerConfig(**values)


def create_app(
    settings: Settings,
    store: Store | None = None,
    clock: Clock | None = None,
    *,
    run_projections: bool = True,
    sweep_interval: float | None = None,
    consistency_timeout: float = DEFAULT_WAIT,
    batch_size: int | None = None,
    consumer_health: ConsumerHealth | None = None,
    dispatch: bool = False,
    freeze_heap: bool = False,
) -> Starlette:
    """The HTTP app for these settings: the JSON API and the web pages.

    With `run_projections`, a background thread applies new events (polling, woken at once
    by writes in this process); otherwise a separate `appstore project` does it. With
    `sweep_interval`, expired/lapsed installations are swept periodically.
    `consumer_health` is an in-process Kafka consumer's state: its lag and stalled
    partitions then show on /readyz and /metrics. With `dispatch`, background threads send
    webhook deliveries (and e-mails, with APPSTORE_SMTP_URL). With `freeze_heap` (`serve`),
    what start-up built (modules, the text index) is moved out of the garbage collector's
    sight once the text index is built (see `_start_up_done`).
    """
    store = store or build_store(settings, clock=clock, aggregate_cache=API_AGGREGATE_CACHE)
    projector = read_side(store, settings, batch_size=batch_size or settings.projector.batch_size)
    policy = readiness_policy(settings)
    loops = Loops()
    supervised: list[SupervisedLoop] = []
    if run_projections:
        health = loops.register(LoopHealth("projector", policy=policy))
        supervised.append(projector.loop(settings.projector.poll_interval, health))
    if sweep_interval:
        health = loops.register(LoopHealth("sweeper", policy=policy))
        supervised.append(_sweeper(store, projector, sweep_interval, health))
    if consumer_health is not None:
        loops.register(consumer_health.loop)
    if dispatch:
        dispatchers = build_dispatchers(store, projector.engine, settings)
        supervised += dispatcher_loops(dispatchers, settings, loops, policy)

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        # Fresh per start-up, so an app can be started again (tests, reloads).
        stop = threading.Event()
        threads = [loop.start(stop) for loop in supervised]
        threading.Thread(
            target=_start_up_done,
            args=(projector.engine, freeze_heap),
            name="text-index",
            daemon=True,
        ).start()
        try:
            yield
        finally:
            stop.set()
            projector.wake.set()
            for thread in threads:
                thread.join(timeout=5)

    metrics = Metrics(projector, consumer_health, loops)
    public_url = settings.base_url()
    app = Starlette(
        routes=[*api_routes(), *authorize.routes, *web_routes.routes],
        lifespan=lifespan,
        exception_handlers=dict(EXCEPTION_HANDLERS),
        middleware=[
            Middleware(MetricsMiddleware, metrics=metrics),
            Middleware(SecurityHeaders, hsts=public_url.startswith("https://")),
            Middleware(
                RequestLimits,
                max_body=settings.serve.max_body_bytes,
                body_timeout=settings.serve.body_timeout,
            ),
        ],
    )
    app.state.store = store
    app.state.settings = settings
    app.state.public_url = public_url
    app.state.projector = projector
    app.state.inline_reads = reads_in_process(projector.engine)  # (projections/db.py)
    app.state.consistency_timeout = consistency_timeout
    app.state.consumer_health = consumer_health
    app.state.loops = loops
    app.state.readiness = policy
    app.state.metrics = metrics
    app.state.catalog_answers = AnswerCache("catalog")  # the API's: JSON bytes
    app.state.page_answers = AnswerCache("catalog", size=256, name="pages")  # objects
    metrics.registry.register(app.state.catalog_answers.collector())
    metrics.registry.register(app.state.page_answers.collector())
    app.state.openapi = openapi_document(authorize.OPENAPI_PATHS)
    app.state.secret_box = secret_box(settings)
    return app


def app_from_environment(
    settings: Settings | None = None, consumer_health: ConsumerHealth | None = None
) -> Starlette:
    """The app `serve` runs (also the factory each uvicorn worker calls)."""
    from appstore.settings import get_settings

    settings = settings or get_settings()
    return create_app(
        settings,
        run_projections=settings.serve.projections,
        sweep_interval=settings.projector.sweep_interval,
        consumer_health=consumer_health,
        dispatch=settings.serve.dispatch,
        freeze_heap=True,
    )


def readiness_policy(settings: Settings) -> ReadinessPolicy:
    """When a background loop's lag makes the process not ready (APPSTORE_READY_*)."""
    return ReadinessPolicy(settings.ready.max_lag, settings.ready.lag_seconds)


def _sweeper(
    store: Store, projector: Projector, every: float, health: LoopHealth
) -> SupervisedLoop:
    due = DueInstallations(projector.engine)

    def sweep_once() -> bool:
        result = sweep(store, due)
        if result.expired or result.lapsed or result.warned:
            log.info(
                "swept: %d expired, %d lapsed, %d warned",
                result.expired,
                result.lapsed,
                result.warned,
            )
        return False

    return SupervisedLoop("sweeper", sweep_once, interval=every, health=health)


def _start_up_done(engine: sa.Engine, freeze_heap: bool) -> None:
    """The catalog's text index built before the first text search asks for it; then, with
    `freeze_heap`, what start-up made is out of the garbage collector's sight
    (appstore/collector.py)."""
    try:
        with engine.connect() as conn:
            catalog_text.warm(conn)
    except Exception as error:  # the first text search builds it then
        log.info("text index not built at start-up: %s", error)
    if freeze_heap:
        freeze_start_up()
