"""What the benchmarks share: throw-away databases, percentiles, ports, progress bars, and
the row every bench returns (figure, raw baseline of the same run, ratio, goal, met)."""

from __future__ import annotations

import socket
import uuid
from dataclasses import dataclass

import psycopg
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table


def fresh_database(admin_url: str, prefix: str = "bench") -> str:
    """A new empty PostgreSQL database on the server of `admin_url` (its URL)."""
    name = f"{prefix}_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(admin_url, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    return admin_url.rsplit("/", 1)[0] + f"/{name}"


def percentile(values: list[float], p: float) -> float:
    """The p-th percentile (0–100) of `values`, nearest rank."""
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(p / 100 * (len(ordered) - 1)))]


def free_port() -> int:
    """A TCP port on 127.0.0.1 nobody listens on right now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def progress_bar(console: Console | None = None) -> Progress:
    """The bar every long step shows: what, how far, how many, how long."""
    return Progress(
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("{task.fields[rate]}"),
        TimeElapsedColumn(),
        console=console,
    )


@dataclass(frozen=True)
class Row:
    """One figure of a benchmark next to its raw baseline from the same run.

    `ratio` is figure ÷ baseline as the goal reads it (throughputs: figure/raw, so higher is
    better; latencies say so in `goal`); `met` is None where the goal is not a yes/no.
    """

    bench: str
    figure: str
    value: str
    baseline: str = ""
    ratio: float | None = None
    goal: str = ""
    met: bool | None = None


def rows_table(rows: list[Row], title: str) -> Table:
    """The one table every bench prints (and `bench.all` prints for all of them)."""
    table = Table(title=title, show_lines=False)
    for column, justify in (
        ("bench", "left"),
        ("figure", "left"),
        ("value", "right"),
        ("raw baseline (same run)", "right"),
        ("ratio", "right"),
        ("goal", "left"),
        ("met", "center"),
    ):
        table.add_column(column, justify=justify)  # type: ignore[arg-type]
    for row in rows:
        met = "" if row.met is None else ("[green]yes[/]" if row.met else "[red]NO[/]")
        ratio = "" if row.ratio is None else f"{row.ratio:.2f}"
        table.add_row(row.bench, row.figure, row.value, row.baseline, ratio, row.goal, met)
    return table
