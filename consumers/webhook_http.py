"""Outbound webhook POSTs, guarded against server-side request forgery.

A subscription's URL is chosen by a developer, so the store must never be made to call
into its own network: each POST resolves the host, refuses if ANY address it resolves to
is private, link-local (cloud metadata), shared, reserved, multicast, unspecified or
loopback (loopback only when APPSTORE_WEBHOOKS_ALLOW_LOOPBACK allows it), and connects to
the address it checked (so a DNS answer that changes in between, "DNS rebinding", cannot
swap it); TLS still verifies the certificate for the host name. Redirects are never
followed, and at most MAX_BODY bytes of an answer are read before the deadline.

This is an adapter to the outside like the Kafka consumer next to it, so it lives here:
the dispatcher (application.dispatch) only knows the `WebhookPoster` protocol.
"""

from __future__ import annotations

import ipaddress
import socket
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import httpx

from application.dispatch import Sent
from application.webhooks import WebhookRequest
from domain.errors import InvalidUrl
from domain.webhook import check_url, forbidden_address, literal_address

# Bytes of an answer read at most (the rest is dropped with the connection).
MAX_BODY = 16 * 1024
# Characters of an error answer's body kept in the delivery log.
ERROR_BODY = 200

Resolver = Callable[..., list[tuple[Any, ...]]]


class Refused(Exception):
    """The URL may not be called (its addresses are forbidden, or it cannot be resolved)."""


@dataclass(frozen=True)
class Destination:
    """Where a POST really goes: the checked address, and the name it is for."""

    url: str  # with the checked IP address as its host
    host: str  # the Host header
    sni_hostname: str | None  # the name TLS verifies (None for an IP literal)


class GuardedPoster:
    """Posts signed webhook requests concurrently with one pooled HTTP client."""

    def __init__(
        self,
        *,
        timeout: float = 10.0,
        allow_loopback: bool = False,
        concurrency: int = 8,
        resolve: Resolver = socket.getaddrinfo,
    ) -> None:
        self.timeout = timeout
        self.allow_loopback = allow_loopback
        self.resolve = resolve
        self.client = httpx.Client(
            timeout=httpx.Timeout(timeout),
            follow_redirects=False,
            trust_env=False,  # never through a proxy from the environment
            limits=httpx.Limits(
                max_connections=concurrency * 4, max_keepalive_connections=concurrency * 4
            ),
        )
        self.pool = ThreadPoolExecutor(concurrency, thread_name_prefix="webhook-post")

    def close(self) -> None:
        self.pool.shutdown(wait=True)
        self.client.close()

    def post_all(self, requests: Sequence[WebhookRequest]) -> list[Sent]:
        """Every request at once (up to the pool's size); answers in order."""
        if len(requests) == 1:
            return [self.post(requests[0])]
        return list(self.pool.map(self.post, requests))

    def destination(self, url: str) -> Destination:
        """The checked address to connect to for `url`, or Refused saying why."""
        try:
            check_url(url, allow_loopback=self.allow_loopback)
        except InvalidUrl as error:
            raise Refused(error.reason) from None
        parts = urlsplit(url)
        host = parts.hostname or ""
        port = parts.port or (443 if parts.scheme == "https" else 80)
        literal = literal_address(host)
        if literal is not None:
            addresses = [literal]
        else:
            try:
                infos = self.resolve(host, port, type=socket.SOCK_STREAM)
            except (OSError, UnicodeError) as error:
                raise Refused(f"cannot resolve {host}: {error}") from None
            addresses = list(
                dict.fromkeys(ipaddress.ip_address(str(info[4][0]).split("%")[0]) for info in infos)
            )
            if not addresses:
                raise Refused(f"{host} resolves to no address")
        for address in addresses:
            reason = forbidden_address(address, allow_loopback=self.allow_loopback)
            if reason is not None:
                raise Refused(f"{host} resolves to {reason}")
        chosen = addresses[0]
        netloc = f"[{chosen}]:{port}" if chosen.version == 6 else f"{chosen}:{port}"
        target = urlunsplit((parts.scheme, netloc, parts.path or "/", parts.query, ""))
        host_header = parts.netloc.rsplit("@", 1)[-1]
        sni = host if parts.scheme == "https" and literal is None else None
        return Destination(target, host_header, sni)

    def post(self, request: WebhookRequest) -> Sent:
        """One POST: its status, or why it failed; never raises."""
        try:
            where = self.destination(request.url)
        except Refused as refused:
            return Sent(False, error=f"refused: {refused}")
        headers = {**request.headers, "host": where.host}
        extensions = {"sni_hostname": where.sni_hostname} if where.sni_hostname else {}
        started = time.perf_counter()
        deadline = started + self.timeout
        try:
            with self.client.stream(
                "POST", where.url, content=request.body, headers=headers, extensions=extensions
            ) as response:
                head = bytearray()
                for chunk in response.iter_raw():
                    head += chunk
                    if len(head) >= MAX_BODY or time.perf_counter() > deadline:
                        break
                status = response.status_code
                location = response.headers.get("location", "")
        except httpx.TimeoutException:
            return Sent(False, error=f"timed out after {self.timeout:g} s", latency_ms=None)
        except httpx.HTTPError as failure:
            return Sent(False, error=f"{type(failure).__name__}: {failure}"[:500])
        latency_ms = round((time.perf_counter() - started) * 1000, 2)
        if 200 <= status < 300:
            return Sent(True, status, latency_ms=latency_ms)
        if 300 <= status < 400:
            why = f"HTTP {status}: redirect to {location[:200]!r} not followed"
        else:
            text = bytes(head[: ERROR_BODY * 4]).decode("utf-8", "replace")[:ERROR_BODY]
            why = f"HTTP {status}: {text}" if text.strip() else f"HTTP {status}"
        return Sent(False, status, error=why, latency_ms=latency_ms)
