"""A catch-up's read models split over processes: each process steps its own share of them.

One process runs a projector's Python on one core at a time (its lanes are threads:
projections/lanes.py); on PostgreSQL a catch-up of many events keeps that core busy while
the server has room left, so within `Projector.processes(n)` a catch-up hands its read
models to `n` processes, this one among them, in shares of about equal cost
(`Projection.replay_cost`; `groups`). Each other process is spawned once for the block,
builds its own projector over its share (`Spawn`, given by the composition root), and
steps it round by round as this one asks: a round still ends when every step of it has
ended, so what the caller does between rounds (progress, a benchmark's own writes) runs
alone. Each process reads and decodes the log's pages for its own share only. Each step
is still one transaction of its own projection, so a process that dies leaves read models
that resume cleanly; its death fails the catch-up (no hang).
"""

from __future__ import annotations

import multiprocessing
from collections.abc import Callable, Sequence
from contextlib import AbstractContextManager, suppress
from multiprocessing.connection import Connection, wait
from typing import Any, Protocol

from projections.projection import Projection
from projections.tracking import StepResult

Round = Callable[[list[str]], list[StepResult]]


class Stepper(Protocol):
    """What a process of the lanes runs: a projector (projections/runner.py)."""

    durable: bool

    def settle(self) -> None: ...

    def rounds(self, names: Sequence[str]) -> AbstractContextManager[Round]: ...

    def close(self) -> None: ...


# Builds, in a spawned process, a projector over these read models with this batch size
# (picklable: a module-level function, or a partial of one).
Spawn = Callable[[list[str], int], Stepper]


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


class StepFailed(RuntimeError):
    """A step in another process of the lanes failed (or that process died)."""


def _serve(spawn: Spawn, names: list[str], batch_size: int, conn: Connection) -> None:
    """A spawned process of the lanes: steps its share, a round per request, until None."""
    projector = spawn(names, batch_size)
    try:
        with projector.rounds(names) as run:
            while (asked := conn.recv()) is not None:
                durable, wanted = asked
                projector.durable = durable
                try:
                    if not wanted:  # settle: the page being read ahead, read
                        projector.settle()
                    conn.send(run(wanted))
                except Exception as error:  # the caller raises it
                    conn.send(StepFailed(f"{', '.join(wanted)}: {type(error).__name__}: {error}"))
    finally:
        projector.close()


class ProcessLanes:
    """The other processes of a catch-up, each over a fixed share of the read models."""

    def __init__(self, spawn: Spawn, shares: list[list[str]], batch_size: int) -> None:
        context = multiprocessing.get_context("spawn")  # no fork of a threaded process
        self._lanes: list[tuple[Connection, Any, list[str]]] = []
        try:
            for names in shares:
                mine, theirs = context.Pipe()
                process = context.Process(
                    target=_serve, args=(spawn, names, batch_size, theirs), daemon=True
                )
                process.start()
                theirs.close()
                self._lanes.append((mine, process, names))
        except BaseException:
            self.close()
            raise
        self.names = {name for _, _, names in self._lanes for name in names}
        self._asked: list[list[str]] = [[] for _ in self._lanes]
        self._settled = True  # no step since the last `settle`: nothing read ahead since

    def run(self, names: list[str], here: Round, durable: bool) -> list[StepResult]:
        """One round: the names of the other processes' shares stepped there, the others by
        `here` meanwhile; the results in the order of `names`. The first failure is raised
        once every step of the round has ended (the pipes stay in step)."""
        self.send(names, durable)
        failure: BaseException | None = None
        results: dict[str, StepResult] = {}
        mine = [n for n in names if n not in self.names]
        try:
            results.update(zip(mine, here(mine), strict=True))
        except BaseException as error:
            failure = error
        try:
            results.update(self.receive())
        except BaseException as error:
            failure = failure or error
        if failure is not None:
            raise failure
        return [results[name] for name in names]

    def settle(self) -> None:
        """Waits until each other process has read the page it reads ahead (if any)."""
        if self._settled:
            return
        self._settled = True
        for conn, _, _ in self._lanes:
            conn.send((True, []))
        for conn, process, _ in self._lanes:
            if isinstance(answer := _answer(conn, process), BaseException):
                raise answer

    def send(self, names: Sequence[str], durable: bool) -> None:
        """Starts a round of those of `names` the other processes step (theirs only)."""
        self._settled = False
        for i, (conn, _, share) in enumerate(self._lanes):
            wanted = [n for n in names if n in share]
            self._asked[i] = wanted
            if wanted:
                conn.send((durable, wanted))

    def receive(self) -> dict[str, StepResult]:
        """The results of the round `send` started, once every process has ended it; raises
        (after all have) the first failure, or StepFailed for a process that died."""
        results: dict[str, StepResult] = {}
        failure: BaseException | None = None
        for i, (conn, process, _) in enumerate(self._lanes):
            if not self._asked[i]:
                continue
            self._asked[i] = []
            answer = _answer(conn, process)
            if isinstance(answer, BaseException):
                failure = failure or answer
            else:
                results.update((r.projection, r) for r in answer)
        if failure is not None:
            raise failure
        return results

    def close(self) -> None:
        """Ends the other processes (after the round under way, if any)."""
        for conn, _, _ in self._lanes:
            with suppress(OSError):  # already gone
                conn.send(None)
        for conn, process, _ in self._lanes:
            process.join(timeout=10)
            if process.is_alive():
                process.terminate()
                process.join()
            conn.close()
        self._lanes = []

    def __enter__(self) -> ProcessLanes:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()


def _answer(conn: Connection, process: Any) -> list[StepResult] | BaseException:
    """A process's answer to its round, or StepFailed if it died first."""
    if conn in wait([conn, process.sentinel]):  # an answer sent just before ending counts
        with suppress(EOFError, OSError):  # else it died while answering
            answer: list[StepResult] | BaseException = conn.recv()
            return answer
    process.join(timeout=10)  # its end seen on the pipe may come before its exit code
    return StepFailed(f"a projector process ended (exit code {process.exitcode})")
