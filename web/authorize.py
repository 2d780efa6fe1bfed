"""The seller's pages of a developer's authorization link (OAuth 2.0 authorization code).

`GET/POST /oauth/authorize` walks the seller through log in (or sign up) → installation
information → confirm → review conditions → authorize, then redirects to the client's
redirect_uri with `code` and `state` (RFC 6749 §4.1, RFC 9207 `iss`). Each POST names its
`step`; `STEPS` below says what each one does, in the order a seller meets them. The
information → confirm → conditions steps are the store's own (web/install_steps.py): the
seller consents scope by scope (optional scopes are ticked checkboxes), and a
re-authorization asks only for the scopes not granted before.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any
from uuid import UUID

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from api.auth import client_address
from application import accounts, authorization, installations
from application.authorization import AuthorizationRequest
from application.store import Store
from domain import values as v
from domain.account import Account
from domain.app_listing import AppListing
from domain.credentials import MIN_PASSWORD_LENGTH
from domain.errors import (
    DomainError,
    EmailTaken,
    InstallationNotFound,
    InvalidCredentials,
    InvalidInput,
    OAuthError,
    Throttled,
)
from domain.installation import Installation
from web import csrf
from web import install_steps as steps
from web.forms import field_errors
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
class LinkJourney:
    """Installing through a developer's authorization link (see web/install_steps.py)."""

    flow: Flow
    link: AuthorizationRequest
    via: str = "oauth"

    @property
    def request(self) -> Request:
        return self.flow.request

    @property
    def store(self) -> Store:
        return self.flow.store

    @property
    def listing(self) -> AppListing:
        return self.link.app

    @property
    def asked(self) -> list[str] | None:
        return self.link.scopes

    def page(self, template: str, *, status: int = 200, **context: Any) -> Response:
        return self.flow.page(template, status=status, app=self.listing.details, **context)

    def installed_already(self, seller: Account, live: Installation) -> Response:
        """Already installed: the link re-authorizes the live installation."""
        return steps.show_conditions(self, live)


@dataclass(frozen=True)
class Step:
    """What one `step` of the flow does; `seller` steps need a signed-in seller."""

    run: Callable[..., Response]
    seller: bool = False


def _step(flow: Flow, link: AuthorizationRequest, step: str, form: Mapping[str, Any]) -> Response:
    journey = LinkJourney(flow, link)
    action = STEPS.get(step, STEPS[""])
    if not action.seller:
        return action.run(journey, form)
    seller = flow.seller()
    if seller is None:
        return _show_login(journey, form)
    return action.run(journey, seller, form)


# --- before sign-in ----------------------------------------------------------------------------
LOGIN_LABELS = {"account_type": "Select your account type", "email": "E-mail", "password": "Password"}  # fmt: skip
SIGNUP_LABELS = {**LOGIN_LABELS, "name": "Shop or your name"}


def _show_login(
    journey: LinkJourney,
    form: Mapping[str, Any],
    errors: dict[str, str] | None = None,
    status: int = 200,
) -> Response:
    values = {k: str(form.get(k) or "") for k in ("email", "account_type")}
    return journey.page(
        "oauth/login.html",
        status=status,
        step="login",
        values=values,
        errors=errors or {},
        labels=LOGIN_LABELS,
    )


def _show_signup(
    journey: LinkJourney,
    form: Mapping[str, Any],
    errors: dict[str, str] | None = None,
    status: int = 200,
) -> Response:
    values = {k: str(form.get(k) or "") for k in ("name", "email", "account_type")}
    return journey.page(
        "oauth/signup.html",
        status=status,
        step="login",
        values=values,
        errors=errors or {},
        labels=SIGNUP_LABELS,
        min_password=MIN_PASSWORD_LENGTH,
    )


def _switch(journey: LinkJourney, form: Mapping[str, Any]) -> Response:
    """Another seller account: log out for real, not just forget the cookie."""
    flow = journey.flow
    current = flow.request.cookies.get(SESSION_COOKIE)
    if current and accounts.session_for(flow.store, current) is not None:
        accounts.end_session(flow.store, current)
    flow.signed_in(None)
    return _show_login(journey, {})


def _login(journey: LinkJourney, form: Mapping[str, Any]) -> Response:
    store = journey.store
    account_type = str(form.get("account_type") or "local")
    try:
        started = accounts.start_session(
            store,
            str(form.get("email") or ""),
            str(form.get("password") or ""),
            client_address(journey.request),
        )
    except InvalidCredentials:
        errors = {"password": "The e-mail address or password is wrong."}
        return _show_login(journey, form, errors, status=401)
    except Throttled as error:
        errors = {"password": "Too many failed attempts. Wait a few minutes and try again."}
        page = _show_login(journey, form, errors, status=429)
        page.headers["Retry-After"] = str(int(error.retry_after))
        return page
    account = accounts.account(store, started.session.account_id)
    if account.role != v.Role.SELLER.value or account.account_type != account_type:
        accounts.end_session(store, started.token)
        kind = "a developer" if account.role != v.Role.SELLER.value else "another type of"
        errors = {"account_type": f"This is {kind} account; log in with your seller account type."}
        return _show_login(journey, form, errors, status=403)
    journey.flow.signed_in(started.token)
    return _next_page(journey, account)


def _signup(journey: LinkJourney, form: Mapping[str, Any]) -> Response:
    store = journey.store
    fields = {k: str(form.get(k) or "").strip() for k in ("name", "email", "account_type")}
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
    except EmailTaken:
        errors = {"email": "This e-mail address already has an account. Log in instead."}
        return _show_signup(journey, form, errors, status=409)
    except DomainError as error:
        errors = field_errors(error, SIGNUP_LABELS, default="email")
        return _show_signup(journey, form, errors, status=422)
    journey.flow.signed_in(started.token)
    return _next_page(journey, accounts.account(store, started.session.account_id))


# --- signed in ---------------------------------------------------------------------------------
def _next(journey: LinkJourney, seller: Account, form: Mapping[str, Any]) -> Response:
    return _next_page(journey, seller)


def _next_page(journey: LinkJourney, seller: Account) -> Response:
    """After log-in: re-authorize a live installation, or start a new one."""
    live = installations.live_installation(journey.store, seller.id, journey.listing.id)
    if live is not None:
        return journey.installed_already(seller, live)
    return steps.show_info(journey, seller, steps.first_values(journey, seller))


def _decide(journey: LinkJourney, seller: Account, form: Mapping[str, Any]) -> Response:
    """Authorize (a code for the client) or deny (access_denied), back to the client."""
    flow, link, store = journey.flow, journey.link, journey.store
    unknown = OAuthError("invalid_request", "unknown installation", redirectable=False)
    try:
        installation_id = UUID(str(form.get("installation_id")))
        installation = installations.own_installation(store, seller.id, installation_id)
    except (ValueError, InstallationNotFound):
        return flow.error_page(unknown)
    if installation.app_id != link.app.id:
        return flow.error_page(unknown)
    now = store.clock.now()
    csrf.rotate(flow.request)  # this decision's form cannot be sent again
    if form.get("decision") != "allow":
        if installation.is_pending(now):
            installations.decline(store, seller.id, installation.id)
        return flow.redirect(
            link, error="access_denied", error_description="the seller denied access"
        )
    ticked = steps.chosen(journey, {"scopes": list(_all(form, "scopes"))})
    try:
        issued = authorization.authorize_request(store, seller.id, installation.id, link, ticked)
    except InvalidInput as error:  # nothing left to grant: say so, ask again
        return steps.show_conditions(journey, installation, status=422, message=error.reason)
    except OAuthError:
        raise
    except DomainError as error:
        raise OAuthError("access_denied", error.detail) from error
    return flow.redirect(link, code=issued.code)


def _all(form: Mapping[str, Any], name: str) -> list[str]:
    """Every value of a repeated form field (checkboxes)."""
    getlist = getattr(form, "getlist", None)
    return [str(value) for value in getlist(name)] if getlist else []


# The flow, step by step: what each POSTed `step` does ("" = wherever the seller is).
STEPS: dict[str, Step] = {
    "show_login": Step(_show_login),
    "show_signup": Step(_show_signup),
    "switch": Step(_switch),
    "login": Step(_login),
    "signup": Step(_signup),
    "": Step(_next, seller=True),
    "info": Step(steps.info, seller=True),
    "edit": Step(steps.edit, seller=True),
    "confirm": Step(steps.confirm, seller=True),
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
