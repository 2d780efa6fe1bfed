"""Steps of different projections run at once, each lane on a connection of its own.

A catch-up step spends about half its time waiting for PostgreSQL (its COPYs, its COMMIT
reaching the disk) and the other half in Python (decoding rows, handlers, formatting rows
for COPY). With two lanes, one lane's Python runs while the other's step waits for the
server. Each step is still one transaction of its own projection (its rows and its
tracking position); two lanes never step the same projection at once (a round steps each
projection once), so the order of any one projection's steps is the order of the log.

A round (`Lanes.run`) hands its projections, costliest first, to whichever lane is free
(the calling thread is one lane) and returns when every step of it has ended: nothing
runs between rounds, so whatever the caller does with a round's results (progress, a
benchmark's own writes) runs alone.
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Callable, Sequence
from contextlib import AbstractContextManager
from typing import Generic, TypeVar

R = TypeVar("R")
_STOP = object()


class Lanes(Generic[R]):
    """`extra` threads besides the caller's, each inside `lane()` (entered once per thread
    for all its steps: e.g. holding a connection) running `step(name)` for the names of a
    round."""

    def __init__(
        self,
        extra: int,
        step: Callable[[str], R],
        lane: Callable[[], AbstractContextManager[object]],
    ) -> None:
        self._step = step
        self._lane = lane
        self._work: queue.SimpleQueue[object] = queue.SimpleQueue()
        self._done: queue.SimpleQueue[tuple[str, R | BaseException]] = queue.SimpleQueue()
        self._threads = [
            threading.Thread(target=self._serve, name=f"projector-lane-{i + 1}", daemon=True)
            for i in range(max(0, extra))
        ]
        for thread in self._threads:
            thread.start()

    def _attempt(self, name: str) -> R | BaseException:
        try:
            return self._step(name)
        except BaseException as error:  # handed to the caller of `run`
            return error

    def _serve(self) -> None:
        # A lane that cannot start (no connection) takes no name: the caller's lane steps
        # them all.
        with self._lane():
            while (name := self._work.get()) is not _STOP:
                assert isinstance(name, str)
                self._done.put((name, self._attempt(name)))

    def run(self, names: Sequence[str], cost: Callable[[str], float]) -> list[R]:
        """One step of each of `names` (distinct), the costliest first, on whichever lane
        is free; the results in the order of `names` once all have ended. The first
        error (in that order) is raised after the others have ended."""
        if len(set(names)) != len(names):
            raise ValueError(f"a round steps each projection once: {list(names)}")
        for name in sorted(names, key=lambda n: -cost(n)):
            self._work.put(name)
        results: dict[str, R | BaseException] = {}
        while True:  # the caller is a lane too
            try:
                taken = self._work.get_nowait()
            except queue.Empty:
                break
            assert isinstance(taken, str)
            results[taken] = self._attempt(taken)
        while len(results) < len(names):
            name, outcome = self._done.get()
            results[name] = outcome
        for name in names:
            if isinstance(error := results[name], BaseException):
                raise error
        return [results[name] for name in names]  # type: ignore[misc]

    def close(self) -> None:
        """Ends the lanes' threads (after their steps under way)."""
        for _ in self._threads:
            self._work.put(_STOP)
        for thread in self._threads:
            thread.join()

    def __enter__(self) -> Lanes[R]:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()
