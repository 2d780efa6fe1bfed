"""The bodies of the store's processes: serve, project, consume, replay, expire, migrate.

Each builds what it needs through appstore.bootstrap and runs until done or signalled.
"""

from __future__ import annotations

import logging
import signal
import threading
import time
from typing import Any

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

from application.expiry import SweepResult, sweep
from appstore.bootstrap import (
    app_from_environment,
    build_store,
    read_side,
    worker_config,
)
from appstore.settings import Settings
from consumers.worker import AGGREGATE_CACHE, SyncEventWorker
from projections.my_apps import DueInstallations
from projections.read_side import all_projections
from projections.runner import StepResult

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

    if settings.kafka_bootstrap_servers:
        threading.Thread(target=consume, args=(settings,), name="consumer", daemon=True).start()
    # Per-request access lines cost latency; /metrics counts requests instead.
    options: dict[str, Any] = {"host": host, "port": port, "log_level": "info"}
    options["access_log"] = False
    if settings.serve.workers > 1:
        migrate(settings)  # create the tables once, before the workers race to
        uvicorn.run(
            "appstore.bootstrap:app_from_environment",
            factory=True,
            workers=settings.serve.workers,
            **options,
        )
    else:
        uvicorn.run(app_from_environment(settings), **options)


def project(settings: Settings) -> None:
    """Runs every projection until SIGTERM/SIGINT (the current batch commits or rolls back)."""
    store = build_store(settings)
    projector = read_side(store, settings)
    stop = threading.Event()
    _stop_on_signals(stop)
    console.print(f"[green]projecting[/green] {', '.join(projector.projections)}")
    projector.run_forever(stop, interval=settings.projector.poll_interval)
    console.print("[dim]projector stopped[/dim]")
    store.close()


def consume(settings: Settings, *, stop: threading.Event | None = None, **overrides: Any) -> None:
    """The Kafka consumer of sync events until SIGTERM/SIGINT (or `stop`).

    Signal handlers are installed only in the main thread; an embedding process (`serve`)
    passes its own `stop` event instead.
    """
    store = build_store(settings, aggregate_cache=AGGREGATE_CACHE)
    worker = SyncEventWorker(store, worker_config(settings, **overrides), stop_event=stop)
    previous: dict[signal.Signals, Any] = {}
    if threading.current_thread() is threading.main_thread():
        for signum in (signal.SIGTERM, signal.SIGINT):
            previous[signum] = signal.signal(signum, lambda *_: worker.stop())
    try:
        worker.run()
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)
        store.close()


def replay(settings: Settings, projection_name: str | None) -> None:
    """Drops and rebuilds one read model (or all) from position 0, with a progress bar."""
    store = build_store(settings)
    known = [p.name for p in all_projections()]
    if projection_name is not None and projection_name not in known:
        console.print(
            f"[red]unknown projection {projection_name!r}; known: {', '.join(known)}[/red]"
        )
        raise SystemExit(2)
    names = [projection_name] if projection_name else known
    projector = read_side(
        store, settings, names=names, batch_size=settings.projector.replay_batch_size
    )
    head = projector.head()
    started = time.perf_counter()
    with Progress(
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("{task.fields[rate]:>10} ev/s"),
        TimeRemainingColumn(),
        console=console,
    ) as progress:
        for name in names:
            projector.reset(name)
            task = progress.add_task(name, total=head or 1, rate="")
            begun = time.perf_counter()

            def advance(result: StepResult, task: Any = task, begun: float = begun) -> None:
                if result.position >= 0:
                    rate = result.position / max(time.perf_counter() - begun, 1e-9)
                    progress.update(task, completed=result.position, rate=f"{rate:,.0f}")

            projector.catch_up([name], on_progress=advance)
            progress.update(task, completed=head or 1)
    console.print(
        f"[green]rebuilt[/green] {', '.join(names)}: {head} events "
        f"in {time.perf_counter() - started:.2f}s"
    )
    store.close()


def expire(settings: Settings) -> SweepResult:
    """One expiry sweep (run it from cron, or let `serve` run it periodically)."""
    store = build_store(settings)
    projector = read_side(store, settings)
    projector.catch_up()
    result = sweep(store, DueInstallations(projector.engine))
    store.close()
    return result


def migrate(settings: Settings) -> None:
    """Creates the event store tables and every read-model table (idempotent)."""
    store = build_store(settings)
    read_side(store, settings)
    store.close()
