"""`appstore replay`: drops read models and rebuilds them from position 0.

The read models are rebuilt together, round robin, so each range of the log is read and
decoded once for all of them. On PostgreSQL with `replay_workers` > 1 they are split into
that many groups of about equal cost (`Projection.replay_cost`), each rebuilt by its own
process: the groups apply in parallel. Each step is still one transaction writing its rows
with its tracking position, so a worker that dies leaves a read model that resumes (or is
replayed again) cleanly. Steps do not wait for their COMMIT to reach the disk
(`Projector.durable`): a replay is rebuilt from the log if it dies. The secondary indexes
are dropped before and built once after (`Projector.defer_indexes`).
"""

from __future__ import annotations

import gc
import multiprocessing
import queue
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from typing import Any

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

from appstore.bootstrap import build_store, read_side
from appstore.settings import Settings
from projections.projection import Projection
from projections.read_side import all_projections
from projections.runner import StepResult

console = Console(stderr=True)


def groups(projections: Sequence[Projection], workers: int) -> list[list[str]]:
    """The projections' names in at most `workers` groups of about equal `replay_cost`
    (the costliest first, each to the cheapest group so far); no empty group."""
    shares: list[tuple[float, list[str]]] = [(0.0, []) for _ in range(max(1, workers))]
    for projection in sorted(projections, key=lambda p: -p.replay_cost):
        cheapest = min(range(len(shares)), key=lambda i: shares[i][0])
        cost, names = shares[cheapest]
        shares[cheapest] = (cost + projection.replay_cost, [*names, projection.name])
    order = [p.name for p in projections]
    return [sorted(names, key=order.index) for _, names in shares if names]


@contextmanager
def fewer_collections() -> Iterator[None]:
    """The garbage collector runs every 50,000 allocations (not 700) and skips what exists
    already: applying an event allocates dicts by the dozen, and collecting them that often
    cost a fifth of a replay's CPU (and 5-8% of a catch-up's time: `appstore project` runs
    under it too). The previous settings come back afterwards."""
    before = gc.get_threshold()
    gc.freeze()
    gc.set_threshold(50_000, 20, 100)
    try:
        yield
    finally:
        gc.set_threshold(*before)
        gc.unfreeze()


def _rebuild(settings: Settings, names: list[str], on_step: Callable[[str, int], None]) -> None:
    """Rebuilds these (already reset) read models to the head, round robin, calling
    `on_step(projection, position)` after each step."""
    store = build_store(settings)
    projector = read_side(  # set up by `replay`, which defers the indexes: keep them so
        store, settings, names=names, batch_size=settings.projector.replay_batch_size, setup=False
    )
    projector.durable = False  # see Projector.durable: a replay that dies is run again

    def advance(result: StepResult) -> None:
        if result.position >= 0:
            on_step(result.projection, result.position)

    try:
        with fewer_collections():
            projector.catch_up(names, on_progress=advance)
    finally:
        projector.engine.dispose()
        store.close()


def _worker(settings: Settings, names: list[str], report: Any) -> None:
    """A replay process: rebuilds its group, reporting its steps on the `report` queue."""
    _rebuild(settings, names, lambda name, position: report.put((name, position)))


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
    projector = read_side(store, settings, names=names)
    head = projector.head()
    started = time.perf_counter()
    deferred = {}
    for name in names:
        projector.reset(name)
        deferred[name] = projector.defer_indexes(name)
    projector.engine.dispose()
    parallel = settings.database_url.startswith("postgres")
    shares = groups(chosen, settings.projector.replay_workers if parallel else 1)
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

        def advance(name: str, position: int) -> None:
            rate = position / max(time.perf_counter() - begun, 1e-9)
            progress.update(tasks[name], completed=position, rate=f"{rate:,.0f}")

        if len(shares) == 1:
            _rebuild(settings, names, advance)
        else:
            _in_processes(settings, shares, advance)
        for task in tasks.values():
            progress.update(task, completed=head or 1)
        indexes = progress.add_task("indexes", total=len(names), rate="")
        for name in names:
            projector.build_indexes(name, deferred[name])
            progress.advance(indexes)
    projector.engine.dispose()
    store.close()
    console.print(
        f"[green]rebuilt[/green] {', '.join(names)}: {head} events "
        f"in {time.perf_counter() - started:.2f}s"
        + (f" by {len(shares)} processes" if len(shares) > 1 else "")
        + " (nothing is sent again: what was delivered is in the log)"
    )


def _in_processes(
    settings: Settings, shares: list[list[str]], advance: Callable[[str, int], None]
) -> None:
    """One (spawned) process per group; their steps move the bars; any failure fails all."""
    context = multiprocessing.get_context("spawn")
    report = context.Queue()
    workers = [
        context.Process(target=_worker, args=(settings, names, report), daemon=True)
        for names in shares
    ]
    for worker in workers:
        worker.start()
    try:
        while any(w.is_alive() for w in workers) or not report.empty():
            try:
                name, position = report.get(timeout=0.2)
            except queue.Empty:
                continue
            advance(name, position)
    finally:
        for worker in workers:
            worker.join(timeout=5)
            if worker.is_alive():
                worker.terminate()
    failed = [names for names, w in zip(shares, workers, strict=True) if w.exitcode != 0]
    if failed:
        console.print(f"[red]replay failed for {failed}: run `appstore replay` again[/red]")
        raise SystemExit(1)
