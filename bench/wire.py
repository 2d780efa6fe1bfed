"""A lean HTTP/1.1 keep-alive client for the load benches.

httpx's async pool scans every waiting request against every connection on each send: at
200 req/s with a few hundred connections the load generator, not the server, was the
bottleneck (a py-spy dump showed it inside `_assign_requests_to_connections` while the
server sat idle). This client keeps idle connections in a queue and speaks just enough
HTTP/1.1 (Content-Length or chunked answers) to time a request.
"""

from __future__ import annotations

import asyncio
import json
from urllib.parse import urlencode


class WireError(Exception):
    """The connection broke or the answer was not HTTP."""


class Pool:
    """Keep-alive connections to one host; `request` borrows one (or opens one)."""

    def __init__(self, host: str, port: int, timeout: float = 10.0) -> None:
        self.host = host
        self.port = port
        self.timeout = timeout
        self._idle: list[tuple[asyncio.StreamReader, asyncio.StreamWriter]] = []

    async def request(
        self,
        method: str,
        path: str,
        params: dict[str, object] | None = None,
        headers: dict[str, str] | None = None,
        body: object = None,
    ) -> tuple[int, bytes]:
        """(status, body) of one request."""
        target = f"{path}?{urlencode(params)}" if params else path
        payload = b"" if body is None else json.dumps(body).encode()
        lines = [f"{method} {target} HTTP/1.1", f"Host: {self.host}:{self.port}"]
        lines += [f"{name}: {value}" for name, value in (headers or {}).items()]
        if body is not None or method in ("POST", "PUT", "PATCH"):
            lines += ["Content-Type: application/json", f"Content-Length: {len(payload)}"]
        message = ("\r\n".join(lines) + "\r\n\r\n").encode() + payload
        reused = bool(self._idle)
        reader, writer = self._idle.pop() if reused else await self._open()
        try:
            writer.write(message)
            status, answer, keep = await asyncio.wait_for(self._answer(reader), self.timeout)
        except (OSError, asyncio.IncompleteReadError) as e:
            writer.close()
            if reused and not getattr(e, "partial", b""):
                # The server closed an idle keep-alive connection: send again on a new one
                # (as any HTTP client does); nothing of an answer had arrived.
                return await self._again(method, message)
            raise WireError(repr(e)) from e
        except (TimeoutError, ValueError) as e:
            writer.close()
            raise WireError(repr(e)) from e
        if keep:
            self._idle.append((reader, writer))
        else:
            writer.close()
        return status, answer

    async def _again(self, method: str, message: bytes) -> tuple[int, bytes]:
        reader, writer = await self._open()
        try:
            writer.write(message)
            status, answer, keep = await asyncio.wait_for(self._answer(reader), self.timeout)
        except (TimeoutError, OSError, asyncio.IncompleteReadError, ValueError) as e:
            writer.close()
            raise WireError(f"{method} on a new connection: {e!r}") from e
        if keep:
            self._idle.append((reader, writer))
        else:
            writer.close()
        return status, answer

    async def _open(self) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
        try:
            return await asyncio.wait_for(
                asyncio.open_connection(self.host, self.port), self.timeout
            )
        except (TimeoutError, OSError) as e:
            raise WireError(repr(e)) from e

    @staticmethod
    async def _answer(reader: asyncio.StreamReader) -> tuple[int, bytes, bool]:
        head = await reader.readuntil(b"\r\n\r\n")
        status_line, *header_lines = head.decode("latin-1").split("\r\n")
        status = int(status_line.split(" ", 2)[1])
        fields = {}
        for line in header_lines:
            if line:
                name, _, value = line.partition(":")
                fields[name.strip().lower()] = value.strip()
        if fields.get("transfer-encoding", "").lower() == "chunked":
            parts = []
            while size := int((await reader.readuntil(b"\r\n")).strip().split(b";")[0], 16):
                parts.append(await reader.readexactly(size + 2))
            await reader.readuntil(b"\r\n")
            answer = b"".join(part[:-2] for part in parts)
        else:
            answer = await reader.readexactly(int(fields.get("content-length", "0")))
        return status, answer, fields.get("connection", "").lower() != "close"

    def close(self) -> None:
        for _, writer in self._idle:
            writer.close()
        self._idle.clear()
