"""CSRF protection for every form of the pages.

Each browser holds a random `appstore_csrf` cookie (HttpOnly); each form carries a token
that is the HMAC of that cookie and of the session it was shown to, under the server's
secret. A cross-site form cannot read the cookie nor sign a value of its own, a cookie
planted from a sibling host gives it nothing without the secret, and a token shown before
a log-in (or to another session) does not work after it. `rotate` gives the browser a new
cookie (at log-in, log-out, and after a decision that must not be replayed).
`verified(request, form)` is the one check every POST makes, the store's pages and the
OAuth authorization pages alike; `bind` says which session a request's forms belong to
(default: the store's session cookie).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import logging
import secrets
from collections.abc import Mapping
from typing import Any

from starlette.requests import Request
from starlette.responses import Response

from web.session import COOKIE as SESSION_COOKIE

COOKIE = "appstore_csrf"
FIELD = "csrf_token"

log = logging.getLogger("appstore.web")
# Used when APPSTORE_SECRET_KEY is unset: fine for one process, not for several workers.
_PROCESS_KEY = secrets.token_bytes(32)


def _key(request: Request) -> bytes:
    configured = getattr(request.app.state.settings, "secret_key", None)
    return configured.encode() if configured else _PROCESS_KEY


def _browser_secret(request: Request) -> str:
    """This browser's cookie value; a new one (set by `remember`) on its first page."""
    value: str | None = getattr(request.state, "csrf_cookie", None)
    if value is None:
        value = request.cookies.get(COOKIE) or ""
        if len(value) < 32:
            value = secrets.token_urlsafe(32)
            request.state.csrf_new = True
        request.state.csrf_cookie = value
    return value


def bind(request: Request, session_token: str | None) -> None:
    """The forms of this request belong to this session (None: signed out)."""
    request.state.csrf_session = session_token or ""


def rotate(request: Request) -> None:
    """A new browser secret from now on: every token shown before stops working."""
    request.state.csrf_cookie = secrets.token_urlsafe(32)
    request.state.csrf_new = True


def _session(request: Request) -> str:
    bound: str | None = getattr(request.state, "csrf_session", None)
    if bound is not None:
        return bound
    return request.cookies.get(SESSION_COOKIE) or ""


def _sign(request: Request, value: str) -> str:
    session = hashlib.sha256(_session(request).encode()).hexdigest()
    message = b"csrf\0" + value.encode() + b"\0" + session.encode()
    digest = hmac.new(_key(request), message, hashlib.sha256).digest()
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode()


def token(request: Request) -> str:
    """The token the forms of this page carry (in a hidden `csrf_token` field)."""
    return _sign(request, _browser_secret(request))


def verified(request: Request, form: Mapping[str, Any]) -> bool:
    """Whether a posted form carries the token of this browser's cookie."""
    cookie = request.cookies.get(COOKIE) or ""
    sent = form.get(FIELD)
    if len(cookie) < 32 or not isinstance(sent, str):
        return False
    return hmac.compare_digest(sent.encode(), _sign(request, cookie).encode())


def remember(request: Request, response: Response) -> None:
    """Sets the cookie on a response when this request gave the browser a new one."""
    if getattr(request.state, "csrf_new", False):
        response.set_cookie(
            COOKIE,
            request.state.csrf_cookie,
            max_age=30 * 24 * 3600,
            httponly=True,
            samesite="lax",
            secure=request.url.scheme == "https",
            path="/",
        )
