"""Cheap freshness probes of the PostgreSQL log: a few connections of their own.

A token check asks the log one question per call (has the installation or grant a newer
event than the copy kept? `Store.changed`). Through eventsourcing's pool that is two round
trips: the pool's pre-ping on checkout (it renews dead connections), then the query. The
probes keep up to `size` autocommit connections open and prepared, so a probe is one round
trip; a probe that fails for any driver error closes its connection and answers None, and
the caller asks through the pool instead (pre-ping, retries), so a restarted server costs
one fallback, never a wrong answer. After a failed connect, probes stand aside for
`pause` seconds (a database that is away is not asked twice per call).
"""

from __future__ import annotations

import contextlib
import queue
import threading
import time
from collections.abc import Callable, Sequence
from typing import Any

import psycopg

Connect = Callable[[], psycopg.Connection[Any]]
APPLICATION_NAME = "appstore-probe"


class Probes:
    """Up to `size` kept connections for one-round-trip reads; None means 'ask the pool'."""

    def __init__(self, connect: Connect, size: int = 4, pause: float = 5.0) -> None:
        self._connect = connect
        self.size = size
        self.pause = pause
        self._idle: queue.SimpleQueue[psycopg.Connection[Any]] = queue.SimpleQueue()
        self._lock = threading.Lock()
        self._open = 0
        self._resting_until = 0.0
        self._closed = False
        self._cursors: dict[psycopg.Connection[Any], psycopg.Cursor[Any]] = {}

    def rows(self, sql: str, params: Sequence[Any]) -> list[tuple[Any, ...]] | None:
        """The rows of `sql`, or None when no kept connection could answer."""
        conn = self._take()
        if conn is None:
            return None
        try:
            # Each kept connection keeps its cursor: a new one per read set up its adapters
            # again (a tenth of a token check's time).
            cursor = self._cursors.get(conn)
            if cursor is None:
                cursor = self._cursors[conn] = conn.cursor()
            cursor.execute(sql, params, prepare=True)
            found = cursor.fetchall()
        except psycopg.Error:
            self._discard(conn)
            return None
        if self._closed:
            self._discard(conn)
        else:
            self._idle.put(conn)
        return found

    def close(self) -> None:
        self._closed = True
        while True:
            try:
                self._discard(self._idle.get_nowait())
            except queue.Empty:
                return

    def _take(self) -> psycopg.Connection[Any] | None:
        try:
            return self._idle.get_nowait()
        except queue.Empty:
            pass
        with self._lock:
            if self._closed or self._open >= self.size or time.monotonic() < self._resting_until:
                return None
            self._open += 1
        try:
            return self._connect()
        except psycopg.Error:
            with self._lock:
                self._open -= 1
                self._resting_until = time.monotonic() + self.pause
            return None

    def _discard(self, conn: psycopg.Connection[Any]) -> None:
        with self._lock:
            self._open -= 1
            self._cursors.pop(conn, None)
        with contextlib.suppress(psycopg.Error):  # closing a broken connection
            conn.close()


def connect_like(pool: Any, timeout: float = 2.0) -> Connect:
    """Connects as a psycopg_pool `pool` does (its conninfo and keyword arguments), in
    autocommit, with rows as tuples, `timeout` seconds to connect, named `appstore-probe`."""
    kwargs = {k: v for k, v in dict(pool.kwargs or {}).items() if k != "row_factory"}
    kwargs["connect_timeout"] = max(1, int(timeout))
    kwargs["application_name"] = APPLICATION_NAME  # as pg_stat_activity shows them

    def connect() -> psycopg.Connection[Any]:
        conninfo = pool.conninfo() if callable(pool.conninfo) else pool.conninfo or ""
        return psycopg.connect(conninfo, autocommit=True, **kwargs)

    return connect
