"""The seller's pages of a developer's authorization link (OAuth 2.0 authorization code).

`GET/POST /oauth/authorize` walks the seller through log in (or sign up) → installation
information → confirm → review conditions → authorize, then redirects to the client's
redirect_uri with `code` and `state` (RFC 6749 §4.1, RFC 9207 `iss`). Each POST names its
`step`; `STEPS` below says what each one does, in the order a seller meets them.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from uuid import UUID

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from api.auth import client_address
from application import accounts, authorization, installations
from application.authorization import AuthorizationRequest
from domain import values as v
from domain.account import Account
from domain.errors import (
    DomainError,
    DuplicateInstallation,
    InstallationNotFound,
    InvalidCredentials,
    InvalidInput,
    OAuthError,
    Throttled,
)
from domain.installation import Installation
from web import csrf
from web.oauth_flow import OAUTH_PARAMS, SESSION_COOKIE, Flow, redirect_error


async def authorize(request: Request) -> Response:
    """GET and POST /oauth/authorize: the seller's pages of the authorization-link flow."""
    form: Mapping[str, Any] = await request.form() if request.method == "POST" else {}
    # The store's commands block on the database: keep them off the event loop.
    return await run_in_threadpool(_authorize, request, form)


def _authorize(request: Request, form: Mapping[str, Any]) -> Response:
    if request.method == "GET":
        flow = Flow(request, request.query_params)
        step = "show_signup" if request.query_params.get("screen") == "signup" else ""
    else:
        flow = Flow(request, form)
        step = str(form.get("step") or "")
        if not flow.posted_by_this_browser(form):
            error = OAuthError("invalid_request", "the form expired; open the link again")
            return flow.error_page(error, status=403)
    try:
        checked = flow.check()
        return _step(flow, checked, step, form)
    except OAuthError as error:
        return redirect_error(flow, error)


@dataclass(frozen=True)
class Step:
    """What one `step` of the flow does; `seller` steps need a signed-in seller."""

    run: Callable[..., Response]
    seller: bool = False


def _step(
    flow: Flow, request: AuthorizationRequest, step: str, form: Mapping[str, Any]
) -> Response:
    action = STEPS.get(step, STEPS[""])
    if not action.seller:
        return action.run(flow, request, form)
    seller = flow.seller()
    if seller is None:
        return flow.page("login.html", app=request.app, step="login")
    return action.run(flow, request, form, seller)


# --- before sign-in ----------------------------------------------------------------------------
def _show_login(flow: Flow, request: AuthorizationRequest, form: Mapping[str, Any]) -> Response:
    return flow.page("login.html", app=request.app, step="login")


def _show_signup(flow: Flow, request: AuthorizationRequest, form: Mapping[str, Any]) -> Response:
    return flow.page("signup.html", app=request.app, step="login")


def _switch(flow: Flow, request: AuthorizationRequest, form: Mapping[str, Any]) -> Response:
    """Another seller account: log out for real, not just forget the cookie."""
    current = flow.request.cookies.get(SESSION_COOKIE)
    if current and accounts.session_for(flow.store, current) is not None:
        accounts.end_session(flow.store, current)
    flow.signed_in(None)
    return _show_login(flow, request, form)


def _login(flow: Flow, request: AuthorizationRequest, form: Mapping[str, Any]) -> Response:
    store, app = flow.store, request.app
    email = str(form.get("email") or "")
    account_type = str(form.get("account_type") or "local")
    again = {"app": app, "step": "login", "email": email, "account_type": account_type}
    try:
        started = accounts.start_session(
            store, email, str(form.get("password") or ""), client_address(flow.request)
        )
    except InvalidCredentials:
        return flow.page(
            "login.html", status=401, message="The e-mail or password is wrong.", **again
        )
    except Throttled as error:
        message = "Too many failed attempts. Wait a few minutes and try again."
        page = flow.page("login.html", status=429, message=message, **again)
        page.headers["Retry-After"] = str(int(error.retry_after))
        return page
    account = accounts.account(store, started.session.account_id)
    if account.role != v.Role.SELLER.value or account.account_type != account_type:
        accounts.end_session(store, started.token)
        kind = "a developer" if account.role != v.Role.SELLER.value else "another type of"
        message = f"This is {kind} account; log in with your seller account type."
        return flow.page("login.html", status=403, message=message, **again)
    flow.signed_in(started.token)
    return _next_page(flow, request, account)


def _signup(flow: Flow, request: AuthorizationRequest, form: Mapping[str, Any]) -> Response:
    store = flow.store
    fields = {k: str(form.get(k) or "") for k in ("name", "email", "account_type")}
    password = str(form.get("password") or "")
    try:
        accounts.register_account(
            store,
            "seller",
            fields["email"],
            password,
            fields["name"],
            fields["account_type"] or "local",
        )
        started = accounts.start_session(store, fields["email"], password)
    except DomainError as error:
        return flow.page(
            "signup.html", status=422, app=request.app, step="login", message=error.detail, **fields
        )
    flow.signed_in(started.token)
    return _next_page(flow, request, accounts.account(store, started.session.account_id))


# --- signed in ---------------------------------------------------------------------------------
def _next(
    flow: Flow, request: AuthorizationRequest, form: Mapping[str, Any], seller: Account
) -> Response:
    return _next_page(flow, request, seller)


def _next_page(flow: Flow, request: AuthorizationRequest, seller: Account) -> Response:
    """After log-in: re-authorize a live installation, or start a new one."""
    live = installations.live_installation(flow.store, seller.id, request.app.id)
    if live is not None:
        return _conditions_page(flow, request, live)
    return _info_page(flow, request, seller, {"contact_email": seller.email})


def _entered(form: Mapping[str, Any]) -> dict[str, str]:
    return {k: str(form.get(k) or "") for k in ("duration", "contact_email", "contact_phone")}


def _edit(
    flow: Flow, request: AuthorizationRequest, form: Mapping[str, Any], seller: Account
) -> Response:
    return _info_page(flow, request, seller, _entered(form))


def _info(
    flow: Flow, request: AuthorizationRequest, form: Mapping[str, Any], seller: Account
) -> Response:
    """Installation information entered: check it, then ask to confirm."""
    entered = _entered(form)
    try:
        checked = _checked_info(request, entered)
    except InvalidInput as error:
        return _info_page(flow, request, seller, entered, status=422, message=error.detail)
    return flow.page(
        "confirm.html",
        app=request.app,
        step="confirm",
        duration=checked["duration"],
        contact_email=checked["contact_email"],
        contact_phone=checked["contact_phone"],
    )


def _confirm(
    flow: Flow, request: AuthorizationRequest, form: Mapping[str, Any], seller: Account
) -> Response:
    """Confirmed: install (pending authorization), then show the conditions."""
    entered = _entered(form)
    try:
        checked = _checked_info(request, entered)
    except InvalidInput as error:
        return _info_page(flow, request, seller, entered, status=422, message=error.detail)
    try:
        outcome = installations.install(
            flow.store,
            seller.id,
            request.app.id,
            checked["duration"],
            checked["contact_email"],
            checked["contact_phone"],
            scopes=request.scopes,
            via="oauth",
        )
    except DuplicateInstallation:
        return _next_page(flow, request, seller)
    except DomainError as error:
        return _info_page(flow, request, seller, entered, status=409, message=error.detail)
    return _conditions_page(flow, request, installations.installation(flow.store, outcome.id))


def _checked_info(request: AuthorizationRequest, entered: dict[str, str]) -> dict[str, str]:
    duration = v.Duration.parse(entered["duration"]).value
    if duration not in request.app.durations:
        raise InvalidInput("duration", "this app does not offer this duration")
    return {
        "duration": duration,
        "contact_email": v.email_address(entered["contact_email"], "contact_email"),
        "contact_phone": v.phone_number(entered["contact_phone"], "contact_phone"),
    }


def _decide(
    flow: Flow, request: AuthorizationRequest, form: Mapping[str, Any], seller: Account
) -> Response:
    """Authorize (a code for the client) or deny (access_denied), back to the client."""
    store = flow.store
    unknown = OAuthError("invalid_request", "unknown installation", redirectable=False)
    try:
        installation_id = UUID(str(form.get("installation_id")))
        installation = installations.own_installation(store, seller.id, installation_id)
    except (ValueError, InstallationNotFound):
        return flow.error_page(unknown)
    if installation.app_id != request.app.id:
        return flow.error_page(unknown)
    now = store.clock.now()
    csrf.rotate(flow.request)  # this decision's form cannot be sent again
    if form.get("decision") != "allow":
        if installation.is_pending(now):
            installations.decline(store, seller.id, installation.id)
        return flow.redirect(
            request, error="access_denied", error_description="the seller denied access"
        )
    try:
        if installation.is_pending(now):
            installations.authorize(store, seller.id, installation.id)
    except DomainError as error:
        raise OAuthError("access_denied", error.detail) from error
    issued = authorization.issue_code(store, seller.id, installation.id, request)
    return flow.redirect(request, code=issued.code)


# --- pages ---------------------------------------------------------------------------------------
def _info_page(
    flow: Flow,
    request: AuthorizationRequest,
    seller: Account,
    entered: dict[str, str],
    status: int = 200,
    message: str | None = None,
) -> Response:
    durations = request.app.durations
    context = {**entered, "message": message}
    if not context.get("duration"):
        context["duration"] = durations[0]
    return flow.page(
        "info.html",
        status=status,
        app=request.app,
        step="info",
        seller=seller,
        durations=durations,
        **context,
    )


def _conditions_page(
    flow: Flow, request: AuthorizationRequest, installation: Installation
) -> Response:
    now = flow.store.clock.now()
    if installation.is_live(now):
        expires = installation.expires_at
    else:
        expires = installation.duration.expiry_from(now)
    scopes = [s for s in request.scopes if s in installation.scopes]
    return flow.page(
        "conditions.html",
        app=request.app,
        step="conditions",
        installation_id=str(installation.id),
        scopes=[(s, v.SCOPES[s]) for s in scopes],
        duration=installation.duration.value,
        expires_text=_when(expires),
    )


def _when(moment: datetime | None) -> str:
    return "Never (until you cancel)" if moment is None else moment.strftime("%d %B %Y, %H:%M UTC")


# The flow, step by step: what each POSTed `step` does ("" = wherever the seller is).
STEPS: dict[str, Step] = {
    "show_login": Step(_show_login),
    "show_signup": Step(_show_signup),
    "switch": Step(_switch),
    "login": Step(_login),
    "signup": Step(_signup),
    "": Step(_next, seller=True),
    "info": Step(_info, seller=True),
    "edit": Step(_edit, seller=True),
    "confirm": Step(_confirm, seller=True),
    "decide": Step(_decide, seller=True),
}

routes = [Route("/oauth/authorize", authorize, methods=["GET", "POST"])]

# /oauth/authorize answers HTML: documented by hand in /openapi.json.
OPENAPI_PATHS: dict[str, dict[str, Any]] = {
    "/oauth/authorize": {
        "get": {
            "summary": "Authorization link (RFC 6749 §4.1, PKCE S256)",
            "tags": ["oauth"],
            "description": "HTML pages: log in or sign up, installation info, confirm, "
            "review conditions, authorize; then 302 to redirect_uri?code&state.",
            "parameters": [
                {
                    "name": name,
                    "in": "query",
                    "required": name in ("client_id", "response_type"),
                    "schema": {"type": "string"},
                }
                for name in OAUTH_PARAMS
            ],
            "responses": {
                "200": {"description": "an HTML page", "content": {"text/html": {}}},
                "302": {"description": "back to the client (code or error, with state)"},
                "400": {"description": "unknown client or redirect_uri: error page"},
            },
        }
    }
}
