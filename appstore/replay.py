"""`appstore replay`: drops read models and rebuilds them from position 0.

The read models are rebuilt together, round robin, so each range of the log is read and
decoded once for all of them. On PostgreSQL with `replay_workers` > 1 (the default: 2) they
are split into that many shares of about equal cost, each stepped by a process of its own,
this one among them (`Projector.processes`, projections/process_lanes.py): the shares apply
in parallel. Each step is still one transaction writing its rows with its tracking
position, so a process that dies leaves read models that resume (or are replayed again)
cleanly. Steps do not wait for their COMMIT to reach the disk
(`Projector.durable`): a replay is rebuilt from the log if it dies. The secondary indexes
are dropped before and built once after (`Projector.defer_indexes`).
"""

from __future__ import annotations

import time

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

from appstore.bootstrap import build_store, read_side
from appstore.collector import fewer_collections
from appstore.settings import Settings
from projections.process_lanes import StepFailed
from projections.read_side import all_projections
from projections.runner import StepResult

console = Console(stderr=True)


def replay(settings: Settings, projection_name: str | None) -> None:
    """Drops and rebuilds one read model (or all) from position 0, with a progress bar."""
    known = all_projections()
    if projection_name is not None and projection_name not in [p.name for p in known]:
        console.print(
            f"[red]unknown projection {projection_name!r}; known: "
            f"{', '.join(p.name for p in known)}[/red]"
        )
        raise SystemExit(2)
    chosen = [p for p in known if projection_name in (None, p.name)]
    names = [p.name for p in chosen]
    store = build_store(settings)
    batch = settings.projector.replay_batch_size
    projector = read_side(store, settings, names=names, batch_size=batch)
    head = projector.head()
    started = time.perf_counter()
    deferred = {}
    for name in names:
        projector.reset(name)
        deferred[name] = projector.defer_indexes(name)
    projector.durable = False  # see Projector.durable: a replay that dies is run again
    with Progress(
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("{task.fields[rate]:>10} ev/s"),
        TimeRemainingColumn(),
        console=console,
    ) as progress:
        tasks = {name: progress.add_task(name, total=head or 1, rate="") for name in names}
        begun = time.perf_counter()

        def advance(result: StepResult) -> None:
            if result.position >= 0:
                rate = result.position / max(time.perf_counter() - begun, 1e-9)
                progress.update(
                    tasks[result.projection], completed=result.position, rate=f"{rate:,.0f}"
                )

        workers = settings.projector.replay_workers
        try:
            with fewer_collections(), projector.processes(workers) as used:
                projector.catch_up(names, on_progress=advance)
        except StepFailed as failure:
            console.print(f"[red]replay failed: {failure}; run `appstore replay` again[/red]")
            raise SystemExit(1) from failure
        for task in tasks.values():
            progress.update(task, completed=head or 1)
        indexes = progress.add_task("indexes", total=len(names), rate="")
        for name in names:
            projector.build_indexes(name, deferred[name])
            progress.advance(indexes)
    projector.close()
    console.print(
        f"[green]rebuilt[/green] {', '.join(names)}: {head} events "
        f"in {time.perf_counter() - started:.2f}s"
        + (f" by {used} processes" if used > 1 else "")
        + " (nothing is sent again: what was delivered is in the log)"
    )
