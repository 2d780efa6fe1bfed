"""OAuth 2.0 endpoints and the seller's authorization pages (server-rendered, Jinja2).

`GET/POST /oauth/authorize` walks the seller through log in (or sign up) → installation
information → confirm → review conditions → authorize, then redirects to the client's
redirect_uri with `code` and `state`. `POST /oauth/token`, `/oauth/introspect` (RFC 7662)
and `/oauth/revoke` (RFC 7009) serve the developer's back end. `GET /v1/me/apps/{id}`
is the seller's authorization record of one installation.
"""

from __future__ import annotations

import base64
import hmac
import secrets
from collections.abc import Callable, Mapping
from datetime import datetime
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, unquote, urlencode, urlsplit, urlunsplit
from uuid import UUID

from jinja2 import Environment, FileSystemLoader, select_autoescape
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, RedirectResponse, Response
from starlette.routing import Route

from api.auth import bearer_token, current_session
from api.problems import Problem, not_found
from domain import oauth
from domain import values as v
from domain.account import Account
from domain.app_listing import AppListing
from domain.errors import (
    DomainError,
    DuplicateInstallation,
    InstallationNotFound,
    InvalidCredentials,
    InvalidInput,
)
from domain.installation import Installation, InstallationSlot, installation_slot_id
from domain.oauth import OAuthError
from domain.store import AppStore

SESSION_COOKIE = "appstore_oauth_session"
CSRF_COOKIE = "appstore_oauth_csrf"
OAUTH_PARAMS = (
    "client_id",
    "redirect_uri",
    "response_type",
    "scope",
    "state",
    "code_challenge",
    "code_challenge_method",
)
DURATION_LABELS = {
    "30d": "30 days",
    "90d": "90 days",
    "180d": "180 days",
    "365d": "1 year",
    "unlimited": "Unlimited (until you cancel)",
}
# Pages must not be framed (clickjacking, RFC 9700 §4.16) nor cached.
PAGE_HEADERS = {
    "Cache-Control": "no-store",
    "X-Frame-Options": "DENY",
    "Content-Security-Policy": "frame-ancestors 'none'",
    "Referrer-Policy": "no-referrer",
}
NO_STORE = {"Cache-Control": "no-store", "Pragma": "no-cache"}

_templates = Environment(
    loader=FileSystemLoader(Path(__file__).parent / "templates"),
    autoescape=select_autoescape(["html"]),
)


def _store(request: Request) -> AppStore:
    store: AppStore = request.app.state.store
    return store


# --- the authorization pages ---------------------------------------------------------------
class Flow:
    """One request to the authorization endpoint: its parameters, CSRF token and seller."""

    def __init__(self, request: Request, params: Mapping[str, Any]) -> None:
        self.request = request
        self.store = _store(request)
        self.params = {k: str(params.get(k) or "") for k in OAUTH_PARAMS}
        self.csrf = request.cookies.get(CSRF_COOKIE) or secrets.token_urlsafe(32)
        self.new_session: str | None = None
        self.clear_session = False

    def check(self) -> oauth.AuthorizationRequest:
        p = self.params
        return oauth.check_authorization_request(
            self.store,
            client_id=p["client_id"] or None,
            redirect_uri=p["redirect_uri"] or None,
            response_type=p["response_type"] or None,
            scope=p["scope"] or None,
            state=p["state"] or None,
            code_challenge=p["code_challenge"] or None,
            code_challenge_method=p["code_challenge_method"] or None,
        )

    def seller(self) -> Account | None:
        token = self.new_session or (
            None if self.clear_session else self.request.cookies.get(SESSION_COOKIE)
        )
        session = self.store.session_for(token) if token else None
        if session is None or session.role != v.Role.SELLER.value:
            return None
        return self.store.account(session.account_id)

    def page(self, template: str, status: int = 200, **context: Any) -> Response:
        html = _templates.get_template(f"oauth/{template}").render(
            csrf_token=self.csrf,
            oauth_params={k: val for k, val in self.params.items() if val},
            duration_labels=DURATION_LABELS,
            **context,
        )
        return self.finish(HTMLResponse(html, status_code=status, headers=PAGE_HEADERS))

    def finish(self, response: Response) -> Response:
        secure = self.request.url.scheme == "https"
        response.set_cookie(
            CSRF_COOKIE, self.csrf, httponly=True, samesite="strict", secure=secure, path="/oauth"
        )
        if self.new_session:
            response.set_cookie(
                SESSION_COOKIE,
                self.new_session,
                max_age=12 * 3600,
                httponly=True,
                samesite="lax",
                secure=secure,
                path="/oauth",
            )
        elif self.clear_session:
            response.delete_cookie(SESSION_COOKIE, path="/oauth")
        return response

    def error_page(self, error: OAuthError) -> Response:
        return self.page(
            "error.html", status=400, error=error.error, error_description=error.description
        )

    def redirect(self, request: oauth.AuthorizationRequest, **answer: str) -> Response:
        """Back to the client (RFC 6749 §4.1.2): the answer plus the state, unchanged."""
        if request.state:
            answer["state"] = request.state
        answer["iss"] = issuer(self.request)  # RFC 9207: mix-up defence
        return self.finish(RedirectResponse(_with_query(request.redirect_uri, answer), 302))


def issuer(request: Request) -> str:
    """This authorization server's issuer identifier (RFC 8414): the public base URL."""
    return str(request.base_url).rstrip("/")


async def metadata(request: Request) -> Response:
    """GET /.well-known/oauth-authorization-server (RFC 8414)."""
    base = issuer(request)
    auth_methods = ["client_secret_basic", "client_secret_post"]
    return JSONResponse(
        {
            "issuer": base,
            "authorization_endpoint": f"{base}/oauth/authorize",
            "token_endpoint": f"{base}/oauth/token",
            "introspection_endpoint": f"{base}/oauth/introspect",
            "revocation_endpoint": f"{base}/oauth/revoke",
            "response_types_supported": ["code"],
            "grant_types_supported": ["authorization_code", "refresh_token"],
            "code_challenge_methods_supported": ["S256"],
            "token_endpoint_auth_methods_supported": auth_methods,
            "introspection_endpoint_auth_methods_supported": auth_methods,
            "revocation_endpoint_auth_methods_supported": auth_methods,
            "scopes_supported": list(v.SCOPES),
            "authorization_response_iss_parameter_supported": True,
        }
    )


def _with_query(uri: str, params: Mapping[str, str]) -> str:
    parts = urlsplit(uri)
    query = parse_qsl(parts.query, keep_blank_values=True) + list(params.items())
    return urlunsplit(parts._replace(query=urlencode(query)))


def _redirect_error(flow: Flow, error: OAuthError) -> Response:
    """An error the client must hear about, or an error page when it must not be redirected."""
    if not error.redirectable:
        return flow.error_page(error)
    app = oauth.client_app(flow.store, flow.params["client_id"])
    assert app is not None  # a redirectable error means the client and redirect_uri checked out
    uri = flow.params["redirect_uri"] or app.details["redirect_uris"][0]
    answer = {"error": error.error, "error_description": error.description}
    if flow.params["state"]:
        answer["state"] = flow.params["state"]
    answer["iss"] = issuer(flow.request)
    return flow.finish(RedirectResponse(_with_query(uri, answer), 302))


async def authorize(request: Request) -> Response:
    """GET and POST /oauth/authorize: the seller's pages of the authorization-link flow."""
    form: Mapping[str, Any] = await request.form() if request.method == "POST" else {}
    # The store's commands block on the database: keep them off the event loop.
    return await run_in_threadpool(_authorize, request, form)


def _authorize(request: Request, form: Mapping[str, Any]) -> Response:
    if request.method == "GET":
        flow = Flow(request, request.query_params)
    else:
        flow = Flow(request, form)
        sent = str(form.get("csrf_token") or "")
        cookie = request.cookies.get(CSRF_COOKIE) or ""
        if not cookie or not hmac.compare_digest(sent.encode(), cookie.encode()):
            error = OAuthError("invalid_request", "the form expired; open the link again")
            return flow.page(
                "error.html", status=403, error=error.error, error_description=error.description
            )
    try:
        checked = flow.check()
    except OAuthError as error:
        return _redirect_error(flow, error)
    step = str(form.get("step") or "") if request.method == "POST" else ""
    if request.method == "GET" and request.query_params.get("screen") == "signup":
        step = "show_signup"
    try:
        return _step(flow, checked, step, form)
    except OAuthError as error:
        return _redirect_error(flow, error)


def _step(
    flow: Flow, request: oauth.AuthorizationRequest, step: str, form: Mapping[str, Any]
) -> Response:
    app = request.app
    store = flow.store
    if step == "switch":
        current = flow.request.cookies.get(SESSION_COOKIE)
        if current and store.session_for(current) is not None:
            store.end_session(current)  # log out for real, not just forget the cookie
        flow.clear_session = True
        return flow.page("login.html", app=app, step="login")
    if step == "show_signup":
        return flow.page("signup.html", app=app, step="login")
    if step == "show_login":
        return flow.page("login.html", app=app, step="login")
    if step == "login":
        email = str(form.get("email") or "")
        account_type = str(form.get("account_type") or "local")
        try:
            started = store.start_session(email, str(form.get("password") or ""))
        except InvalidCredentials:
            return flow.page(
                "login.html",
                status=401,
                app=app,
                step="login",
                email=email,
                account_type=account_type,
                message="The e-mail or password is wrong.",
            )
        account = store.account(started.session.account_id)
        if account.role != v.Role.SELLER.value or account.account_type != account_type:
            store.end_session(started.token)
            kind = "a developer" if account.role != v.Role.SELLER.value else "another type of"
            return flow.page(
                "login.html",
                status=403,
                app=app,
                step="login",
                email=email,
                account_type=account_type,
                message=f"This is {kind} account; log in with your seller account type.",
            )
        flow.new_session = started.token
        return _next_page(flow, request, account)
    if step == "signup":
        fields = {k: str(form.get(k) or "") for k in ("name", "email", "account_type")}
        try:
            store.register_account(
                "seller",
                fields["email"],
                str(form.get("password") or ""),
                fields["name"],
                fields["account_type"] or "local",
            )
            started = store.start_session(fields["email"], str(form.get("password") or ""))
        except DomainError as error:
            return flow.page(
                "signup.html", status=422, app=app, step="login", message=error.detail, **fields
            )
        flow.new_session = started.token
        return _next_page(flow, request, store.account(started.session.account_id))

    seller = flow.seller()
    if seller is None:
        return flow.page("login.html", app=app, step="login")
    if step in ("info", "confirm"):
        entered = {
            k: str(form.get(k) or "") for k in ("duration", "contact_email", "contact_phone")
        }
        try:
            duration = v.Duration.parse(entered["duration"]).value
            if duration not in app.durations:
                raise InvalidInput("duration", "this app does not offer this duration")
            contact_email = v.email_address(entered["contact_email"], "contact_email")
            contact_phone = v.phone_number(entered["contact_phone"], "contact_phone")
        except InvalidInput as error:
            return _info_page(flow, request, seller, entered, status=422, message=error.detail)
        if step == "info":
            return flow.page(
                "confirm.html",
                app=app,
                step="confirm",
                duration=duration,
                contact_email=contact_email,
                contact_phone=contact_phone,
            )
        try:
            outcome = store.install(
                seller.id,
                app.id,
                duration,
                contact_email,
                contact_phone,
                scopes=request.scopes,
                via="oauth",
            )
        except DuplicateInstallation:
            return _next_page(flow, request, seller)
        except DomainError as error:
            return _info_page(flow, request, seller, entered, status=409, message=error.detail)
        return _conditions_page(flow, request, store.installation(outcome.id))
    if step == "edit":
        entered = {
            k: str(form.get(k) or "") for k in ("duration", "contact_email", "contact_phone")
        }
        return _info_page(flow, request, seller, entered)
    if step == "decide":
        return _decide(flow, request, seller, form)
    return _next_page(flow, request, seller)


def _live_installation(
    flow: Flow, request: oauth.AuthorizationRequest, seller: Account
) -> Installation | None:
    slot = flow.store._get(installation_slot_id(seller.id, request.app.id), InstallationSlot)
    if slot is None or slot.installation_id is None:
        return None
    installation = flow.store._get(slot.installation_id, Installation)
    now = flow.store.clock.now()
    return installation if installation is not None and installation.is_live(now) else None


def _next_page(flow: Flow, request: oauth.AuthorizationRequest, seller: Account) -> Response:
    """After log-in: re-authorize a live installation, or start a new one."""
    live = _live_installation(flow, request, seller)
    if live is not None:
        return _conditions_page(flow, request, live)
    return _info_page(flow, request, seller, {"contact_email": seller.email})


def _info_page(
    flow: Flow,
    request: oauth.AuthorizationRequest,
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
    flow: Flow, request: oauth.AuthorizationRequest, installation: Installation
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


def _decide(
    flow: Flow, request: oauth.AuthorizationRequest, seller: Account, form: Mapping[str, Any]
) -> Response:
    store = flow.store
    try:
        installation = store._own_installation(seller.id, UUID(str(form.get("installation_id"))))
    except (ValueError, InstallationNotFound):
        return flow.error_page(
            OAuthError("invalid_request", "unknown installation", redirectable=False)
        )
    if installation.app_id != request.app.id:
        return flow.error_page(
            OAuthError("invalid_request", "unknown installation", redirectable=False)
        )
    now = store.clock.now()
    if form.get("decision") != "allow":
        if installation.is_pending(now):
            store.decline(seller.id, installation.id)
        return flow.redirect(
            request, error="access_denied", error_description="the seller denied access"
        )
    try:
        if installation.is_pending(now):
            store.authorize(seller.id, installation.id)
    except DomainError as error:
        raise OAuthError("access_denied", error.detail) from error
    issued = oauth.issue_code(store, seller.id, installation.id, request)
    return flow.redirect(request, code=issued.code)


# --- the developer's endpoints ----------------------------------------------------------------
def _oauth_error(error: OAuthError) -> JSONResponse:
    headers = dict(NO_STORE)
    if error.status == 401:
        headers["WWW-Authenticate"] = 'Basic realm="appstore"'
    return JSONResponse(error.as_json(), status_code=error.status, headers=headers)


async def _form(request: Request) -> Mapping[str, Any]:
    if not request.headers.get("content-type", "").startswith("application/x-www-form-urlencoded"):
        raise OAuthError("invalid_request", "send application/x-www-form-urlencoded")
    return await request.form()


def _client(request: Request, form: Mapping[str, Any]) -> AppListing:
    """The authenticated client (client_secret_basic or client_secret_post)."""
    header = request.headers.get("authorization", "")
    client_id: str | None = None
    secret: str | None = None
    if header[:6].lower() == "basic ":
        try:
            decoded = base64.b64decode(header[6:], validate=True).decode()
        except ValueError:  # not base64, not ASCII or not UTF-8
            raise OAuthError("invalid_client", "malformed Basic credentials", status=401) from None
        raw_id, _, raw_secret = decoded.partition(":")
        client_id, secret = unquote(raw_id), unquote(raw_secret)
        if form.get("client_secret"):
            raise OAuthError("invalid_request", "use one client authentication method only")
    else:
        client_id = str(form.get("client_id") or "") or None
        secret = str(form.get("client_secret") or "") or None
    return oauth.authenticate_client(_store(request), client_id, secret)


async def _answer(
    request: Request, handle: Callable[[Request, Mapping[str, Any]], Response]
) -> Response:
    try:
        form = await _form(request)
        return await run_in_threadpool(handle, request, form)
    except OAuthError as error:
        return _oauth_error(error)


def _token(request: Request, form: Mapping[str, Any]) -> Response:
    client = _client(request, form)
    grant_type = form.get("grant_type")
    store = _store(request)
    if grant_type == "authorization_code":
        issued = oauth.exchange_code(
            store,
            client,
            _opt(form, "code"),
            _opt(form, "redirect_uri"),
            _opt(form, "code_verifier"),
        )
    elif grant_type == "refresh_token":
        issued = oauth.refresh_tokens(
            store, client, _opt(form, "refresh_token"), _opt(form, "scope")
        )
    elif not grant_type:
        raise OAuthError("invalid_request", "grant_type is required")
    else:
        raise OAuthError("unsupported_grant_type", f"{grant_type} is not supported")
    return JSONResponse(issued.as_json(), headers=NO_STORE)


def _introspect(request: Request, form: Mapping[str, Any]) -> Response:
    client = _client(request, form)
    check = oauth.check_token(_store(request), _opt(form, "token"), client=client)
    return JSONResponse(check.introspection(client.client_id), headers=NO_STORE)


def _revoke(request: Request, form: Mapping[str, Any]) -> Response:
    client = _client(request, form)
    oauth.revoke_token(_store(request), client, _opt(form, "token"))
    return Response(status_code=200, headers=NO_STORE)


async def token(request: Request) -> Response:
    """POST /oauth/token: authorization_code and refresh_token grants."""
    return await _answer(request, _token)


async def introspect(request: Request) -> Response:
    """POST /oauth/introspect (RFC 7662), with a typed `reason` when inactive."""
    return await _answer(request, _introspect)


async def revoke(request: Request) -> Response:
    """POST /oauth/revoke (RFC 7009): 200 even for unknown tokens."""
    return await _answer(request, _revoke)


def _opt(form: Mapping[str, Any], key: str) -> str | None:
    value = form.get(key)
    return str(value) if value else None


# --- the seller's authorization record ---------------------------------------------------------
async def authorization_record(request: Request) -> Response:
    """GET /v1/me/apps/{installation_id}: who authorized what, when, and the token activity."""
    try:
        session = await current_session(request, role=v.Role.SELLER.value)
        try:
            installation_id = UUID(request.path_params["installation_id"])
        except ValueError:
            raise not_found("installation") from None
        try:
            record = await run_in_threadpool(
                oauth.authorization_record, _store(request), session.account_id, installation_id
            )
        except InstallationNotFound:
            raise not_found("installation") from None
    except Problem as problem:
        return problem.response()
    return JSONResponse(record)


# --- for API routes called by apps with an installation's access token -----------------------
async def installation_token(
    request: Request, required_scope: str | None = None
) -> oauth.TokenCheck:
    """The active access token of the `Authorization: Bearer` header, or a 401/403 Problem.

    401 (RFC 6750 `invalid_token`) carries the typed reason (`revoked`, `expired`,
    `cancelled`, `installation_expired`, `unknown`); a missing scope is 403
    `insufficient_scope`. The check's `installation_id` says which installation calls.
    """
    token = bearer_token(request)
    check = await run_in_threadpool(
        oauth.check_access_token, _store(request), token, required_scope
    )
    if check.active:
        return check
    if check.reason == "insufficient_scope":
        raise Problem(
            403,
            "Insufficient scope",
            f"this needs the {required_scope} scope",
            headers={
                "WWW-Authenticate": f'Bearer error="insufficient_scope", scope="{required_scope}"'
            },
        )
    reason = check.reason if token else "missing"
    raise Problem(
        401,
        "Invalid access token",
        f"the access token is not active: {reason}",
        headers={"WWW-Authenticate": f'Bearer error="invalid_token", error_description="{reason}"'},
        errors=[{"field": "Authorization", "message": str(reason)}],
    )


# --- OpenAPI ---------------------------------------------------------------------------------
def _form_body(fields: dict[str, str], required: list[str]) -> dict[str, Any]:
    properties = {name: {"type": "string", "description": text} for name, text in fields.items()}
    schema = {"type": "object", "properties": properties, "required": required}
    return {"required": True, "content": {"application/x-www-form-urlencoded": {"schema": schema}}}


_OAUTH_ERROR = {
    "description": "RFC 6749 error",
    "content": {
        "application/json": {
            "schema": {
                "type": "object",
                "properties": {
                    "error": {"type": "string"},
                    "error_description": {"type": "string"},
                },
                "required": ["error"],
            }
        }
    },
}
_PROBLEM = {"application/problem+json": {"schema": {"type": "object"}}}
_CLIENT_AUTH: list[dict[str, list[str]]] = [{"client_secret_basic": []}, {}]
_CLIENT_FIELDS = {
    "client_id": "client_secret_post only",
    "client_secret": "client_secret_post only",
}


def openapi_paths() -> dict[str, Any]:
    """The OpenAPI path items of these routes (form bodies, RFC 6749 errors)."""
    query = [
        {
            "name": name,
            "in": "query",
            "required": name in ("client_id", "response_type"),
            "schema": {"type": "string"},
        }
        for name in OAUTH_PARAMS
    ]
    token_answer = {
        "type": "object",
        "properties": {
            "access_token": {"type": "string"},
            "token_type": {"type": "string", "enum": ["Bearer"]},
            "expires_in": {"type": "integer"},
            "refresh_token": {"type": "string"},
            "scope": {"type": "string"},
            "installation_id": {"type": "string", "format": "uuid"},
        },
    }
    introspection = {
        "type": "object",
        "properties": {
            "active": {"type": "boolean"},
            "reason": {
                "type": "string",
                "enum": ["unknown", "revoked", "expired", "cancelled", "installation_expired"],
                "description": "why the token is inactive (beyond RFC 7662)",
            },
            "scope": {"type": "string"},
            "client_id": {"type": "string"},
            "token_type": {"type": "string"},
            "exp": {"type": "integer"},
            "iat": {"type": "integer"},
            "sub": {"type": "string"},
            "seller_id": {"type": "string"},
            "installation_id": {"type": "string"},
        },
        "required": ["active"],
    }

    def json_ok(schema: dict[str, Any]) -> dict[str, Any]:
        return {"description": "OK", "content": {"application/json": {"schema": schema}}}

    return {
        "/.well-known/oauth-authorization-server": {
            "get": {
                "summary": "Authorization server metadata (RFC 8414)",
                "tags": ["oauth"],
                "responses": {"200": json_ok({"type": "object"})},
            }
        },
        "/oauth/authorize": {
            "get": {
                "summary": "Authorization link (RFC 6749 §4.1, PKCE S256)",
                "tags": ["oauth"],
                "description": "HTML pages: log in or sign up, installation info, confirm, "
                "review conditions, authorize; then 302 to redirect_uri?code&state.",
                "parameters": query,
                "responses": {
                    "200": {"description": "an HTML page", "content": {"text/html": {}}},
                    "302": {"description": "back to the client (code or error, with state)"},
                    "400": {"description": "unknown client or redirect_uri: error page"},
                },
            }
        },
        "/oauth/token": {
            "post": {
                "summary": "Token endpoint: authorization_code, refresh_token (rotating)",
                "tags": ["oauth"],
                "security": _CLIENT_AUTH,
                "requestBody": _form_body(
                    {
                        "grant_type": "authorization_code | refresh_token",
                        "code": "authorization_code",
                        "redirect_uri": "authorization_code",
                        "code_verifier": "authorization_code with PKCE",
                        "refresh_token": "refresh_token",
                        "scope": "refresh_token: narrow the access token",
                        **_CLIENT_FIELDS,
                    },
                    ["grant_type"],
                ),
                "responses": {
                    "200": json_ok(token_answer),
                    "400": _OAUTH_ERROR,
                    "401": _OAUTH_ERROR,
                },
            }
        },
        "/oauth/introspect": {
            "post": {
                "summary": "Token introspection (RFC 7662) with a typed reason",
                "tags": ["oauth"],
                "security": _CLIENT_AUTH,
                "requestBody": _form_body(
                    {"token": "the token", "token_type_hint": "ignored", **_CLIENT_FIELDS},
                    ["token"],
                ),
                "responses": {
                    "200": json_ok(introspection),
                    "400": _OAUTH_ERROR,
                    "401": _OAUTH_ERROR,
                },
            }
        },
        "/oauth/revoke": {
            "post": {
                "summary": "Token revocation (RFC 7009)",
                "tags": ["oauth"],
                "security": _CLIENT_AUTH,
                "requestBody": _form_body(
                    {"token": "the token", "token_type_hint": "ignored", **_CLIENT_FIELDS},
                    ["token"],
                ),
                "responses": {
                    "200": {"description": "revoked (or unknown)"},
                    "400": _OAUTH_ERROR,
                    "401": _OAUTH_ERROR,
                },
            }
        },
        "/v1/me/apps/{installation_id}": {
            "get": {
                "summary": "Authorization record of one of my installations",
                "tags": ["my apps"],
                "security": [{"bearer": []}],
                "parameters": [
                    {
                        "name": "installation_id",
                        "in": "path",
                        "required": True,
                        "schema": {"type": "string", "format": "uuid"},
                    }
                ],
                "responses": {
                    "200": json_ok({"type": "object"}),
                    "401": {"description": "no seller session", "content": _PROBLEM},
                    "403": {"description": "not a seller", "content": _PROBLEM},
                    "404": {"description": "not found (or another seller's)", "content": _PROBLEM},
                },
            }
        },
    }


def extend_openapi(document: dict[str, Any]) -> None:
    """Adds these routes and the client_secret_basic scheme to an OpenAPI document."""
    document.setdefault("paths", {}).update(openapi_paths())
    schemes = document.setdefault("components", {}).setdefault("securitySchemes", {})
    schemes["client_secret_basic"] = {"type": "http", "scheme": "basic"}


routes = [
    Route("/.well-known/oauth-authorization-server", metadata, methods=["GET"]),
    Route("/oauth/authorize", authorize, methods=["GET", "POST"]),
    Route("/oauth/token", token, methods=["POST"]),
    Route("/oauth/introspect", introspect, methods=["POST"]),
    Route("/oauth/revoke", revoke, methods=["POST"]),
    Route("/v1/me/apps/{installation_id}", authorization_record, methods=["GET"]),
]
