"""problem+json errors (RFC 9457) and the one place where errors become HTTP answers.

Raise `Problem` anywhere in a route to answer with it; domain errors are translated by the
`STATUS_OF` table; OAuth errors keep the RFC 6749 JSON shape. `EXCEPTION_HANDLERS` is what
the Starlette app is built with: every error is mapped there, once. Every problem body has
`type`, `title`, `status`, `detail` (and `errors` [{field, message}] for validation).
"""

from __future__ import annotations

import logging
import math
import sqlite3
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

import psycopg
import sqlalchemy.exc
from eventsourcing.persistence import PersistenceError
from pydantic import BaseModel
from starlette.exceptions import HTTPException
from starlette.requests import ClientDisconnect, Request
from starlette.responses import JSONResponse, Response

from application.availability import unavailable_reason
from domain import errors

log = logging.getLogger("appstore.api")

MEDIA_TYPE = "application/problem+json"
# Seconds a client is told to wait (Retry-After) when the store is unavailable.
RETRY_AFTER_S = 5
NO_STORE = {"Cache-Control": "no-store", "Pragma": "no-cache"}

# The single place where a domain error kind becomes an HTTP status (most specific first).
STATUS_OF: tuple[tuple[type[errors.DomainError], int], ...] = (
    (errors.InvalidInput, 422),
    (errors.NotFound, 404),
    (errors.InvalidCredentials, 401),
    (errors.WrongRole, 403),
    (errors.Forbidden, 403),
    (errors.Conflict, 409),
    (errors.Throttled, 429),
)
# RFC 6749 §5.2: a failed client authentication is 401, every other OAuth error 400.
OAUTH_STATUS_OF = {"invalid_client": 401}


class FieldError(BaseModel):
    field: str
    message: str


class ProblemBody(BaseModel):
    """An application/problem+json error."""

    type: str
    title: str
    status: int
    detail: str
    errors: list[FieldError] | None = None


class Problem(Exception):
    """An HTTP error answer; raise it from a route."""

    def __init__(
        self,
        status: int,
        title: str,
        detail: str,
        *,
        errors: list[dict[str, str]] | None = None,
        type_: str | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(detail)
        self.status = status
        self.title = title
        self.detail = detail
        self.errors = errors
        self.type = type_ or f"https://appstore.example/problems/{_slug(title)}"
        self.headers = headers

    def response(self) -> JSONResponse:
        body: dict[str, Any] = {
            "type": self.type,
            "title": self.title,
            "status": self.status,
            "detail": self.detail,
        }
        if self.errors is not None:
            body["errors"] = self.errors
        return JSONResponse(
            body, status_code=self.status, media_type=MEDIA_TYPE, headers=self.headers
        )


def _slug(title: str) -> str:
    return "-".join("".join(c if c.isalnum() else " " for c in title.lower()).split())


def status_of(error: errors.DomainError) -> int:
    for kind, status in STATUS_OF:
        if isinstance(error, kind):
            return status
    return 400


def problem_for(error: errors.DomainError) -> Problem:
    """The HTTP problem of a domain error (InvalidInput names its field)."""
    status = status_of(error)
    field_errors = None
    if isinstance(error, errors.InvalidInput):
        field_errors = [{"field": error.field, "message": error.reason}]
    headers = {"WWW-Authenticate": "Bearer"} if status == 401 else None
    if isinstance(error, errors.Throttled):
        headers = {"Retry-After": str(max(1, math.ceil(error.retry_after)))}
    return Problem(status, error.title, error.detail, errors=field_errors, headers=headers)


def oauth_response(error: errors.OAuthError) -> JSONResponse:
    """An RFC 6749 §5.2 error answer of the token, introspection and revocation endpoints."""
    status = OAUTH_STATUS_OF.get(error.error, 400)
    headers = dict(NO_STORE)
    if status == 401:
        headers["WWW-Authenticate"] = 'Basic realm="appstore"'
    body = {"error": error.error, "error_description": error.description}
    return JSONResponse(body, status_code=status, headers=headers)


def not_found(what: str = "resource") -> Problem:
    return Problem(404, "Not found", f"no such {what}")


def validation_problem(field_errors: list[dict[str, str]], detail: str = "") -> Problem:
    """422 naming every field that failed validation."""
    first = field_errors[0] if field_errors else {"field": "", "message": "invalid"}
    return Problem(
        422,
        "Invalid input",
        detail or f"{first['field']}: {first['message']}",
        errors=field_errors,
    )


async def _problem(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, Problem)
    return exc.response()


async def _domain_error(request: Request, exc: Exception) -> Response:
    if isinstance(exc, errors.OAuthError):
        return oauth_response(exc)
    assert isinstance(exc, errors.DomainError)
    return problem_for(exc).response()


async def _http_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, HTTPException)
    title = {404: "Not found", 405: "Method not allowed"}.get(exc.status_code, "HTTP error")
    return Problem(
        exc.status_code, title, str(exc.detail), headers=dict(exc.headers or {})
    ).response()


def store_unavailable(reason: str) -> Problem:
    """503: the store cannot serve now (down, read-only, permission denied, timed out)."""
    return Problem(
        503,
        "Service unavailable",
        f"the store is unavailable ({reason}); try again shortly",
        headers={"Retry-After": str(RETRY_AFTER_S)},
    )


async def _store_error(request: Request, exc: Exception) -> Response:
    """A database error: 503 when the store cannot serve now, else a 500 (a bug)."""
    reason = unavailable_reason(exc)
    if reason is None:
        return await _server_error(request, exc)
    # An outage is not a bug: one line per request, no traceback.
    log.warning(
        "store unavailable (%s) on %s %s: %s",
        reason,
        request.method,
        request.url.path,
        f"{type(exc).__name__}: {exc}".replace("\n", " ")[:300],
    )
    return store_unavailable(reason).response()


async def _client_gone(request: Request, exc: Exception) -> Response:
    """The client hung up while sending its request: nobody to answer, nothing broke."""
    log.info("client disconnected during %s %s", request.method, request.url.path)
    return Response(status_code=400)


async def _server_error(request: Request, exc: Exception) -> Response:
    log.exception("unhandled error on %s %s", request.method, request.url.path, exc_info=exc)
    return Problem(500, "Internal server error", "something went wrong on our side").response()


ExceptionHandler = Callable[[Request, Exception], Awaitable[Response]]

# Starlette(exception_handlers=EXCEPTION_HANDLERS): every error mapped here, once.
EXCEPTION_HANDLERS: Mapping[Any, ExceptionHandler] = {
    Problem: _problem,
    errors.DomainError: _domain_error,
    HTTPException: _http_error,
    # The store's errors, by library: 503 + Retry-After when it is down, read-only, denied
    # or timed out (application.store.unavailable_reason), one log line, no traceback.
    PersistenceError: _store_error,
    psycopg.Error: _store_error,
    sqlalchemy.exc.SQLAlchemyError: _store_error,
    sqlite3.Error: _store_error,
    ClientDisconnect: _client_gone,
    Exception: _server_error,
}
