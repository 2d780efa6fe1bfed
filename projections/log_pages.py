"""The log's pages as a projector reads them: each page read once for the projections
stepping over it, each event decoded once, and during a catch-up on PostgreSQL the next page
read and decoded on a thread of its own while the steps apply the current one.

A catch-up step spends much of its time waiting for the database (its COPYs, its commit);
reading the next page and decoding its events (a fifth of the client's work) fits in those
waits. Only a full page is final (kept, or taken from the read-ahead): a short one, at the
head of the log, may still grow as events are appended, so it is read again.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Callable, Collection, Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import contextmanager
from typing import Any, cast

from eventsourcing.persistence import Notification

from application.store import Store

Page = tuple[Sequence[Notification], dict[int, Any]]  # the page, its events decoded by id
Pages = dict[tuple[int, int], Sequence[Notification]]  # by (start, limit)


class ReadAhead:
    """One page ahead: `start(first, limit)` reads it in the background, `take(first,
    limit)` returns it (None if that page was not asked for, or came back short)."""

    def __init__(
        self,
        read: Callable[[int, int], Sequence[Notification]],
        decode: Callable[[Notification], Any],
        topics: Collection[str],
    ) -> None:
        self._read, self._decode, self._topics = read, decode, topics
        self._executor = ThreadPoolExecutor(1, thread_name_prefix="projector-read-ahead")
        self._pending: tuple[tuple[int, int], Future[Page]] | None = None

    def _page(self, first: int, limit: int) -> Page:
        notifications = self._read(first, limit)
        wanted = self._topics
        return notifications, {n.id: self._decode(n) for n in notifications if n.topic in wanted}

    def start(self, first: int, limit: int) -> None:
        if self._pending is None or self._pending[0] != (first, limit):
            self._pending = ((first, limit), self._executor.submit(self._page, first, limit))

    def take(self, first: int, limit: int) -> Page | None:
        pending = self._pending
        if pending is None or pending[0] != (first, limit):
            return None
        self._pending = None
        page = pending[1].result()  # a failed read fails the step, as its own read would
        return page if len(page[0]) == limit else None

    def settle(self) -> None:
        """Waits until the page under way (if any) has been read and decoded."""
        if self._pending is not None:
            self._pending[1].exception()

    def close(self) -> None:
        """Stops the thread (after the read under way, if any)."""
        self._executor.shutdown(wait=True, cancel_futures=True)
        self._pending = None


class LogPages:
    """The pages and decoded events a projector's steps share."""

    def __init__(self, store: Store, keep: int) -> None:
        self.store = store
        self._keep = keep  # decoded events kept (the oldest go first)
        # Decoded events by position, shared by the projections stepping over the same range.
        self._decoded: OrderedDict[int, Any] = OrderedDict()
        self._last_read: tuple[tuple[int, int], Sequence[Notification]] | None = None
        # Taken to read a page (or the read-ahead's) and to keep a decoded event: the lanes
        # of a catch-up (projections/lanes.py) step projections over the same pages at once.
        self._lock = threading.Lock()
        # Per thread: .round, the pages read during one round (`Projector.run_once`), short
        # ones too: the projections it steps mostly start at the same position, and a page
        # read a moment earlier is as good (what was appended since, the next round
        # applies) — for that round only, not for another thread's catch-up meanwhile,
        # which must see what was appended before it began; .ahead, the ReadAhead of this
        # thread's catch-up.
        self._thread = threading.local()

    @contextmanager
    def round(self) -> Iterator[None]:
        """Pages this thread reads until the end of the block are reused within it, short
        ones too."""
        self._thread.round = {}
        try:
            yield
        finally:
            self._thread.round = None

    @contextmanager
    def reading_ahead(self, topics: Collection[str]) -> Iterator[ReadAhead]:
        """Until the end of the block, each full page this thread reads starts the read of
        the next (its events of these topics decoded too) on a thread of its own."""
        ahead = ReadAhead(self.store.notifications, self.store.decode, topics)
        self._thread.ahead = ahead
        try:
            yield ahead
        finally:
            ahead.close()
            self._thread.ahead = None

    @contextmanager
    def sharing(self, ahead: ReadAhead | None) -> Iterator[None]:
        """Until the end of the block, this thread's reads take part in another thread's
        read-ahead (the lanes of one catch-up: projections/lanes.py)."""
        self._thread.ahead = ahead
        try:
            yield
        finally:
            self._thread.ahead = None

    def settle(self) -> None:
        """Waits for this thread's read-ahead (if any) to finish its page: so a benchmark
        timing other work between steps does not time the read-ahead's too."""
        ahead: ReadAhead | None = getattr(self._thread, "ahead", None)
        if ahead is not None:
            ahead.settle()

    def select(self, start: int, limit: int) -> Sequence[Notification]:
        """The next notifications; a full range the last step read is reused (round robin)."""
        key = (start, limit)
        cached = self._last_read
        if cached is not None and cached[0] == key:
            return cached[1]
        pages = cast(Pages | None, getattr(self._thread, "round", None))
        if pages is not None and key in pages:
            return pages[key]
        with self._lock:  # another lane may be reading this very page: read it once
            return self._read(key, pages)

    def _read(self, key: tuple[int, int], pages: Pages | None) -> Sequence[Notification]:
        start, limit = key
        cached = self._last_read
        if cached is not None and cached[0] == key:
            return cached[1]
        ahead: ReadAhead | None = getattr(self._thread, "ahead", None)
        page = None if ahead is None else ahead.take(start, limit)
        if page is None:
            notifications = self.store.notifications(start, limit)
        else:
            notifications = page[0]
            self._decoded.update(page[1])
            self._forget_oldest()
        if pages is not None:
            pages[key] = notifications
        self._last_read = (key, notifications) if len(notifications) == limit else None
        if ahead is not None and len(notifications) == limit:
            ahead.start(notifications[-1].id + 1, limit)
        return notifications

    def decode(self, notification: Notification) -> Any:
        """The notification's event, decoded once."""
        event = self._decoded.get(notification.id)
        if event is None:
            event = self.store.decode(notification)
            with self._lock:
                self._decoded[notification.id] = event
                self._forget_oldest()
        return event

    def _forget_oldest(self) -> None:
        while len(self._decoded) > self._keep:
            self._decoded.popitem(last=False)
