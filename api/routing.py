"""The route table's building block: an `Endpoint` knows its pydantic models, so the same
table serves requests and generates /openapi.json (api/openapi.py).

A handler is `async def handler(call: Call) -> Any`; it gets the parsed query and body (a
JSON object, or a form for `form=True` endpoints), and returns a pydantic model, a
dict/list (validated by the response model), or a Response. Errors are raised, never
answered here: `api.problems.EXCEPTION_HANDLERS` maps them.
"""

from __future__ import annotations

import json
import types
import typing
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any
from uuid import UUID

from pydantic import BaseModel, ValidationError
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from api.consistency import POSITION_HEADER, min_position, wait_for_position
from api.problems import Problem, validation_problem
from domain.errors import OAuthError
from projections.db import WouldWait, not_waiting

Handler = Callable[["Call"], Awaitable[Any]]
# Endpoints whose caller shows a bearer token (checked by the handler; its absence here).
BEARER_AUTH = ("session", "seller", "developer", "ops", "app")
# JSON nested deeper than this is refused (no request of the API needs more than a few).
MAX_JSON_DEPTH = 32


@dataclass
class Call:
    """One request as a handler sees it."""

    request: Request
    query: Any = None
    body: Any = None
    headers: dict[str, str] = field(default_factory=dict)

    @property
    def path(self) -> dict[str, str]:
        return dict(self.request.path_params)

    def path_id(self, name: str, what: str) -> UUID:
        """A UUID path parameter; anything else is an unknown id (404)."""
        try:
            return UUID(self.request.path_params[name])
        except ValueError:
            raise Problem(404, "Not found", f"no such {what}") from None

    @property
    def state(self) -> Any:
        return self.request.app.state

    async def run(self, function: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        """Runs blocking work (store commands, read-model queries) off the event loop."""
        return await run_in_threadpool(function, *args, **kwargs)

    async def read(self, query: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        """Runs `query(conn, *args)` on a read-model connection: here, when the read models
        are an SQLite file (unless it would wait for another thread), else in the
        threadpool (projections/db.py)."""
        engine = self.state.projector.engine

        def run_query() -> Any:
            with engine.connect() as conn:
                return query(conn, *args, **kwargs)

        if self.state.inline_reads:
            try:
                with not_waiting():
                    return run_query()
            except WouldWait:
                pass  # another thread holds what it needs: waits there, not here
        return await run_in_threadpool(run_query)

    async def written(self, position: int | None) -> None:
        """After a command: wake the projector, wait until it applied `position`."""
        if position:
            self.headers[POSITION_HEADER] = str(position)
            self.state.projector.wake.set()
            if not await wait_for_position(self.request, position):
                self.headers["X-Appstore-Stale"] = "true"


@dataclass(frozen=True)
class Link:
    """An OpenAPI link: how a value of this endpoint's success answer feeds another operation
    (its `operation` is the target handler's name, the operationId), e.g. the id of a new
    installation is the `{id}` of its authorize call."""

    name: str
    operation: str
    parameters: dict[str, str] = field(default_factory=dict, hash=False)  # name → expression
    request_body: dict[str, str] | None = field(default=None, hash=False)
    description: str = ""


@dataclass(frozen=True)
class Endpoint:
    """One route: method, path, handler and the models documenting it."""

    method: str
    path: str
    handler: Handler
    summary: str
    tag: str
    query: type[BaseModel] | None = None
    body: type[BaseModel] | None = None
    response: type[BaseModel] | None = None
    status: int = 200
    auth: str | None = None  # "session" | "seller" | "developer" | "ops" | "app" | "client"
    errors: tuple[int, ...] = ()
    form: bool = False  # the body is application/x-www-form-urlencoded (OAuth endpoints)
    media_type: str = "application/json"  # of the success answer, for the documentation
    links: tuple[Link, ...] = ()  # what the success answer feeds (OpenAPI links)

    def route(self) -> Route:
        return Route(self.path, self._serve, methods=[self.method], name=self.summary)

    async def _serve(self, request: Request) -> Response:
        call = Call(request)
        if self.method == "GET":
            wanted = min_position(request)
            if wanted is not None and not await wait_for_position(request, wanted):
                call.headers["X-Appstore-Stale"] = "true"
        if self.query is not None:
            call.query = _parse_query(request, self.query)
        if self.auth in BEARER_AUTH and not request.headers.get("authorization"):
            # Who asks comes before what is asked: no token is a 401 whatever the body.
            raise Problem(
                401,
                "Unauthorized",
                "an Authorization: Bearer <token> header is required",
                headers={"WWW-Authenticate": "Bearer"},
            )
        if self.body is not None and self.form:
            call.body = await _parse_form(request, self.body)
        elif self.body is not None:
            call.body = _parse_body(request, await request.body(), self.body)
        result = await self.handler(call)
        if isinstance(result, Response):
            result.headers.update(call.headers)
            return result
        if self.response is not None and not isinstance(result, BaseModel):
            result = self.response.model_validate(result)
        if isinstance(result, BaseModel):  # serialised once, straight to JSON bytes
            return Response(
                result.model_dump_json(),
                status_code=self.status,
                headers=call.headers,
                media_type="application/json",
            )
        return JSONResponse(result, status_code=self.status, headers=call.headers)


def _errors_of(error: ValidationError, prefix: str = "") -> list[dict[str, str]]:
    out = []
    for item in error.errors():
        location = ".".join(str(part) for part in item["loc"])
        out.append(
            {"field": prefix + location if location else prefix or "body", "message": item["msg"]}
        )
    return out


def is_list_annotation(annotation: Any) -> bool:
    if typing.get_origin(annotation) in (list, tuple):
        return True
    if typing.get_origin(annotation) in (typing.Union, types.UnionType):
        return any(is_list_annotation(a) for a in typing.get_args(annotation))
    return False


def _parse_query(request: Request, model: type[BaseModel]) -> BaseModel:
    params = request.query_params
    data: dict[str, Any] = {}
    for name, info in model.model_fields.items():
        key = info.alias or name
        if key not in params:
            continue
        data[key] = params.getlist(key) if is_list_annotation(info.annotation) else params[key]
    try:
        return model.model_validate(data)
    except ValidationError as error:
        raise validation_problem(_errors_of(error)) from None


async def _parse_form(request: Request, model: type[BaseModel]) -> BaseModel:
    """A form body as the model's fields (text fields only). A field sent twice is refused
    (RFC 6749 §3.1: request parameters must not be included more than once)."""
    form = await request.form()
    data: dict[str, str] = {}
    for key, value in form.multi_items():
        if not isinstance(value, str):
            continue
        if key in data:
            raise OAuthError("invalid_request", f"{key} is given more than once")
        data[key] = value
    try:
        return model.model_validate(data)
    except ValidationError as error:
        raise validation_problem(_errors_of(error)) from None


def is_json(content_type: str) -> bool:
    """application/json or a +json type, with any parameters (charset=utf-8)."""
    media = content_type.split(";", 1)[0].strip().lower()
    return media == "application/json" or (
        media.startswith("application/") and media.endswith("+json")
    )


def _parse_body(request: Request, raw: bytes, model: type[BaseModel]) -> BaseModel:
    if raw and not is_json(request.headers.get("content-type", "")):
        raise Problem(
            415,
            "Unsupported media type",
            "send the body as application/json",
            errors=[{"field": "Content-Type", "message": "must be application/json"}],
        )
    try:
        data = json.loads(raw) if raw else None
    except (json.JSONDecodeError, UnicodeDecodeError) as error:
        raise Problem(400, "Malformed JSON", f"the request body is not JSON: {error}") from None
    except RecursionError:
        raise Problem(400, "Malformed JSON", f"JSON nested deeper than {MAX_JSON_DEPTH}") from None
    except ValueError as error:  # e.g. an integer of more than 4,300 digits
        raise Problem(400, "Malformed JSON", f"the request body is not usable: {error}") from None
    if _depth(data) > MAX_JSON_DEPTH:
        raise Problem(400, "Malformed JSON", f"JSON nested deeper than {MAX_JSON_DEPTH}")
    if not isinstance(data, dict):
        raise validation_problem([{"field": "body", "message": "must be a JSON object"}])
    try:
        return model.model_validate(data)
    except ValidationError as error:
        raise validation_problem(_errors_of(error)) from None


def _depth(value: Any, limit: int = MAX_JSON_DEPTH) -> int:
    """How deep `value` nests (stops counting past `limit`)."""
    deepest = 0
    stack = [(value, 1)]
    while stack:
        item, depth = stack.pop()
        if isinstance(item, dict | list):
            deepest = max(deepest, depth)
            if depth > limit:
                return depth
            children = item.values() if isinstance(item, dict) else item
            stack.extend((child, depth + 1) for child in children)
    return deepest
