"""The OpenAPI 3.1 document, generated from the route table's pydantic models."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel
from pydantic.json_schema import models_json_schema

from api.consistency import MIN_POSITION_HEADER
from api.problems import ProblemBody
from api.routing import Endpoint, Link, is_list_annotation

_ERROR_TEXT = {
    400: "Malformed request",
    401: "Missing or invalid credentials",
    403: "Wrong role or ops token",
    404: "Not found",
    409: "Conflict with the current state",
    413: "Request body too large",
    415: "Unsupported media type",
    422: "Invalid input (the field is named in errors)",
    429: "Too many attempts: wait for Retry-After seconds",
    503: "The store is unavailable: retry after Retry-After seconds",
}
_FORM = "application/x-www-form-urlencoded"


class OAuthErrorBody(BaseModel):
    """An RFC 6749 §5.2 error."""

    error: str
    error_description: str | None = None


def openapi(
    endpoints: list[Endpoint],
    title: str,
    version: str,
    extra_paths: dict[str, dict[str, Any]] | None = None,
) -> dict[str, Any]:
    """The OpenAPI 3.1 document of a route table (plus paths documented by hand, e.g. the
    HTML authorization pages)."""
    models: set[type[BaseModel]] = {ProblemBody, OAuthErrorBody}
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
    oauth_error = {"application/json": {"schema": ref(OAuthErrorBody)}}
    paths: dict[str, dict[str, Any]] = {}
    for e in endpoints:
        parameters: list[dict[str, Any]] = []
        for name in _path_params(e.path):
            parameters.append(
                {"name": name, "in": "path", "required": True, "schema": {"type": "string"}}
            )
        if e.query is not None:
            parameters.extend(_query_parameters(e.query))
        if e.method == "GET" and e.tag != "oauth":
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
            media = _FORM if e.form else "application/json"
            operation["requestBody"] = {
                "required": True,
                "content": {media: {"schema": ref(e.body)}},
            }
        ok: dict[str, Any] = {"description": "OK"}
        if e.response is not None:
            ok["content"] = {e.media_type: {"schema": ref(e.response)}}
        if e.links:
            ok["links"] = {link.name: _link(link) for link in e.links}
        operation["responses"][str(e.status)] = ok
        if e.form:  # the OAuth endpoints answer errors the RFC 6749 way
            operation["security"] = [{"client_secret_basic": []}, {}]
            for code in (400, 401):
                operation["responses"][str(code)] = {
                    "description": "RFC 6749 error",
                    "content": oauth_error,
                }
        else:
            for code in sorted(_error_codes(e)):
                operation["responses"][str(code)] = {
                    "description": _ERROR_TEXT[code],
                    "content": problem,
                }
            if e.auth is not None:
                operation["security"] = [{"bearer": []}]
        paths.setdefault(e.path, {})[e.method.lower()] = operation
    for path, items in (extra_paths or {}).items():
        paths.setdefault(path, {}).update(items)
    return {
        "openapi": "3.1.0",
        "info": {"title": title, "version": version},
        "paths": paths,
        "components": {
            "schemas": schemas,
            "securitySchemes": {
                "bearer": {"type": "http", "scheme": "bearer"},
                "client_secret_basic": {"type": "http", "scheme": "basic"},
            },
        },
    }


def _link(link: Link) -> dict[str, Any]:
    out: dict[str, Any] = {"operationId": link.operation}
    if link.parameters:
        out["parameters"] = dict(link.parameters)
    if link.request_body is not None:
        out["requestBody"] = dict(link.request_body)
    if link.description:
        out["description"] = link.description
    return out


def _error_codes(e: Endpoint) -> set[int]:
    codes = set(e.errors)
    if e.body is not None or e.method == "GET":
        codes |= {400, 422} if e.body is not None else {400}
    if e.query is not None:
        codes.add(422)
    if e.auth is not None:
        codes |= {401, 403}
    if _path_params(e.path):
        codes.add(404)
    return codes


def _query_parameters(model: type[BaseModel]) -> list[dict[str, Any]]:
    schema = model.model_json_schema()
    parameters = []
    for name, info in model.model_fields.items():
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
        if is_list_annotation(info.annotation):
            param["style"] = "form"
            param["explode"] = True
        parameters.append(param)
    return parameters


def _path_params(path: str) -> list[str]:
    return [part[1:-1].split(":")[0] for part in path.split("/") if part.startswith("{")]
