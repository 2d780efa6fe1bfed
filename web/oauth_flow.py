"""One request to the authorization endpoint as the pages see it: the OAuth parameters
carried from page to page, the CSRF token (web/csrf.py's signed token, bound to the OAuth
session, rotated at log-in), the seller's session cookie, and the ways to answer (a page,
or a redirect back to the client)."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from jinja2 import Environment, FileSystemLoader, select_autoescape
from starlette.requests import Request
from starlette.responses import HTMLResponse, RedirectResponse, Response

from api.tokens import issuer
from application import accounts, authorization
from application.authorization import AuthorizationRequest
from application.store import Store
from domain import values as v
from domain.account import Account
from domain.errors import OAuthError
from web import csrf

SESSION_COOKIE = "appstore_oauth_session"
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

_templates = Environment(
    loader=FileSystemLoader(Path(__file__).parent / "templates"),
    autoescape=select_autoescape(["html"]),
)


class Flow:
    """One request to the authorization endpoint: its parameters, CSRF token and seller."""

    def __init__(self, request: Request, params: Mapping[str, Any]) -> None:
        self.request = request
        self.store: Store = request.app.state.store
        self.params = {k: str(params.get(k) or "") for k in OAUTH_PARAMS}
        self.new_session: str | None = None
        self.clear_session = False

    def session_token(self) -> str | None:
        """The OAuth session this response belongs to (one started just now counts)."""
        if self.new_session:
            return self.new_session
        return None if self.clear_session else self.request.cookies.get(SESSION_COOKIE)

    def posted_by_this_browser(self, form: Mapping[str, Any]) -> bool:
        """The CSRF check of a POST: a token signed for this browser and this session."""
        csrf.bind(self.request, self.request.cookies.get(SESSION_COOKIE))
        return csrf.verified(self.request, form)

    def signed_in(self, token: str | None) -> None:
        """A log-in (a token) or log-out (None) in this request: new CSRF secret, and
        the pages from now on belong to the new session."""
        if token:
            self.new_session = token
        else:
            self.clear_session = True
        csrf.rotate(self.request)

    def check(self) -> AuthorizationRequest:
        p = self.params
        return authorization.check_authorization_request(
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
        token = self.session_token()
        session = accounts.session_for(self.store, token) if token else None
        if session is None or session.role != v.Role.SELLER.value:
            return None
        return accounts.account(self.store, session.account_id)

    def page(self, template: str, *, status: int = 200, **context: Any) -> Response:
        csrf.bind(self.request, self.session_token())
        html = _templates.get_template(f"oauth/{template}").render(
            csrf_token=csrf.token(self.request),
            oauth_params={k: val for k, val in self.params.items() if val},
            duration_labels=DURATION_LABELS,
            **context,
        )
        return self.finish(HTMLResponse(html, status_code=status, headers=PAGE_HEADERS))

    def finish(self, response: Response) -> Response:
        secure = self.request.url.scheme == "https"
        csrf.remember(self.request, response)
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

    def error_page(self, error: OAuthError, status: int = 400) -> Response:
        return self.page(
            "error.html", status=status, error=error.error, error_description=error.description
        )

    def redirect(self, request: AuthorizationRequest, **answer: str) -> Response:
        """Back to the client (RFC 6749 §4.1.2): the answer plus the state, unchanged."""
        if request.state:
            answer["state"] = request.state
        answer["iss"] = issuer(self.request)  # RFC 9207: mix-up defence
        return self.finish(RedirectResponse(with_query(request.redirect_uri, answer), 302))


def with_query(uri: str, params: Mapping[str, str]) -> str:
    parts = urlsplit(uri)
    query = parse_qsl(parts.query, keep_blank_values=True) + list(params.items())
    return urlunsplit(parts._replace(query=urlencode(query)))


def redirect_error(flow: Flow, error: OAuthError) -> Response:
    """An error the client must hear about, or an error page when it must not be redirected."""
    if not error.redirectable:
        return flow.error_page(error)
    app = authorization.client_app(flow.store, flow.params["client_id"])
    assert app is not None  # a redirectable error means the client and redirect_uri checked out
    uri = flow.params["redirect_uri"] or app.details["redirect_uris"][0]
    answer = {"error": error.error, "error_description": error.description}
    if flow.params["state"]:
        answer["state"] = flow.params["state"]
    answer["iss"] = issuer(flow.request)
    return flow.finish(RedirectResponse(with_query(uri, answer), 302))
