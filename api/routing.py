"""The route table's building block: an `Endpoint` knows its pydantic models, so the same
table serves requests and generates /openapi.json.

A handler is `async def handler(call: Call) -> Any`; it gets the parsed query and body,
and returns a pydantic model, a dict/list (validated by the response model), or a Response.
"""

from __future__ import annotations

import json
import time
import types
import typing
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, Literal
from uuid import UUID

from pydantic import BaseModel, ValidationError
from pydantic.json_schema import models_json_schema
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from api.consistency import MIN_POSITION_HEADER, POSITION_HEADER, min_position, wait_for_position
from api.problems import Problem, ProblemBody, problem_for, validation_problem
from domain.errors import DomainError

Handler = Callable[["Call"], Awaitable[Any]]


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
        """Runs `query(conn, *args)` on a read-model connection in the threadpool."""
        engine = self.state.projector.engine

        def run_query() -> Any:
            with engine.connect() as conn:
                return query(conn, *args, **kwargs)

        return await run_in_threadpool(run_query)

    async def written(self, position: int | None) -> None:
        """After a command: wake the projector, wait until it applied `position`."""
        if position:
            self.headers[POSITION_HEADER] = str(position)
            self.state.projector.wake.set()
            if not await wait_for_position(self.request, position):
                self.headers["X-Appstore-Stale"] = "true"


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
    auth: str | None = None  # "session" | "seller" | "developer" | "ops" | None
    errors: tuple[int, ...] = ()

    def route(self) -> Route:
        return Route(self.path, self._serve, methods=[self.method], name=self.summary)

    async def _serve(self, request: Request) -> Response:
        started = time.perf_counter()
        try:
            response = await self._answer(request)
        except Problem as problem:
            response = problem.response()
        except DomainError as error:
            response = problem_for(error).response()
        metrics = getattr(request.app.state, "metrics", None)
        if metrics is not None:
            metrics.observe(self.method, self.path, response.status_code, started)
        return response

    async def _answer(self, request: Request) -> Response:
        call = Call(request)
        if self.method == "GET":
            wanted = min_position(request)
            if wanted is not None and not await wait_for_position(request, wanted):
                call.headers["X-Appstore-Stale"] = "true"
        if self.query is not None:
            call.query = _parse_query(request, self.query)
        if self.body is not None:
            call.body = _parse_body(await request.body(), self.body)
        result = await self.handler(call)
        if isinstance(result, Response):
            result.headers.update(call.headers)
            return result
        if self.response is not None and not isinstance(result, BaseModel):
            result = self.response.model_validate(result)
        content = result.model_dump(mode="json") if isinstance(result, BaseModel) else result
        return JSONResponse(content, status_code=self.status, headers=call.headers)


def _errors_of(error: ValidationError, prefix: str = "") -> list[dict[str, str]]:
    out = []
    for item in error.errors():
        location = ".".join(str(part) for part in item["loc"])
        out.append(
            {"field": prefix + location if location else prefix or "body", "message": item["msg"]}
        )
    return out


def _is_list(annotation: Any) -> bool:
    if typing.get_origin(annotation) in (list, tuple):
        return True
    if typing.get_origin(annotation) in (typing.Union, types.UnionType):
        return any(_is_list(a) for a in typing.get_args(annotation))
    return False


def _parse_query(request: Request, model: type[BaseModel]) -> BaseModel:
    params = request.query_params
    data: dict[str, Any] = {}
    for name, info in model.model_fields.items():
        key = info.alias or name
        if key not in params:
            continue
        data[key] = params.getlist(key) if _is_list(info.annotation) else params[key]
    try:
        return model.model_validate(data)
    except ValidationError as error:
        raise validation_problem(_errors_of(error)) from None


def _parse_body(raw: bytes, model: type[BaseModel]) -> BaseModel:
    try:
        data = json.loads(raw) if raw else None
    except (json.JSONDecodeError, UnicodeDecodeError) as error:
        raise Problem(400, "Malformed JSON", f"the request body is not JSON: {error}") from None
    if not isinstance(data, dict):
        raise validation_problem([{"field": "body", "message": "must be a JSON object"}])
    try:
        return model.model_validate(data)
    except ValidationError as error:
        raise validation_problem(_errors_of(error)) from None


# --- OpenAPI ---------------------------------------------------------------------------------
_ERROR_TEXT = {
    400: "Malformed request",
    401: "Missing or invalid credentials",
    403: "Wrong role or ops token",
    404: "Not found",
    409: "Conflict with the current state",
    422: "Invalid input (the field is named in errors)",
}


def openapi(endpoints: list[Endpoint], title: str, version: str) -> dict[str, Any]:
    """The OpenAPI 3.1 document of a route table."""
    models: set[type[BaseModel]] = {ProblemBody}
    for e in endpoints:
        models.update(m for m in (e.body, e.response) if m is not None)
    keyed: list[tuple[type[BaseModel], Literal["validation"]]] = [
        (m, "validation") for m in sorted(models, key=lambda m: m.__name__)
    ]
    refs, defs = models_json_schema(keyed, ref_template="#/components/schemas/{model}")
    schemas = defs.get("$defs", {})

    def ref(model: type[BaseModel]) -> dict[str, Any]:
        return refs[(model, "validation")]

    problem = {"application/problem+json": {"schema": ref(ProblemBody)}}
    paths: dict[str, dict[str, Any]] = {}
    for e in endpoints:
        parameters: list[dict[str, Any]] = []
        for name in _path_params(e.path):
            parameters.append(
                {"name": name, "in": "path", "required": True, "schema": {"type": "string"}}
            )
        if e.query is not None:
            schema = e.query.model_json_schema()
            for name, info in e.query.model_fields.items():
                key = info.alias or name
                prop = dict(schema["properties"][key])
                prop.pop("title", None)
                param: dict[str, Any] = {
                    "name": key,
                    "in": "query",
                    "required": info.is_required(),
                    "schema": prop,
                }
                if info.description:
                    param["description"] = info.description
                if _is_list(info.annotation):
                    param["style"] = "form"
                    param["explode"] = True
                parameters.append(param)
        if e.method == "GET":
            parameters.append(
                {
                    "name": MIN_POSITION_HEADER,
                    "in": "header",
                    "required": False,
                    "description": "wait (bounded) until the read models reached this position",
                    "schema": {"type": "integer", "minimum": 0},
                }
            )
        operation: dict[str, Any] = {
            "summary": e.summary,
            "operationId": e.handler.__name__,
            "tags": [e.tag],
            "parameters": parameters,
            "responses": {},
        }
        if e.handler.__doc__:
            operation["description"] = e.handler.__doc__.strip()
        if e.body is not None:
            operation["requestBody"] = {
                "required": True,
                "content": {"application/json": {"schema": ref(e.body)}},
            }
        ok: dict[str, Any] = {"description": "OK"}
        if e.response is not None:
            ok["content"] = {"application/json": {"schema": ref(e.response)}}
        operation["responses"][str(e.status)] = ok
        codes = set(e.errors)
        if e.body is not None or e.method == "GET":
            codes |= {400, 422} if e.body is not None else {400}
        if e.query is not None:
            codes.add(422)
        if e.auth is not None:
            codes |= {401, 403}
            operation["security"] = [{"bearer": []}]
        if _path_params(e.path):
            codes.add(404)
        for code in sorted(codes):
            operation["responses"][str(code)] = {
                "description": _ERROR_TEXT[code],
                "content": problem,
            }
        paths.setdefault(e.path, {})[e.method.lower()] = operation
    return {
        "openapi": "3.1.0",
        "info": {"title": title, "version": version},
        "paths": paths,
        "components": {
            "schemas": schemas,
            "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}},
        },
    }


def _path_params(path: str) -> list[str]:
    return [part[1:-1].split(":")[0] for part in path.split("/") if part.startswith("{")]
