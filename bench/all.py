"""`make bench`: the benches converted to the shared row type, at sizes that finish in a few
minutes together, printed as ONE table (figure, raw baseline from the same run, ratio,
goal, met). Needs the throw-away PostgreSQL that `make bench` starts.

    python -m bench.all [--quick]

Not in the table yet (run them one by one: `make bench-NAME`): search, ingest,
introspect, projection_catchup, webhooks, pages — they still print their own tables.
"""

from __future__ import annotations

import argparse
import os
import time

from rich.console import Console

from bench import append, http_load
from bench.support import Row, rows_table

console = Console(width=170)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--quick", action="store_true", help="shorter runs (a smoke test)")
    args = p.parse_args()
    seconds = 4.0 if args.quick else 10.0
    started = time.monotonic()
    load = (os.getloadavg()[0], os.cpu_count())
    rows: list[Row] = []
    rows += http_load.run(http_load.parser().parse_args(["--seconds", str(2 * seconds)]))
    rows += append.run(append.parser().parse_args(["--seconds", str(seconds)]))
    console.print(
        rows_table(
            rows,
            f"make bench: {time.monotonic() - started:.0f} s,"
            f" load average {load[0]:.1f} on {load[1]} cores at the start",
        )
    )


if __name__ == "__main__":
    main()
