"""Pure ASGI middleware every response goes through: request limits (body size, time to
receive the body) and security headers.

`RequestLimits` answers 413 before reading past `max_body` bytes (a Content-Length above it
is refused without reading anything; a chunked body is counted as it arrives) and 408 when
the body has not fully arrived `body_timeout` seconds after the request began, so a client
that stops half-way does not hold a connection open. (Headers are bounded by the server:
appstore/http_server.py.) `SecurityHeaders` adds nosniff, framing and referrer rules, a
locked-down CSP for non-HTML answers, `no-store` for authenticated calls, and HSTS when
the public URL is https.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from typing import Any

log = logging.getLogger("appstore.api")

Scope = dict[str, Any]
Message = dict[str, Any]


class _TooLarge(Exception):
    pass


class _TooSlow(Exception):
    pass


async def _refuse(send: Any, status: int, title: str, detail: str) -> None:
    body = json.dumps(
        {
            "type": f"https://appstore.example/problems/{title.lower().replace(' ', '-')}",
            "title": title,
            "status": status,
            "detail": detail,
        }
    ).encode()
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [
                (b"content-type", b"application/problem+json"),
                (b"content-length", str(len(body)).encode()),
                (b"connection", b"close"),
            ],
        }
    )
    await send({"type": "http.response.body", "body": body})


class RequestLimits:
    """413 past `max_body` bytes, 408 when the body takes longer than `body_timeout`."""

    def __init__(self, app: Any, max_body: int, body_timeout: float) -> None:
        self.app = app
        self.max_body = max_body
        self.body_timeout = body_timeout

    async def __call__(self, scope: Scope, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = dict(scope.get("headers") or []).get(b"content-length")
        if declared is not None and (not declared.isdigit() or int(declared) > self.max_body):
            await _refuse(send, 413, "Content too large", self._too_large())
            return
        deadline = time.monotonic() + self.body_timeout
        received = 0
        complete = False
        started = False

        async def limited_receive() -> Message:
            nonlocal received, complete
            if complete:
                message: Message = await receive()
                return message
            try:
                message = await asyncio.wait_for(receive(), max(0.0, deadline - time.monotonic()))
            except TimeoutError:
                raise _TooSlow from None
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.max_body:
                    raise _TooLarge
                complete = not message.get("more_body", False)
            else:
                complete = True  # http.disconnect
            return message

        async def tracking_send(message: Message) -> None:
            nonlocal started
            started = started or message["type"] == "http.response.start"
            await send(message)

        try:
            await self.app(scope, limited_receive, tracking_send)
        except _TooLarge:
            if not started:
                await _refuse(send, 413, "Content too large", self._too_large())
        except _TooSlow:
            log.info("request body not received within %ss: %s", self.body_timeout, scope["path"])
            if not started:
                detail = f"the request body did not arrive within {self.body_timeout:g} s"
                await _refuse(send, 408, "Request timeout", detail)

    def _too_large(self) -> str:
        return f"the request body is larger than {self.max_body} bytes"


BASE_HEADERS = {
    b"x-content-type-options": b"nosniff",
    b"x-frame-options": b"DENY",
    b"referrer-policy": b"no-referrer",
    b"cross-origin-opener-policy": b"same-origin",
}
# Answers that are not pages load nothing and may not be framed.
API_CSP = b"default-src 'none'; frame-ancestors 'none'"
HSTS = b"max-age=31536000; includeSubDomains"


class SecurityHeaders:
    """The security headers of every answer (those a route set itself are kept)."""

    def __init__(self, app: Any, hsts: bool) -> None:
        self.app = app
        self.hsts = hsts

    async def __call__(self, scope: Scope, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        authenticated = any(name == b"authorization" for name, _ in scope.get("headers") or [])

        async def with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = list(message.get("headers") or [])
                present = {name.lower() for name, _ in headers}
                wanted = dict(BASE_HEADERS)
                content_type = next((v for n, v in headers if n.lower() == b"content-type"), b"")
                if not content_type.startswith(b"text/html"):
                    wanted[b"content-security-policy"] = API_CSP
                if authenticated:
                    wanted[b"cache-control"] = b"no-store"
                if self.hsts:
                    wanted[b"strict-transport-security"] = HSTS
                headers += [(n, v) for n, v in wanted.items() if n not in present]
                message = {**message, "headers": headers}
            await send(message)

        await self.app(scope, receive, with_headers)
