"""How `serve` runs uvicorn: bounded time and size for every part of a request.

uvicorn bounds the idle time between requests (`timeout_keep_alive`) and the size of the
headers (h11's 16 KiB), but not the time a client may take to send them: a client that
sends half a request line would keep its connection forever. `BoundedH11Protocol` closes a
connection whose request headers are not complete `APPSTORE_SERVE_HEADER_TIMEOUT` seconds
after it opened (or after the previous answer). The body is bounded by api/middleware.py.
Forwarded headers (X-Forwarded-For/-Proto) are believed only from APPSTORE_TRUSTED_PROXIES.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
from typing import Any

from uvicorn.protocols.http.h11_impl import H11Protocol

from appstore.settings import Settings, get_settings


def no_delay(transport: asyncio.BaseTransport) -> None:
    """Sends small segments at once (TCP_NODELAY) on a TCP connection.

    asyncio sets it only on sockets whose `proto` is IPPROTO_TCP; the listening socket
    uvicorn binds for `APPSTORE_SERVE_WORKERS` > 1 has proto 0, so its connections kept
    Nagle's algorithm: an answer written as headers then body waited for the client's
    delayed ACK, 40+ ms per request whatever the load (the /healthz floor with 2 workers).
    """
    sock = transport.get_extra_info("socket")
    if sock is not None and sock.family in (socket.AF_INET, socket.AF_INET6):
        with contextlib.suppress(OSError):
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)


class BoundedH11Protocol(H11Protocol):
    """h11 with a deadline on the request headers."""

    header_timeout: float | None = None  # None: the process's settings

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        self._header_timer: asyncio.TimerHandle | None = None
        no_delay(transport)
        super().connection_made(transport)
        self._arm()

    def handle_events(self) -> None:
        before = self.cycle
        super().handle_events()
        if self.cycle is not before:  # a request's headers are complete
            self._disarm()

    def on_response_complete(self) -> None:
        super().on_response_complete()
        if not self.transport.is_closing() and (self.cycle is None or self.cycle.response_complete):
            self._arm()  # the next request's headers

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm()
        super().connection_lost(exc)

    def _arm(self) -> None:
        self._disarm()
        timeout = self.header_timeout or get_settings().serve.header_timeout
        self._header_timer = self.loop.call_later(timeout, self._headers_too_slow)

    def _disarm(self) -> None:
        if self._header_timer is not None:
            self._header_timer.cancel()
            self._header_timer = None

    def _headers_too_slow(self) -> None:
        self._header_timer = None
        busy = self.cycle is not None and not self.cycle.response_complete
        if not busy and not self.transport.is_closing():
            self.transport.close()


def uvicorn_options(settings: Settings, host: str, port: int) -> dict[str, Any]:
    """uvicorn.run's options for `serve`."""
    proxies = (settings.trusted_proxies or "").strip()
    return {
        "host": host,
        "port": port,
        "log_level": "info",
        "access_log": False,  # per-request lines cost latency; /metrics counts requests
        "http": BoundedH11Protocol,
        "timeout_keep_alive": settings.serve.keep_alive,
        "proxy_headers": bool(proxies),
        "forwarded_allow_ips": proxies or None,
        "server_header": False,
    }
