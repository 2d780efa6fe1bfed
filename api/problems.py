"""problem+json errors (RFC 9457) and the one table mapping domain errors to HTTP statuses.

Raise `Problem` anywhere in a route to answer with it; domain errors are translated by
`problem_for`. Every error body has `type`, `title`, `status`, `detail` (and `errors`
[{field, message}] for validation).
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel
from starlette.responses import JSONResponse

from domain import errors

MEDIA_TYPE = "application/problem+json"

# The single place where a domain error kind becomes an HTTP status (most specific first).
STATUS_OF: tuple[tuple[type[errors.DomainError], int], ...] = (
    (errors.InvalidInput, 422),
    (errors.NotFound, 404),
    (errors.InvalidCredentials, 401),
    (errors.WrongRole, 403),
    (errors.Conflict, 409),
)


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
    return Problem(status, error.title, error.detail, errors=field_errors, headers=headers)


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
