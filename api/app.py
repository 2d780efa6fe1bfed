"""The JSON API: its route table, read top to bottom, and its OpenAPI document.

The composition root (appstore/bootstrap.py) builds the Starlette app from `routes()` and
`EXCEPTION_HANDLERS` (api/problems.py) and puts on `app.state` what the routes read:
`store` (the store port), `settings`, `projector` (read-model engine and runner),
`consistency_timeout` (seconds a read-your-writes wait may take), `metrics`,
`catalog_answers` (the answer cache) and `openapi` (the document).
"""

from __future__ import annotations

from typing import Any

from starlette.routing import BaseRoute

from api import (
    accounts,
    audit,
    catalog,
    developer,
    incidents,
    installations,
    my_apps,
    notifications,
    ops,
    reviews,
    sync_events,
    tokens,
    webhooks,
)
from api.openapi import openapi
from api.routing import Endpoint

TITLE = "App & Service Store"
VERSION = "1.0.0"

ENDPOINTS: list[Endpoint] = [
    *accounts.endpoints,
    *catalog.endpoints,
    *developer.endpoints,
    *installations.endpoints,
    *my_apps.endpoints,
    *notifications.endpoints,
    *incidents.endpoints,
    *reviews.endpoints,
    *sync_events.endpoints,
    *tokens.endpoints,
    *webhooks.endpoints,
    *audit.endpoints,
    *ops.endpoints,
]


def routes() -> list[BaseRoute]:
    """Every API route: the documented endpoints, then /metrics and /openapi.json."""
    return [*(e.route() for e in ENDPOINTS), *ops.plain_routes]


def openapi_document(extra_paths: dict[str, dict[str, Any]] | None = None) -> dict[str, Any]:
    """The OpenAPI 3.1 document of the API (plus paths other packages document)."""
    return openapi(ENDPOINTS, TITLE, VERSION, extra_paths)
