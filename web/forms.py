"""Posted forms: every POST route goes through `posted`, which checks the CSRF token.

A handler takes the request and the submitted fields (`Form`) and runs in the threadpool.
Errors go back next to their field: `field_errors(error, labels)` turns a domain error
into `{field: message}` for the templates.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any
from urllib.parse import urlsplit

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response

from domain.errors import DomainError, InvalidInput
from web import csrf
from web.pages import render

MAX_FIELD = 4096


class Form:
    """The fields of a submitted form, as stripped strings (missing ones are empty)."""

    def __init__(self, fields: dict[str, list[str]]) -> None:
        self._fields = fields

    def __getitem__(self, name: str) -> str:
        values = self._fields.get(name) or [""]
        return values[0].strip()

    def raw(self, name: str) -> str:
        """A field as typed (passwords are not stripped)."""
        values = self._fields.get(name) or [""]
        return values[0]

    def all(self, name: str) -> list[str]:
        return [value.strip() for value in self._fields.get(name, [])]


PageHandler = Callable[[Request, Form], Response]


def posted(handler: PageHandler) -> Callable[[Request], Awaitable[Response]]:
    """The endpoint of a form: reads the fields, checks CSRF, runs `handler` off the loop."""

    async def endpoint(request: Request) -> Response:
        submitted = await request.form(max_files=0, max_fields=100)
        try:
            fields: dict[str, list[str]] = {}
            for name, value in submitted.multi_items():
                if isinstance(value, str):
                    fields.setdefault(name, []).append(value[:MAX_FIELD])
            if not csrf.verified(request, {k: v[0] for k, v in fields.items()}):
                return await run_in_threadpool(_expired, request)
            return await run_in_threadpool(handler, request, Form(fields))
        finally:
            await submitted.close()

    return endpoint


def _expired(request: Request) -> Response:
    return render(
        request,
        "message.html",
        status=403,
        title="This form has expired",
        message="For your safety the form could not be sent. Go back, reload the page and "
        "try again.",
    )


def field_errors(error: DomainError, labels: dict[str, str], default: str) -> dict[str, str]:
    """`{field: message}` for a domain error; errors of no known field go to `default`."""
    if isinstance(error, InvalidInput) and error.field in labels:
        reason = error.reason
        if reason.startswith("must"):
            reason = f"{labels[error.field]} {reason}"
        return {error.field: _sentence(reason)}
    return {default: _sentence(error.detail)}


def _sentence(text: str) -> str:
    text = text.strip()
    return text[:1].upper() + text[1:] + ("" if text.endswith((".", "?", "!")) else ".")


def safe_next(value: Any, default: str = "/") -> str:
    """A local path to go to after a form (never another site: no open redirect)."""
    text = str(value or "")
    parts = urlsplit(text)
    if not text.startswith("/") or text.startswith("//") or "\\" in text:
        return default
    if parts.scheme or parts.netloc:
        return default
    return text
