"""The `appstore` command line: serve, project, consume, demo, replay, expire, audit, migrate."""

from __future__ import annotations

import json
import sys
from typing import Annotated
from uuid import UUID

import typer
from rich.console import Console
from rich.table import Table

from appstore.settings import get_settings

cli = typer.Typer(help="App & Service Store back end.", no_args_is_help=True)
audit_cli = typer.Typer(help="Read the event history (ops).", no_args_is_help=True)
cli.add_typer(audit_cli, name="audit")
console = Console(stderr=True)


@cli.command()
def serve(
    host: Annotated[str | None, typer.Option(help="bind address")] = None,
    port: Annotated[int | None, typer.Option(help="port")] = None,
) -> None:
    """Run the API with the projections in-process (the embedded default)."""
    from appstore.processes import serve as run_serve

    settings = get_settings()
    run_serve(settings, host or settings.host, port or settings.port)


@cli.command()
def project() -> None:
    """Run the projections continuously (a separate process at scale)."""
    from appstore.processes import run_projector

    run_projector(get_settings())


@cli.command()
def consume() -> None:
    """Run the Kafka consumer of connector sync events."""
    from appstore.processes import run_consumer

    run_consumer(get_settings())


@cli.command()
def replay(
    projection: Annotated[str | None, typer.Option(help="one read model, default all")] = None,
) -> None:
    """Drop and rebuild read models from position 0, with a progress bar."""
    from appstore.processes import replay as run_replay

    run_replay(get_settings(), projection)


@cli.command()
def expire() -> None:
    """Append Expired events for installations past their expiry (and lapse stale ones)."""
    from appstore.processes import expire_due

    expire_due(get_settings())


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
    from appstore.demo import load_demo
    from appstore.wiring import build_store

    store = build_store(get_settings())
    if if_empty and store.recorder.max_notification_id():
        console.print("[dim]store not empty: demo catalog not loaded[/dim]")
        return
    summary = load_demo(store, apps=apps, console=console)
    console.print(summary)


@cli.command()
def migrate() -> None:
    """Create the event store and read-model tables (idempotent)."""
    from appstore.processes import migrate as run_migrate

    run_migrate(get_settings())
    console.print("[green]schema ready[/green]")


@audit_cli.command("show")
def audit_show(aggregate_id: str) -> None:
    """Print an aggregate's full history: position, version, time, event type, payload."""
    from appstore.wiring import build_store
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
    from appstore.wiring import build_store
    from projections.audit import iter_log

    out = sys.stdout
    for e in iter_log(build_store(get_settings()), after=since):
        out.write(json.dumps(e.as_json()) + "\n")
    out.flush()


def main() -> None:
    """Entry point of the `appstore` console script."""
    cli()
