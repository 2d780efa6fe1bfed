"""The `appstore` command line: every entry point of the store's processes and tools."""

from __future__ import annotations

import json
import logging
import sys
from pathlib import Path
from typing import Annotated
from uuid import UUID

import typer
from rich.console import Console
from rich.table import Table

from appstore.settings import get_settings, settings_table

cli = typer.Typer(help="App & Service Store back end.", no_args_is_help=True)
audit_cli = typer.Typer(help="Read the event history (ops).", no_args_is_help=True)
cli.add_typer(audit_cli, name="audit")
console = Console(stderr=True)


# `--metrics-port` / `--metrics-host` of every process without the API (appstore/health_server.py).
MetricsPort = Annotated[
    int | None, typer.Option(help="serve /healthz, /readyz and /metrics on this port")
]
MetricsHost = Annotated[
    str | None, typer.Option(help="address for --metrics-port (default APPSTORE_HOST)")
]


def _log_to_stderr() -> None:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s %(message)s")
    logging.getLogger("kafka").setLevel(logging.ERROR)
    # One line per webhook POST would cost a dispatcher more than the POST; the delivery
    # log records every attempt.
    logging.getLogger("httpx").setLevel(logging.WARNING)


@cli.command()
def serve(
    host: Annotated[str | None, typer.Option(help="bind address")] = None,
    port: Annotated[int | None, typer.Option(help="port")] = None,
) -> None:
    """Run the API and web pages with the projections in-process (the embedded default)."""
    from appstore.processes import serve as run

    settings = get_settings()
    run(settings, host or settings.host, port or settings.port)


@cli.command()
def project(metrics_port: MetricsPort = None, metrics_host: MetricsHost = None) -> None:
    """Run the projections continuously (a separate process at scale)."""
    from appstore.processes import project as run

    _log_to_stderr()
    run(get_settings(), metrics_port=metrics_port, metrics_host=metrics_host)


@cli.command()
def consume(
    batch_size: Annotated[
        int | None, typer.Option(help="max messages per poll and transaction")
    ] = None,
    partitions: Annotated[int | None, typer.Option(help="partitions of topics it creates")] = None,
    group_id: Annotated[str | None, typer.Option(help="consumer group")] = None,
    metrics_port: MetricsPort = None,
    metrics_host: MetricsHost = None,
    skip_to: Annotated[
        str | None,
        typer.Option(
            "--skip-to",
            metavar="PARTITION:OFFSET",
            help="instead of consuming: give up a stalled partition's messages before OFFSET "
            "(recorded in the audit history), then exit",
        ),
    ] = None,
    reason: Annotated[str | None, typer.Option(help="why (required with --skip-to)")] = None,
) -> None:
    """Run the Kafka consumer of connector sync events (or, with --skip-to, move it on)."""
    from appstore.collector import fewer_collections
    from appstore.processes import consume as run
    from appstore.processes import skip_partition

    _log_to_stderr()
    settings = get_settings()
    if skip_to is not None:
        if not reason:
            console.print("[red]--skip-to needs --reason: the audit history keeps it[/red]")
            raise typer.Exit(2)
        raise typer.Exit(skip_partition(settings, skip_to, reason, group_id=group_id))
    with fewer_collections():
        run(
            settings,
            metrics_port=metrics_port,
            metrics_host=metrics_host,
            batch_size=batch_size,
            partitions=partitions,
            group_id=group_id,
        )


@cli.command()
def dispatch(metrics_port: MetricsPort = None, metrics_host: MetricsHost = None) -> None:
    """Send webhook deliveries (and e-mails with APPSTORE_SMTP_URL); run several at scale."""
    from appstore.processes import dispatch as run

    _log_to_stderr()
    run(get_settings(), metrics_port=metrics_port, metrics_host=metrics_host)


@cli.command()
def redrive(
    reason: Annotated[
        list[str] | None, typer.Option(help="only dead letters with this reason (repeatable)")
    ] = None,
    dry_run: Annotated[bool, typer.Option("--dry-run", help="count, send nothing")] = False,
) -> None:
    """Put dead letters back on the sync-events topic once their cause is fixed, once each."""
    from consumers.redrive import redrive as run

    _log_to_stderr()
    settings = get_settings()
    if not settings.kafka_bootstrap_servers:
        console.print("[red]APPSTORE_KAFKA_BOOTSTRAP_SERVERS is not set[/red]")
        raise typer.Exit(2)
    report = run(
        settings.kafka_bootstrap_servers,
        settings.sync_events_topic,
        reasons=reason or [],
        dry_run=dry_run,
    )
    verb = "would re-drive" if dry_run else "re-drove"
    print(f"{verb} {sum(report.redriven.values())}: {dict(report.redriven)}")
    print(f"left alone {sum(report.skipped.values())}: {dict(report.skipped)}")


@cli.command()
def replay(
    projection: Annotated[str | None, typer.Option(help="one read model, default all")] = None,
) -> None:
    """Drop and rebuild read models from position 0, with a progress bar."""
    from appstore.processes import replay as run

    run(get_settings(), projection)


@cli.command()
def expire() -> None:
    """Append Expired events for installations past their expiry, lapse stale ones and
    record expiry warnings (14, 3 and 1 days before)."""
    from appstore.processes import expire as run

    result = run(get_settings())
    console.print(f"expired {result.expired}, lapsed {result.lapsed}, warned {result.warned}")


@cli.command()
def demo(
    if_empty: Annotated[
        bool, typer.Option("--if-empty", help="only load into an empty store")
    ] = False,
    apps: Annotated[
        int, typer.Option(help="apps to add (the first load has at least 60)", min=1)
    ] = 72,
) -> None:
    """Load a realistic demo catalog, developers, sellers and installations (run again: more
    apps)."""
    from appstore.bootstrap import build_store
    from appstore.demo import load_demo

    store = build_store(get_settings())
    if if_empty and store.head():
        console.print("[dim]store not empty: demo catalog not loaded[/dim]")
        return
    summary = load_demo(store, apps=apps, console=console)
    console.print(summary)


@cli.command()
def migrate() -> None:
    """Create the event store and read-model tables; write the token-check facts a store
    written by an older release lacks (idempotent)."""
    from appstore.processes import migrate as run

    run(get_settings())
    console.print("[green]schema ready[/green]")


@cli.command()
def stack(
    database_url: Annotated[
        str | None, typer.Option(help="its PostgreSQL (default APPSTORE_DATABASE_URL)")
    ] = None,
    kafka: Annotated[
        str | None, typer.Option(help="its Kafka (default APPSTORE_KAFKA_BOOTSTRAP_SERVERS)")
    ] = None,
    compose: Annotated[Path, typer.Option(help="the topology to run")] = Path("compose.yaml"),
    scale: Annotated[
        list[str] | None,
        typer.Option(metavar="SERVICE=N", help="processes of a service (default: compose's)"),
    ] = None,
    workers: Annotated[
        int | None, typer.Option(help="uvicorn workers per api process (default: compose's)")
    ] = None,
    env: Annotated[
        list[str] | None,
        typer.Option(metavar="VAR=VALUE", help="set in every process, over compose.yaml"),
    ] = None,
    logs: Annotated[Path, typer.Option(help="one log per process")] = Path("var/stack/logs"),
    status_file: Annotated[Path, typer.Option(help="the status, as JSON, each second")] = Path(
        "var/stack/status.json"
    ),
    free_ports: Annotated[
        bool, typer.Option("--free-ports", help="any free ports instead of compose's + N")
    ] = False,
    restart_delay: Annotated[float, typer.Option(help="seconds before a restart")] = 3.0,
    grace: Annotated[float, typer.Option(help="seconds from SIGTERM to SIGKILL")] = 10.0,
    demo: Annotated[bool, typer.Option("--demo", help="load the demo catalog if empty")] = False,
) -> None:
    """Run compose.yaml's processes here, supervised, with a status screen; Ctrl-C stops all."""
    from appstore.stack import StackError
    from appstore.stack_command import StackOptions, pairs, run

    try:
        options = StackOptions(
            compose=compose,
            database_url=database_url,
            kafka=kafka,
            scale={name: int(n) for name, n in pairs(scale, "--scale").items()},
            workers=workers,
            env=pairs(env, "--env"),
            logs=logs,
            status_file=status_file,
            free_ports=free_ports,
            restart_delay=restart_delay,
            grace=grace,
            demo=demo,
        )
    except (StackError, ValueError) as error:
        console.print(f"[red]{error}[/red]")
        raise typer.Exit(2) from None
    raise typer.Exit(run(options))


@cli.command("settings")
def show_settings() -> None:
    """Print every APPSTORE_* setting with its default and meaning (README's table)."""
    print(settings_table())


@audit_cli.command("show")
def audit_show(aggregate_id: str) -> None:
    """Print an aggregate's full history: position, version, time, event type, payload."""
    from appstore.bootstrap import build_store
    from projections.audit import aggregate_history

    try:
        parsed = UUID(aggregate_id)
    except ValueError:
        console.print(f"[red]not a UUID: {aggregate_id}[/red]")
        raise typer.Exit(2) from None
    events = aggregate_history(build_store(get_settings()), parsed)
    if not events:
        console.print(f"[red]no events for {aggregate_id}[/red]")
        raise typer.Exit(1)
    table = Table(title=f"aggregate {aggregate_id}")
    for column in ("position", "version", "time", "event", "payload"):
        table.add_column(column)
    for e in events:
        table.add_row(
            str(e.position), str(e.version), e.timestamp, e.event_type, json.dumps(e.payload)
        )
    Console().print(table)


@audit_cli.command("export")
def audit_export(
    since: Annotated[int, typer.Option(help="only events after this position")] = 0,
) -> None:
    """Write every event after --since as JSON lines to stdout."""
    from appstore.bootstrap import build_store
    from projections.audit import iter_log

    out = sys.stdout
    for e in iter_log(build_store(get_settings()), after=since):
        out.write(json.dumps(e.as_json()) + "\n")
    out.flush()


def main() -> None:
    """Entry point of the `appstore` console script."""
    cli()
