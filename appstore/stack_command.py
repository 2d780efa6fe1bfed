"""The body of `appstore stack`: compose.yaml's topology on this machine, a one-screen status
until Ctrl-C, then everything stopped.

The screen (rich) shows each process, its pid, whether its compose healthcheck (`/readyz`)
answers 200, its lag (api, projector: events the furthest-behind read model has not applied;
consumer: messages its partitions have not committed; dispatcher: deliveries due that no
dispatcher has claimed) and its restarts. The same state is written
to a status file (JSON) each second for scripts.
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
import secrets
import signal
import socket
import threading
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from rich.console import Console
from rich.live import Live
from rich.table import Table

from appstore.compose import ComposeError, Service, load
from appstore.stack import DATABASE_VARIABLE, KAFKA_VARIABLE, Stack, StackError, next_port

console = Console(stderr=True)
SECRET_VARIABLE = "APPSTORE_SECRET_KEY"
WORKERS_VARIABLE = "APPSTORE_SERVE_WORKERS"
DEMO = Service("demo", ("demo", "--if-empty"), {}, once=True)


@dataclasses.dataclass
class StackOptions:
    """What `appstore stack` was asked for (appstore/cli.py fills it from its options)."""

    compose: Path = Path("compose.yaml")
    database_url: str | None = None
    kafka: str | None = None
    scale: dict[str, int] = dataclasses.field(default_factory=dict)
    workers: int | None = None
    env: dict[str, str] = dataclasses.field(default_factory=dict)
    host: str = "127.0.0.1"
    logs: Path = Path("var/stack/logs")
    status_file: Path = Path("var/stack/status.json")
    free_ports: bool = False
    restart_delay: float = 3.0
    grace: float = 10.0
    demo: bool = False


def pairs(values: list[str] | None, what: str) -> dict[str, str]:
    """`NAME=VALUE` options as a dict (StackError naming the bad one)."""
    out: dict[str, str] = {}
    for value in values or []:
        name, sep, rest = value.partition("=")
        if not sep or not name:
            raise StackError(f"{what} must look like NAME=VALUE, not {value!r}")
        out[name] = rest
    return out


def topology(options: StackOptions, env: Mapping[str, str]) -> list[Service]:
    """compose.yaml's services with the scale, workers and demo asked for."""
    services = load(options.compose, env)
    names = {s.name for s in services}
    for name, replicas in options.scale.items():
        if name not in names:
            raise StackError(f"--scale {name}: compose.yaml has no service {name!r}")
        if replicas < 0:
            raise StackError(f"--scale {name}: replicas cannot be negative")
    out = []
    for service in services:
        if service.name in options.scale and not service.once:
            service = dataclasses.replace(service, replicas=options.scale[service.name])
        if options.workers is not None and WORKERS_VARIABLE in service.environment:
            environment = {**service.environment, WORKERS_VARIABLE: str(options.workers)}
            service = dataclasses.replace(service, environment=environment)
        out.append(service)
        if options.demo and service.name == "migrate":
            out.append(dataclasses.replace(DEMO, environment=service.environment))
    return out


def free_port_for() -> Any:
    """Ports nobody listens on, the same one again for a restarted replica (tests)."""
    chosen: dict[tuple[str, int, int], int] = {}

    def port_for(service: str, replica: int, port: int) -> int:
        key = (service, replica, port)
        if key not in chosen:
            with socket.socket() as s:
                s.bind(("127.0.0.1", 0))
                chosen[key] = int(s.getsockname()[1])
        return chosen[key]

    return port_for


def build(options: StackOptions) -> Stack:
    """The stack these options describe (StackError when they cannot work)."""
    env = {**os.environ, **options.env}
    database_url = options.database_url or env.get(DATABASE_VARIABLE) or ""
    if not database_url.startswith(("postgresql://", "postgres://")):
        raise StackError(
            "the stack needs PostgreSQL: --database-url postgresql://… (make stack starts one)"
        )
    extra = dict(options.env)
    if not env.get(SECRET_VARIABLE):  # one key for every process, so pages work on any
        extra[SECRET_VARIABLE] = env[SECRET_VARIABLE] = secrets.token_hex(32)
    try:
        services = topology(options, env)
    except ComposeError as error:
        raise StackError(str(error)) from None
    kafka = options.kafka or env.get(KAFKA_VARIABLE) or ""
    if not kafka and any(s.environment.get(KAFKA_VARIABLE) for s in services if s.replicas):
        raise StackError("the consumers need Kafka: --kafka HOST:PORT (make stack starts one)")
    return Stack(
        services,
        database_url=database_url,
        kafka=kafka,
        logs=options.logs,
        host=options.host,
        port_for=free_port_for() if options.free_ports else next_port,
        env=extra,
        restart_delay=options.restart_delay,
        grace=options.grace,
        on_event=lambda line: console.print(f"[dim]{time.strftime('%H:%M:%S')}[/dim] {line}"),
    )


def screen(stack: Stack, options: StackOptions) -> Table:
    """The one-screen status."""
    status = stack.status()
    table = Table(title="App & Service Store: the compose topology on this machine")
    for column in ("process", "pid", "port", "healthy (/readyz)", "lag", "restarts", "log"):
        table.add_column(
            column, justify="right" if column in ("pid", "port", "lag", "restarts") else "left"
        )
    for row in status["processes"]:
        health = row["health"]
        style = "green" if health in ("ready", "running", "done") else "yellow"
        if health.startswith("not ready") or health == "exited":
            style = "red"
        table.add_row(
            row["name"],
            str(row["pid"] or "-"),
            str(urlsplit(row["ready_url"]).port) if row["ready_url"] else "-",
            f"[{style}]{health}[/{style}]",
            "-" if row["lag"] is None else f"{row['lag']:,}",
            str(row["restarts"]),
            Path(row["log"]).name,
        )
    behind = ", ".join(f"{n} {lag:,}" for n, lag in status["projections"].items()) or "?"
    urls = [
        r["ready_url"].rsplit("/", 1)[0]
        for r in status["processes"]
        if r["service"] == "api" and r["ready_url"]
    ]
    table.caption = (
        f"read models behind the log: {behind} · api {' '.join(urls)} · logs {options.logs}/ "
        f"· status {options.status_file} · Ctrl-C stops everything"
    )
    return table


def run(options: StackOptions) -> int:
    """Starts the stack, shows its status until SIGINT/SIGTERM, stops it; the exit code."""
    try:
        stack = build(options)
    except StackError as error:
        console.print(f"[red]{error}[/red]")
        return 2
    stop = threading.Event()

    def request_stop(signum: int, _frame: Any) -> None:
        if stop.is_set():
            stack.grace = 0  # a second Ctrl-C: no more waiting
        stop.set()

    for signum in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
        signal.signal(signum, request_stop)
    code = 0
    try:
        stack.start()
        shown_ready = False
        # On a terminal the screen refreshes in place; elsewhere (a log) it is printed once
        # the stack is ready, and the event lines tell the rest.
        live = Live(screen(stack, options), console=console, auto_refresh=False)
        with live if console.is_terminal else contextlib.nullcontext():
            while not stop.wait(0.5):
                stack.supervise()
                stack.write_status(options.status_file)
                if console.is_terminal:
                    live.update(screen(stack, options), refresh=True)
                elif stack.ready() and not shown_ready:
                    console.print(screen(stack, options))
                    console.print("[green]stack ready[/green]")
                shown_ready = shown_ready or stack.ready()
    except StackError as error:
        console.print(f"[red]{error}[/red]")
        code = 1
    finally:
        console.print("stopping: SIGTERM to every process …")
        exits = stack.stop()
        stack.write_status(options.status_file)
        ended = ", ".join(f"{name} {code}" for name, code in exits.items())
        console.print(f"stopped ({ended or 'nothing was running'})")
    return code
