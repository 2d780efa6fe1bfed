"""Slow and oversized clients against a real uvicorn server on 127.0.0.1, as `serve` runs it
(issue 10 #5, #8): half-sent headers are cut off, a body that stops half-way is answered
408, an oversized body 413 before it is read, Content-Length or chunked."""

from __future__ import annotations

import asyncio
import select
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import uvicorn
from uvicorn.server import ServerState

from appstore.bootstrap import create_app
from appstore.http_server import BoundedH11Protocol, uvicorn_options
from appstore.settings import ServeSettings, Settings

TIMEOUT_S = 1.0


class QuickHeaders(BoundedH11Protocol):
    header_timeout = TIMEOUT_S


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, int]]:
    folder: Path = tmp_path_factory.mktemp("slow")
    settings = Settings(
        database_url=f"sqlite:///{folder}/slow.db",
        fast_password_hashing=True,
        serve=ServeSettings(max_body_bytes=64 * 1024, body_timeout=TIMEOUT_S, keep_alive=1),
    )
    app = create_app(settings, run_projections=False)
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    options = {**uvicorn_options(settings, "127.0.0.1", port), "http": QuickHeaders}
    options["log_level"] = "warning"
    instance = uvicorn.Server(uvicorn.Config(app, **options))
    thread = threading.Thread(target=instance.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not instance.started:
        assert time.monotonic() < deadline and thread.is_alive(), "uvicorn did not start"
        time.sleep(0.05)
    try:
        yield "127.0.0.1", port
    finally:
        instance.should_exit = True
        thread.join(10)
        app.state.store.close()
        app.state.projector.engine.dispose()


def _connect(server: tuple[str, int]) -> socket.socket:
    connection = socket.create_connection(server, timeout=10)
    return connection


def _read_all(connection: socket.socket) -> tuple[bytes, float]:
    """Everything until the server closes; and how long that took."""
    started = time.monotonic()
    data = b""
    while True:
        chunk = connection.recv(65536)
        if not chunk:
            return data, time.monotonic() - started
        data += chunk


def test_half_sent_headers_are_cut_off(server: tuple[str, int]) -> None:
    with _connect(server) as connection:
        connection.sendall(b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slow: ")
        data, waited = _read_all(connection)
    assert data == b""  # closed without an answer
    assert waited < TIMEOUT_S + 2


def test_a_keep_alive_connection_that_starts_a_request_and_stalls_is_cut_off(
    server: tuple[str, int],
) -> None:
    with _connect(server) as connection:
        connection.sendall(b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
        first = connection.recv(65536)
        assert first.startswith(b"HTTP/1.1 200")
        connection.sendall(b"GET /healthz HTTP/1.1\r\nHo")  # the next one, half-sent
        _, waited = _read_all(connection)
    assert waited < TIMEOUT_S + 2


def test_a_body_that_stops_half_way_is_answered_408(server: tuple[str, int]) -> None:
    with _connect(server) as connection:
        connection.sendall(
            b"POST /v1/sessions HTTP/1.1\r\nHost: 127.0.0.1\r\n"
            b"Content-Type: application/json\r\nContent-Length: 100\r\n\r\n"
            b'{"email": '
        )
        data, waited = _read_all(connection)
    assert data.startswith(b"HTTP/1.1 408"), data[:200]
    assert waited < TIMEOUT_S + 2


def test_an_oversized_body_is_refused_before_it_is_sent(server: tuple[str, int]) -> None:
    with _connect(server) as connection:
        connection.sendall(
            b"POST /v1/sessions HTTP/1.1\r\nHost: 127.0.0.1\r\n"
            b"Content-Type: application/json\r\nContent-Length: 104857600\r\n\r\n"
        )
        data, waited = _read_all(connection)
    assert data.startswith(b"HTTP/1.1 413"), data[:200]
    assert b"application/problem+json" in data
    assert waited < 1.0


def test_an_oversized_chunked_body_is_refused_as_it_arrives(server: tuple[str, int]) -> None:
    chunk = b"2000\r\n" + b" " * 0x2000 + b"\r\n"
    with _connect(server) as connection:
        connection.sendall(
            b"POST /v1/sessions HTTP/1.1\r\nHost: 127.0.0.1\r\n"
            b"Content-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n"
        )
        answered = b""
        for _ in range(64):  # 512 KiB offered; the limit is 64 KiB
            try:
                connection.sendall(chunk)
            except (BrokenPipeError, ConnectionResetError):
                break  # the server stopped reading: what we want
            ready, _, _ = select.select([connection], [], [], 0.05)
            if ready:
                answered = connection.recv(65536)
                break
    assert answered.startswith(b"HTTP/1.1 413"), answered[:200]


def test_connections_of_a_socket_bound_for_workers_send_small_segments_at_once() -> None:
    """uvicorn binds the listening socket itself for APPSTORE_SERVE_WORKERS > 1 (proto 0),
    and asyncio then leaves Nagle's algorithm on: every answer waited 40+ ms for the
    client's delayed ACK. serve's protocol sets TCP_NODELAY on each connection."""
    listening = socket.socket(socket.AF_INET, socket.SOCK_STREAM)  # as uvicorn binds it
    listening.bind(("127.0.0.1", 0))

    async def nothing(scope: object, receive: object, send: object) -> None: ...

    config = uvicorn.Config(nothing)
    config.load()
    seen: list[int] = []

    class Recording(QuickHeaders):
        def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
            super().connection_made(transport)
            sock = transport.get_extra_info("socket")
            seen.append(sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY))
            transport.close()

    async def accept_one() -> None:
        loop = asyncio.get_running_loop()
        state = ServerState()
        server = await loop.create_server(
            lambda: Recording(config=config, server_state=state, app_state={}), sock=listening
        )
        async with server:
            _, writer = await asyncio.open_connection(*listening.getsockname())
            deadline = loop.time() + 10
            while not seen and loop.time() < deadline:
                await asyncio.sleep(0.01)
            writer.close()

    asyncio.run(accept_one())
    assert seen == [1]
