"""A real webhook receiver on loopback for the tests: a Starlette app served by uvicorn in
a thread, recording every POST; it can be stopped and started again on the same port
("down for a while"), answer with a status of the test's choosing, redirect, or stream an
endless body."""

from __future__ import annotations

import asyncio
import socket
import threading
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from typing import Any

import uvicorn
from standardwebhooks.webhooks import Webhook, WebhookVerificationError
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response, StreamingResponse
from starlette.routing import Route


@dataclass(frozen=True)
class Received:
    path: str
    headers: dict[str, str]
    body: bytes
    at: float  # time.time() on arrival

    def verifies_with(self, secret: str) -> bool:
        """Whether the Standard Webhooks library accepts this delivery with `secret`."""
        try:
            Webhook(secret).verify(self.body, self.headers)
        except WebhookVerificationError:
            return False
        return True

    @property
    def message_id(self) -> str:
        return self.headers["webhook-id"]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Receiver:
    """POST /{anything} is recorded; `status` is the answer (200 by default);
    /redirect answers 307 to /target; /endless streams a body that never ends;
    `delay` seconds pass before each answer."""

    def __init__(self, port: int | None = None) -> None:
        self.port = port or free_port()
        self.received: list[Received] = []
        self.status = 200
        self.delay = 0.0
        self._lock = threading.Lock()
        self._server: uvicorn.Server | None = None
        self._thread: threading.Thread | None = None
        self.app = Starlette(routes=[Route("/{path:path}", self._handle, methods=["POST"])])

    def url(self, path: str = "hooks") -> str:
        return f"http://127.0.0.1:{self.port}/{path}"

    async def _handle(self, request: Request) -> Response:
        body = await request.body()
        path = request.path_params["path"]
        with self._lock:
            self.received.append(Received(path, dict(request.headers), body, time.time()))
        if self.delay:
            await asyncio.sleep(self.delay)
        if path == "redirect":
            return Response(status_code=307, headers={"location": self.url("target")})
        if path == "endless":

            async def forever() -> AsyncIterator[bytes]:
                while True:
                    yield b"x" * 65536
                    await asyncio.sleep(0)

            return StreamingResponse(forever())
        return Response(b"ok" if self.status < 300 else b"receiver says no", self.status)

    def start(self) -> Receiver:
        config = uvicorn.Config(
            self.app, host="127.0.0.1", port=self.port, log_level="warning", lifespan="off"
        )
        self._server = uvicorn.Server(config)
        self._thread = threading.Thread(target=self._server.run, name="receiver", daemon=True)
        self._thread.start()
        deadline = time.monotonic() + 10
        while not self._server.started:
            assert time.monotonic() < deadline, "the receiver did not start"
            time.sleep(0.01)
        return self

    def stop(self) -> None:
        if self._server is not None and self._thread is not None:
            self._server.should_exit = True
            self._thread.join(timeout=10)
            self._server = None

    def on(self, path: str) -> list[Received]:
        with self._lock:
            return [r for r in self.received if r.path == path]

    def wait_for(self, count: int, timeout: float = 20, path: str | None = None) -> list[Received]:
        """At least `count` deliveries (to `path`), or fails after `timeout` seconds."""
        deadline = time.monotonic() + timeout
        while True:
            with self._lock:
                found = [r for r in self.received if path is None or r.path == path]
            if len(found) >= count:
                return found
            assert time.monotonic() < deadline, f"only {len(found)} of {count} arrived"
            time.sleep(0.02)


def until(condition: Callable[[], Any], timeout: float = 20, every: float = 0.02) -> Any:
    """Waits until `condition()` is truthy (returns it) or fails after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        assert time.monotonic() < deadline, "condition not met in time"
        time.sleep(every)
