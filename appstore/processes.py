"""The store's processes: serve, project, replay, expire, migrate, consume.

Each function builds what it needs from the settings and runs until done or signalled.
"""

from __future__ import annotations

import signal
import threading
import time
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from pydantic_settings import BaseSettings, SettingsConfigDict
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

from appstore.settings import Settings
from appstore.wiring import build_store
from domain.errors import DomainError
from domain.store import AppStore
from projections import my_apps
from projections.read_side import all_projections, build_projector
from projections.runner import Projector

console = Console(stderr=True)


class ProjectorSettings(BaseSettings):
    """Tuning of the projection runner (APPSTORE_PROJECTOR_*)."""

    model_config = SettingsConfigDict(env_prefix="APPSTORE_PROJECTOR_", extra="ignore")

    batch_size: int = 1000
    # Replays rebuild from scratch: bigger transactions, fewer commits.
    replay_batch_size: int = 2000
    poll_interval: float = 0.05
    # Seconds between expiry sweeps in `serve`.
    sweep_interval: float = 30.0


class ServeSettings(BaseSettings):
    """`serve` process options (APPSTORE_SERVE_*)."""

    model_config = SettingsConfigDict(env_prefix="APPSTORE_SERVE_", extra="ignore")

    # API worker processes; each also runs the projections (the tracking rows keep them
    # from applying an event twice) and the sweeper.
    workers: int = 1
    # False where separate `appstore project` processes build the read models (compose).
    projections: bool = True


@dataclass(frozen=True)
class SweepResult:
    expired: int
    lapsed: int


def sweep(store: AppStore, projector: Projector, now: datetime | None = None) -> SweepResult:
    """Appends Expired / Declined(lapsed) events for installations the read model finds due."""
    now = now or store.clock.now()
    with projector.engine.connect() as conn:
        expiring = my_apps.due_for_expiry(conn, now)
        lapsing = my_apps.due_for_lapse(conn, now)
    expired = lapsed = 0
    for installation_id in expiring:
        try:
            store.expire(installation_id)
            expired += 1
        except DomainError:
            pass  # renewed or cancelled meanwhile: the read model was behind
    for installation_id in lapsing:
        try:
            store.lapse(installation_id)
            lapsed += 1
        except DomainError:
            pass
    return SweepResult(expired, lapsed)


def _stop_on_signals(stop: threading.Event) -> None:
    def handler(signum: int, _frame: Any) -> None:
        stop.set()

    signal.signal(signal.SIGTERM, handler)
    signal.signal(signal.SIGINT, handler)


def serve(settings: Settings, host: str, port: int) -> None:
    """The API with the projections and the expiry sweeper in background threads."""
    import uvicorn

    consumer_health = None
    workers = ServeSettings().workers
    if settings.kafka_bootstrap_servers:
        from consumers.health import ConsumerHealth

        # Shown on /readyz and /metrics; with several API workers (other processes) only by
        # a separate `appstore consume --metrics-port`.
        consumer_health = ConsumerHealth()
        thread = threading.Thread(
            target=run_consumer, args=(settings,), kwargs={"health": consumer_health}, daemon=True
        )
        thread.start()
    # Per-request access lines cost latency; /metrics counts requests instead.
    options: dict[str, Any] = {"host": host, "port": port, "log_level": "info"}
    options["access_log"] = False
    if workers > 1:
        migrate(settings)  # create the tables once, before the workers race to
        uvicorn.run(
            "appstore.processes:app_from_environment", factory=True, workers=workers, **options
        )
    else:
        uvicorn.run(app_from_environment(settings, consumer_health=consumer_health), **options)


def app_from_environment(settings: Settings | None = None, consumer_health: Any = None) -> Any:
    """The API app for `serve` (also the factory each uvicorn worker calls)."""
    from api.app import create_app
    from appstore.settings import get_settings

    tuning = ProjectorSettings()
    return create_app(
        settings or get_settings(),
        run_projections=ServeSettings().projections,
        sweep_interval=tuning.sweep_interval,
        batch_size=tuning.batch_size,
        consumer_health=consumer_health,
    )


def run_projector(settings: Settings) -> None:
    """Runs every projection until SIGTERM/SIGINT (the current batch commits or rolls back)."""
    tuning = ProjectorSettings()
    store = build_store(settings)
    projector = build_projector(store, settings.database_url, batch_size=tuning.batch_size)
    stop = threading.Event()
    _stop_on_signals(stop)
    console.print(f"[green]projecting[/green] {', '.join(projector.projections)}")
    projector.run_forever(stop, interval=tuning.poll_interval)
    console.print("[dim]projector stopped[/dim]")
    store.close()


def replay(settings: Settings, projection_name: str | None) -> None:
    """Drops and rebuilds one read model (or all) from position 0, with a progress bar."""
    tuning = ProjectorSettings()
    store = build_store(settings)
    known = [p.name for p in all_projections()]
    if projection_name is not None and projection_name not in known:
        console.print(
            f"[red]unknown projection {projection_name!r}; known: {', '.join(known)}[/red]"
        )
        raise SystemExit(2)
    names = [projection_name] if projection_name else known
    projector = build_projector(
        store, settings.database_url, names=names, batch_size=tuning.replay_batch_size
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

            def advance(result: Any, task: Any = task, begun: float = begun) -> None:
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


def expire_due(settings: Settings) -> None:
    """One expiry sweep (run it from cron, or let `serve` run it periodically)."""
    store = build_store(settings)
    projector = build_projector(store, settings.database_url)
    projector.catch_up()
    result = sweep(store, projector)
    console.print(f"expired {result.expired}, lapsed {result.lapsed}")
    store.close()


def migrate(settings: Settings) -> None:
    """Creates the event store tables and every read-model table (idempotent)."""
    store = build_store(settings)
    build_projector(store, settings.database_url)
    store.close()


def run_consumer(
    settings: Settings,
    *,
    metrics_port: int | None = None,
    metrics_host: str | None = None,
    health: Any = None,
    stop: threading.Event | None = None,
) -> None:
    """The Kafka consumer of connector sync events (consumers.worker); with `metrics_port`,
    its /readyz, /healthz and /metrics are served there."""
    import logging

    from consumers.health import ConsumerHealth, serve_health
    from consumers.worker import run

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s %(message)s")
    logging.getLogger("kafka").setLevel(logging.ERROR)
    health = health or ConsumerHealth()
    server = (
        serve_health(health, metrics_host or settings.host, metrics_port) if metrics_port else None
    )
    try:
        run(settings, stop=stop, health=health)
    finally:
        if server is not None:
            server.shutdown()


def skip_partition(settings: Settings, target: str, reason: str) -> int:
    """`appstore consume --skip-to P:O`: the exit code (0 done, 1 not yet carried out, 2 refused)."""
    from consumers.skips import parse_target, skip_to
    from consumers.worker import WorkerConfig

    if not settings.kafka_bootstrap_servers:
        console.print("[red]APPSTORE_KAFKA_BOOTSTRAP_SERVERS is not set[/red]")
        return 2
    config = WorkerConfig.from_settings(settings)
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
