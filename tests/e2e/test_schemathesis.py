"""Property-based API fuzzing from /openapi.json: no input may cause a server error.

Every operation is called with a bounded number of generated requests, as an anonymous
caller, a seller, a developer and ops; responses must also match the documented status
codes, content types and schemas. The catalog holds a real app, installation and incident.
"""

from __future__ import annotations

import tempfile
from typing import Any

import pytest
import schemathesis
from hypothesis import HealthCheck, settings
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from application import accounts, sync_events
from appstore.bootstrap import create_app
from appstore.settings import Settings
from domain.incident import SyncEvent
from tests import factories as f

_DIR = tempfile.mkdtemp(prefix="appstore-schemathesis-")
_SETTINGS = Settings(
    database_url=f"sqlite:///{_DIR}/store.db", fast_password_hashing=True, ops_token="ops-secret"
)
# No background projector (ASGI calls here run without lifespan); short consistency waits.
APP = create_app(_SETTINGS, run_projections=False, consistency_timeout=0.01)


def _seed() -> dict[str, dict[str, str]]:
    store = APP.state.store
    developer = f.developer(store)
    seller = f.seller(store)
    app_id = f.app(store, developer, name="Fuzz Target")
    installation = f.active_installation(store, seller, app_id)
    from datetime import UTC, datetime

    sync_events.record_sync_event(
        store, SyncEvent("ev-1", installation, "failure", "orders", datetime.now(UTC), "E1", "boom")
    )
    APP.state.projector.catch_up()

    def token(account_id: Any) -> str:
        email = accounts.account(store, account_id).email
        return str(accounts.start_session(store, email, f.PASSWORD).token)

    return {
        "anonymous": {},
        "seller": {"Authorization": f"Bearer {token(seller)}"},
        "developer": {"Authorization": f"Bearer {token(developer)}"},
        "ops": {"Authorization": "Bearer ops-secret"},
    }


HEADERS = _seed()
schema = schemathesis.openapi.from_asgi("/openapi.json", APP)


@pytest.mark.parametrize("caller", list(HEADERS))
@schema.parametrize()
@settings(
    max_examples=5,
    deadline=None,
    suppress_health_check=list(HealthCheck),
)
def test_no_request_causes_a_server_error(case: schemathesis.Case, caller: str) -> None:
    headers = {**(case.headers or {}), **HEADERS[caller]}
    case.headers = headers
    checks = [not_a_server_error]
    if not case.operation.path.startswith("/oauth/"):
        # /oauth/* answers in RFC 6749 form (its own document); here: no 500 from it.
        checks += [status_code_conformance, content_type_conformance, response_schema_conformance]
    case.call_and_validate(checks=checks)
