"""The pages a projector's steps share (projections/log_pages.py): what a round may reuse,
and what another thread must read anew."""

from __future__ import annotations

import threading
from dataclasses import dataclass
from typing import Any

from projections.log_pages import LogPages


@dataclass(frozen=True)
class Note:
    id: int
    topic: str = "t"


class Log:
    """A log the test appends to; counts the reads."""

    def __init__(self) -> None:
        self.notes: list[Note] = []
        self.reads = 0
        self.readers: list[str] = []  # the threads that read, in turn

    def notifications(self, start: int, limit: int, **_: Any) -> list[Note]:
        self.reads += 1
        self.readers.append(threading.current_thread().name)
        return [n for n in self.notes if n.id >= start][:limit]

    def decode(self, note: Note) -> str:
        return f"event {note.id}"


def test_a_round_reuses_its_short_pages_but_another_thread_reads_what_was_appended() -> None:
    log = Log()
    log.notes = [Note(1), Note(2)]
    pages = LogPages(log, keep=10)  # type: ignore[arg-type]
    in_round = threading.Event()
    appended = threading.Event()
    seen: dict[str, list[int]] = {}

    def run_once() -> None:  # a projector loop's round, in its own thread
        with pages.round():
            seen["round, first"] = [n.id for n in pages.select(1, 5)]
            in_round.set()
            appended.wait(5)
            seen["round, again"] = [n.id for n in pages.select(1, 5)]

    loop = threading.Thread(target=run_once)
    loop.start()
    assert in_round.wait(5)
    log.notes.append(Note(3))  # appended while the round runs (by a command, a sweep)
    seen["catch-up"] = [n.id for n in pages.select(1, 5)]  # this thread: a catch-up
    appended.set()
    loop.join(5)
    assert seen["round, first"] == [1, 2]
    assert seen["round, again"] == [1, 2]  # the round's own page: reused, no read
    assert seen["catch-up"] == [1, 2, 3]  # never the other thread's short page


def test_a_full_page_is_read_once_for_every_projection_and_each_event_decoded_once() -> None:
    log = Log()
    log.notes = [Note(i) for i in range(1, 7)]
    pages = LogPages(log, keep=10)  # type: ignore[arg-type]
    first = pages.select(1, 3)
    assert pages.select(1, 3) is first and log.reads == 1
    assert [pages.decode(n) for n in first] == ["event 1", "event 2", "event 3"]


def test_a_lane_of_a_catch_up_takes_the_page_its_read_ahead_read() -> None:
    """The lanes of a catch-up (projections/lanes.py) share its read-ahead: a lane asking
    for the next page takes the one read beside it (and starts the one after), no read of
    its own; the other lanes then reuse that page."""
    log = Log()
    log.notes = [Note(i) for i in range(1, 8)]
    pages = LogPages(log, keep=10)  # type: ignore[arg-type]
    with pages.reading_ahead({"t"}) as ahead:
        assert [n.id for n in pages.select(1, 2)] == [1, 2]  # read here; (3, 2) read ahead
        ahead.settle()
        seen: list[int] = []

        def lane() -> None:
            with pages.sharing(ahead):
                seen.extend(n.id for n in pages.select(3, 2))

        other = threading.Thread(target=lane, name="lane")
        other.start()
        other.join(5)
        ahead.settle()
        assert seen == [3, 4]
        assert [n.id for n in pages.select(3, 2)] == [3, 4]
    assert "lane" not in log.readers
    assert log.readers[0] == threading.current_thread().name
    assert len(log.readers) == 3  # (1, 2) here, (3, 2) and (5, 2) ahead
