"""The bodies of the store's processes: serve, project, consume, dispatch, replay, expire,
migrate.

Each builds what it needs through appstore.bootstrap and runs until done or signalled.
"""

from __future__ import annotations

import logging
import os
import signal
import threading
import time
from http.server import ThreadingHTTPServer
from typing import Any

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn

from application.expiry import SweepResult, sweep
from application.facts_backfill import backfill
from application.loops import Backoff, LoopHealth, Loops, SupervisedLoop
from appstore.bootstrap import (
    app_from_environment,
    build_store,
    read_side,
    readiness_policy,
    worker_config,
)
from appstore.collector import fewer_collections
from appstore.health_server import serve_health
from appstore.http_server import uvicorn_options
from appstore.outbound import build_dispatchers, dispatcher_loops
from appstore.replay import replay as rebuild
from appstore.settings import Settings
from consumers.config import AGGREGATE_CACHE
from consumers.health import ConsumerHealth
from consumers.skips import parse_target, skip_to
from consumers.worker import SyncEventWorker
from domain.errors import DomainError
from projections.due_installations import DueInstallations
from projections.runner import Projector, StepResult

console = Console(stderr=True)
log = logging.getLogger("appstore")


def _stop_on_signals(stop: threading.Event) -> None:
    def handler(signum: int, _frame: Any) -> None:
        stop.set()

    signal.signal(signal.SIGTERM, handler)
    signal.signal(signal.SIGINT, handler)


def serve(settings: Settings, host: str, port: int) -> None:
    """The API (and web pages) with the projections and the expiry sweeper in background
    threads; the Kafka consumer too when a broker is configured."""
    import uvicorn

    consumer_health = None
    if settings.kafka_bootstrap_servers:
        # Shown on /readyz and /metrics; with several API workers (other processes) only by
        # a separate `appstore consume --metrics-port`.
        consumer_health = consumer_health_of(settings)
        running = consumer_health

        def consume_until_stopped() -> bool:
            consume(settings, stop=forever, health=running)
            return False

        forever = threading.Event()  # the process ends with uvicorn; the thread is a daemon
        SupervisedLoop(
            "consumer",
            consume_until_stopped,
            interval=1.0,
            health=consumer_health.loop,
            backoff=Backoff(initial=1.0, cap=10.0),
        ).start(forever)
    # The public URL defaults to where we listen; workers read the settings anew (env).
    settings = settings.model_copy(update={"host": host, "port": port})
    os.environ["APPSTORE_HOST"], os.environ["APPSTORE_PORT"] = host, str(port)
    options = uvicorn_options(settings, host, port)
    if settings.serve.workers > 1:
        migrate(settings, facts=False)  # create the tables once, before the workers race to
        uvicorn.run(
            "appstore.bootstrap:app_from_environment",
            factory=True,
            workers=settings.serve.workers,
            **options,
        )
    else:
        uvicorn.run(app_from_environment(settings, consumer_health=consumer_health), **options)


def consumer_health_of(settings: Settings) -> ConsumerHealth:
    """A consumer's health, judged by the settings' readiness policy (APPSTORE_READY_*)."""
    policy = readiness_policy(settings)
    return ConsumerHealth(max_ready_lag=policy.max_lag, lag_grace_s=policy.lag_seconds)


def project(
    settings: Settings, *, metrics_port: int | None = None, metrics_host: str | None = None
) -> None:
    """Runs every projection until SIGTERM/SIGINT (the current batch commits or rolls back);
    with `metrics_port`, its /healthz, /readyz and /metrics are served there."""
    store = build_store(settings)
    projector = read_side(store, settings)
    stop = threading.Event()
    _stop_on_signals(stop)
    loops = Loops()
    health = loops.register(LoopHealth("projector", policy=readiness_policy(settings)))
    server = _health_server(
        loops, settings, metrics_port, metrics_host, details=lambda: _positions(projector)
    )
    console.print(f"[green]projecting[/green] {', '.join(projector.projections)}")
    try:
        with fewer_collections():  # as a replay: applying events allocates dicts by the dozen
            catch_up_first(projector, settings, health, stop)
            projector.loop(settings.projector.poll_interval, health).run(stop)
    finally:
        if server is not None:
            server.shutdown()
    console.print("[dim]projector stopped[/dim]")
    store.close()


# Events a read model must be behind for `project` to catch up in processes first.
CATCH_UP_FIRST_FROM = 50_000


def catch_up_first(
    projector: Projector,
    settings: Settings,
    health: LoopHealth,
    stop: threading.Event,
    at_least: int = CATCH_UP_FIRST_FROM,
) -> int:
    """A projector `at_least` events behind (a read model rebuilt from the log after its
    definition changed, a restored database) first catches up as a replay does, in
    `APPSTORE_PROJECTOR_REPLAY_WORKERS` processes (`Projector.processes`), each step still a
    transaction of its read model; it reports its lag meanwhile and stops at the end of a
    round once `stop` is set. Returns the events applied. Whatever fails here, the polling
    loop takes over from where it left (the failure shows in `health`)."""
    try:
        start = projector.measure()  # /readyz's details show where it starts
        behind = max(start.lag.values(), default=0)
        if behind < at_least:
            return 0
        health.started()
        health.report_lag(behind)
        console.print(f"[yellow]catching up[/yellow] to position {start.head:,} first")
        lag = dict(start.lag)

        def advance(result: StepResult) -> None:
            health.succeeded()
            if result.position >= 0:
                lag[result.projection] = max(0, start.head - result.position)
                health.report_lag(max(lag.values()))

        with projector.processes(settings.projector.replay_workers) as used:
            applied = projector.catch_up(on_progress=advance, stop=stop)
        console.print(f"[green]caught up[/green] {applied:,} events in {used} process(es)")
        return applied
    except Exception as error:  # the loop retries with backoff
        health.failed(error)
        log.warning("catching up first failed, the polling loop goes on: %r", error)
        return 0


def _positions(projector: Projector) -> dict[str, Any]:
    """The log head and each projection's position and lag, as the loop last measured them."""
    measured = projector.measured
    if measured is None:
        return {}
    return {
        "head": measured.head,
        "measured_age_s": round(time.monotonic() - measured.at, 3),
        "projections": {
            name: {"position": position, "lag": max(0, measured.head - position)}
            for name, position in measured.positions.items()
        },
    }


def _health_server(
    loops: Loops,
    settings: Settings,
    port: int | None,
    host: str | None,
    **options: Any,
) -> ThreadingHTTPServer | None:
    """The process's /healthz, /readyz and /metrics on `port` (None: not served)."""
    if not port:
        return None
    return serve_health(loops, host or settings.host, port, **options)


def consume(
    settings: Settings,
    *,
    stop: threading.Event | None = None,
    health: ConsumerHealth | None = None,
    metrics_port: int | None = None,
    metrics_host: str | None = None,
    **overrides: Any,
) -> None:
    """The Kafka consumer of sync events until SIGTERM/SIGINT (or `stop`); with
    `metrics_port`, its /readyz, /healthz and /metrics are served there.

    Signal handlers are installed only in the main thread; an embedding process (`serve`)
    passes its own `stop` event and `health` instead.
    """
    store = build_store(settings, aggregate_cache=AGGREGATE_CACHE)
    health = health or consumer_health_of(settings)
    config = worker_config(settings, **overrides)
    worker = SyncEventWorker(store, config, stop_event=stop, health=health)
    loops = Loops()
    loops.register(health.loop)
    server = _health_server(
        loops,
        settings,
        metrics_port,
        metrics_host,
        details=health.snapshot,
        collectors=[health.collector()],
        name="consumer-health",
    )
    previous: dict[signal.Signals, Any] = {}
    if threading.current_thread() is threading.main_thread():
        for signum in (signal.SIGTERM, signal.SIGINT):
            previous[signum] = signal.signal(signum, lambda *_: worker.stop())
    try:
        worker.run()
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)
        if server is not None:
            server.shutdown()
        store.close()


def dispatch(
    settings: Settings,
    *,
    stop: threading.Event | None = None,
    metrics_port: int | None = None,
    metrics_host: str | None = None,
) -> None:
    """Sends due webhook deliveries (and e-mails, with APPSTORE_SMTP_URL) until
    SIGTERM/SIGINT (or `stop`); with `metrics_port`, its /healthz, /readyz and /metrics are
    served there. Run as many as you like: each attempt is claimed by one of them."""
    store = build_store(settings)
    projector = read_side(store, settings)
    stop = stop or threading.Event()
    if threading.current_thread() is threading.main_thread():
        _stop_on_signals(stop)
    loops = Loops()
    dispatchers = build_dispatchers(store, projector.engine, settings)
    supervised = dispatcher_loops(dispatchers, settings, loops, readiness_policy(settings))
    server = _health_server(loops, settings, metrics_port, metrics_host, name="dispatch-health")
    threads = [loop.start(stop) for loop in supervised]
    console.print(f"[green]dispatching[/green] {', '.join(d.channel.name for d in dispatchers)}")
    try:
        while any(t.is_alive() for t in threads):
            for thread in threads:
                thread.join(timeout=0.5)
    finally:
        if server is not None:
            server.shutdown()
    console.print("[dim]dispatcher stopped[/dim]")
    store.close()


def replay(settings: Settings, projection_name: str | None) -> None:
    """Drops and rebuilds one read model (or all) from position 0 (appstore.replay)."""
    rebuild(settings, projection_name)


def expire(settings: Settings) -> SweepResult:
    """One expiry sweep (run it from cron, or let `serve` run it periodically)."""
    store = build_store(settings)
    projector = read_side(store, settings)
    projector.catch_up()
    result = sweep(store, DueInstallations(projector.engine))
    store.close()
    return result


def migrate(settings: Settings, *, facts: bool = True) -> None:
    """Creates the event store tables and every read-model table, and (with `facts`) writes
    the token-check facts a store written by an older release lacks (idempotent)."""
    store = build_store(settings)
    try:
        read_side(store, settings)
        if not facts:
            return
        with Progress(
            TextColumn("[bold]token-check facts"),
            BarColumn(),
            MofNCompleteColumn(),
            console=console,
        ) as progress:
            task = progress.add_task("facts", total=None)
            written = backfill(
                store, lambda done, total: progress.update(task, completed=done, total=total)
            )
        if written:
            console.print(f"token-check facts: {written:,} rows written")
    finally:
        store.close()


def skip_partition(
    settings: Settings, target: str, reason: str, *, group_id: str | None = None
) -> int:
    """`appstore consume --skip-to P:O`: the exit code (0 done, 1 not yet carried out, 2 refused)."""
    if not settings.kafka_bootstrap_servers:
        console.print("[red]APPSTORE_KAFKA_BOOTSTRAP_SERVERS is not set[/red]")
        return 2
    config = worker_config(settings, group_id=group_id)
    store = build_store(settings)
    try:
        partition, offset = parse_target(target)
        outcome = skip_to(
            store,
            config.bootstrap_servers,
            config.topic,
            config.group_id,
            partition,
            offset,
            reason,
        )
    except DomainError as error:
        console.print(f"[red]{error.detail}[/red]")
        return 2
    finally:
        store.close()
    where = f"{settings.sync_events_topic}-{partition}"
    if outcome.applied_by is None:
        console.print(
            f"[yellow]skip of {where} to {offset} recorded; the consumer owning it has not "
            f"carried it out yet (audit: {outcome.aggregate_id})[/yellow]"
        )
        return 1
    skipped = max(0, offset - (outcome.from_offset or 0))
    console.print(
        f"[green]{where} now reads from {offset}[/green]: {skipped} messages given up "
        f"(from {outcome.from_offset}), by {outcome.applied_by}; audit: {outcome.aggregate_id}"
    )
    return 0
