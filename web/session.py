"""Who is browsing: the signed-in account behind the pages' session cookie.

The cookie holds the same bearer token the API hands out (`POST /v1/sessions`), so a page
session is an ordinary Session aggregate: it expires, and signing out ends it for real.
HttpOnly (scripts never see it), SameSite=Lax (other sites' forms do not carry it), Secure
on https.
"""

from __future__ import annotations

from dataclasses import dataclass
from uuid import UUID

from starlette.requests import Request
from starlette.responses import Response

from application import accounts
from application.accounts import SESSION_LIFETIME
from application.store import Store
from domain.errors import AccountNotFound

COOKIE = "appstore_session"


@dataclass(frozen=True)
class Visitor:
    """The signed-in account, as the pages show it."""

    account_id: UUID
    role: str
    name: str
    email: str
    account_type: str | None
    token: str

    @property
    def is_seller(self) -> bool:
        return self.role == "seller"


def visitor(request: Request) -> Visitor | None:
    """The account signed in on this browser, or None (looked up once per request).

    Blocking (it reads the store): call it from a page handler in the threadpool.
    """
    if hasattr(request.state, "visitor"):
        found: Visitor | None = request.state.visitor
        return found
    found = None
    token = request.cookies.get(COOKIE)
    if token:
        store: Store = request.app.state.store
        session = accounts.session_for(store, token)
        if session is not None:
            try:
                account = accounts.account(store, session.account_id)
            except AccountNotFound:
                account = None
            if account is not None:
                found = Visitor(
                    account.id, account.role, account.name, account.email,
                    account.account_type, token,
                )  # fmt: skip
    request.state.visitor = found
    return found


def start(request: Request, response: Response, token: str) -> None:
    """Makes this browser signed in with a session token."""
    response.set_cookie(
        COOKIE,
        token,
        max_age=int(SESSION_LIFETIME.total_seconds()),
        httponly=True,
        samesite="lax",
        secure=request.url.scheme == "https",
        path="/",
    )


def forget(request: Request, response: Response) -> None:
    """Removes the session cookie from this browser."""
    response.delete_cookie(
        COOKIE, path="/", httponly=True, samesite="lax", secure=request.url.scheme == "https"
    )
