"""`make bench`: every bench at a size that finishes in under 10 minutes together on a
2-core machine, printed as ONE table (figure, raw baseline from the same run, ratio, goal,
met). Needs the throw-away PostgreSQL and Kafka that `make bench` starts.

    python -m bench.all [--quick]

Each bench also runs alone, at its own (larger) default sizes: `make bench-NAME`. The
sizes here are smaller; the rows say what they measured (the replay row in particular is
not the 1M-event verdict: `make bench-projection_catchup BENCH_ARGS="--events 1000000
--replay-only"` is). A bench that fails shows as a failed row; the others still run.
"""

from __future__ import annotations

import argparse
import os
import time
import traceback

from rich.console import Console

from bench import (
    append,
    http_load,
    ingest,
    introspect,
    pages,
    projection_catchup,
    search,
    webhooks,
)
from bench.support import Row, rows_table

console = Console(width=170)


def sizes(quick: bool) -> list[tuple[str, list[str]]]:
    """(bench, its arguments) in the order they run."""
    seconds = 4.0 if quick else 10.0
    return [
        ("http_load", ["--seconds", str(2 * seconds)]),
        ("append", ["--seconds", str(seconds)]),
        ("search", ["--apps", "2000" if quick else "10000", "--per-kind", "20" if quick else "40", "--serve"]),
        ("ingest", ["-n", "3000" if quick else "10000", "--latency-messages", "300" if quick else "1000"]),
        ("introspect", ["--seconds", "0.5" if quick else "2", "--tokens", "100" if quick else "300"]),
        ("projection_catchup", ["--events", "8000" if quick else "30000"]),
        ("webhooks", ["--deliveries", "300" if quick else "1000", "--latency-events", "100" if quick else "200"]),
        ("pages", ["--apps", "500" if quick else "2000", "--requests", "30" if quick else "100"]),
    ]  # fmt: skip


MODULES = {
    "http_load": http_load,
    "append": append,
    "search": search,
    "ingest": ingest,
    "introspect": introspect,
    "projection_catchup": projection_catchup,
    "webhooks": webhooks,
    "pages": pages,
}


def main() -> None:
    p = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("--quick", action="store_true", help="smaller runs (a smoke test)")
    p.add_argument("--only", nargs="+", choices=list(MODULES), help="just these benches")
    args = p.parse_args()
    started = time.monotonic()
    load = (os.getloadavg()[0], os.cpu_count())
    rows: list[Row] = []
    for name, arguments in sizes(args.quick):
        if args.only and name not in args.only:
            continue
        module = MODULES[name]
        console.rule(f"{name} {' '.join(arguments)}")
        begun = time.monotonic()
        try:
            rows += module.run(module.parser().parse_args(arguments))
        except (Exception, SystemExit) as error:  # one broken bench must not hide the rest
            traceback.print_exc()
            rows.append(Row(name, f"FAILED: {error!r}"[:120], "", met=False))
        console.print(f"{name}: {time.monotonic() - begun:.0f} s")
    console.print(
        rows_table(
            rows,
            f"make bench: {time.monotonic() - started:.0f} s, load average"
            f" {load[0]:.1f} at the start, {os.getloadavg()[0]:.1f} at the end, on {load[1]} cores",
        )
    )


if __name__ == "__main__":
    main()
