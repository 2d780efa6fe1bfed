"""One request to the authorization endpoint as the pages see it: the OAuth parameters
carried from page to page, the CSRF token (web/csrf.py's signed token, bound to the OAuth
session, rotated at log-in), the seller's session cookie, and the ways to answer (a page,
or a redirect back to the client)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from markupsafe import Markup
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response

from api.tokens import issuer
from application import accounts, authorization
from application.authorization import AuthorizationRequest, with_query
from application.store import Store
from domain import values as v
from domain.account import Account
from domain.errors import OAuthError
from web import csrf
from web.pages import HEADERS, page

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
LINK_STEPS = [
    ("login", "Log in"),
    ("info", "Installation information"),
    ("confirm", "Confirm"),
    ("conditions", "Authorize"),
]
# Pages must not be framed (clickjacking, RFC 9700 §4.16) nor cached, nor leak the link's
# parameters to another site through the Referer header.
PAGE_HEADERS = {**HEADERS, "Referrer-Policy": "no-referrer"}


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
        """A page of the flow on the store's layout, without the store's header links (the
        seller stays on the way to authorizing) and carrying the link's parameters."""
        csrf.bind(self.request, self.session_token())
        values: dict[str, Any] = {"app": None, "step": None, "message": None}
        values.update(context)
        response = page(
            self.request,
            template,
            status=status,
            headers=PAGE_HEADERS,
            focused=True,
            csrf_field=self.csrf_field,
            action="/oauth/authorize",
            carried={k: val for k, val in self.params.items() if val},
            steps=LINK_STEPS,
            switch_account=True,
            **values,
        )
        return self.finish(response)

    def csrf_field(self) -> Markup:
        """The signed CSRF token of this browser and this OAuth session (web/csrf.py)."""
        return Markup('<input type="hidden" name="{}" value="{}">').format(
            csrf.FIELD, csrf.token(self.request)
        )

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
            "oauth/error.html",
            status=status,
            error=error.error,
            error_description=error.description,
        )

    def redirect(self, request: AuthorizationRequest, **answer: str) -> Response:
        """Back to the client (RFC 6749 §4.1.2): the answer plus the state, unchanged."""
        if request.state:
            answer["state"] = request.state
        answer["iss"] = issuer(self.request)  # RFC 9207: mix-up defence
        return self.finish(RedirectResponse(with_query(request.redirect_uri, answer), 302))


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
