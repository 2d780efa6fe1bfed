"""Who is calling: the bearer session of a request, and the ops token.

`await current_session(request, role="seller")` gives the valid Session or raises a
401/403 Problem. Other route modules (OAuth too) use it the same way.
"""

from __future__ import annotations

import hmac
from collections.abc import Sequence

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request

from api.problems import Problem
from application import accounts, tokens
from application.store import Store
from domain.session import Session


def bearer_token(request: Request) -> str | None:
    """The token of an `Authorization: Bearer <token>` header, or None."""
    header = request.headers.get("authorization", "")
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        return None
    return token.strip()


def client_address(request: Request) -> str | None:
    """The caller's address: the peer, or what a trusted proxy forwarded (uvicorn's
    forwarded_allow_ips = APPSTORE_TRUSTED_PROXIES decides whom to believe)."""
    return request.client.host if request.client else None


def _unauthorized(detail: str) -> Problem:
    return Problem(401, "Unauthorized", detail, headers={"WWW-Authenticate": "Bearer"})


async def optional_session(request: Request) -> Session | None:
    """The caller's valid session, or None when there is no (valid) token."""
    token = bearer_token(request)
    if token is None:
        return None
    store: Store = request.app.state.store
    return await run_in_threadpool(accounts.session_for, store, token)


async def current_session(request: Request, role: str | None = None) -> Session:
    """The caller's valid session; 401 without one, 403 when `role` does not match."""
    token = bearer_token(request)
    if token is None:
        raise _unauthorized("an Authorization: Bearer <token> header is required")
    return await run_in_threadpool(checked_session, request.app.state.store, token, role)


def checked_session(store: Store, token: str | None, role: str | None = None) -> Session:
    """`current_session`, blocking (in a thread that has more to do: one trip to the
    threadpool, not two): 401 without a valid session, 403 when `role` does not match."""
    if token is None:
        raise _unauthorized("an Authorization: Bearer <token> header is required")
    session = accounts.session_for(store, token)
    if session is None:
        raise _unauthorized("the session token is unknown, expired or ended")
    if role is not None and session.role != role:
        raise Problem(403, "Wrong account role", f"this needs a {role} account")
    return session


def require_ops(request: Request) -> None:
    """Checks the ops bearer token (APPSTORE_OPS_TOKEN); 403 when ops routes are disabled."""
    expected = request.app.state.settings.ops_token
    if not expected:
        raise Problem(403, "Ops routes disabled", "APPSTORE_OPS_TOKEN is not set")
    token = bearer_token(request)
    if token is None or not hmac.compare_digest(token.encode(), expected.encode()):
        raise _unauthorized("the ops token is required")


async def installation_token(
    request: Request, required_scope: str | Sequence[str] | None = None
) -> tokens.TokenCheck:
    """The active access token of the `Authorization: Bearer` header, or a 401/403 Problem.

    401 (RFC 6750 `invalid_token`) carries the typed reason (`revoked`, `expired`,
    `cancelled`, `installation_expired`, `unknown`); a missing scope (given several: none of
    them) is 403 `insufficient_scope`. The check's `installation_id` says which installation
    calls.
    """
    token = bearer_token(request)
    check = await run_in_threadpool(
        tokens.check_access_token, request.app.state.store, token, required_scope
    )
    if check.active:
        return check
    if check.reason == "insufficient_scope":
        needed = [required_scope] if isinstance(required_scope, str) else list(required_scope or [])
        raise Problem(
            403,
            "Insufficient scope",
            f"this needs the {' or '.join(needed)} scope",
            # RFC 6750 §3: the scope that would do (the first suffices).
            headers={"WWW-Authenticate": f'Bearer error="insufficient_scope", scope="{needed[0]}"'},
        )
    reason = check.reason if token else "missing"
    raise Problem(
        401,
        "Invalid access token",
        f"the access token is not active: {reason}",
        headers={"WWW-Authenticate": f'Bearer error="invalid_token", error_description="{reason}"'},
        errors=[{"field": "Authorization", "message": str(reason)}],
    )
