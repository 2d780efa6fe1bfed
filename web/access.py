"""Who may open a page: sellers' pages (My apps, installing) and developers' pages (the
console). Nobody signed in is sent to sign in and brought back; the other role is told
the page is not for them (403). Another account's data is never shown: the handlers look
things up through the signed-in account, so someone else's is simply not found (404).
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any
from urllib.parse import urlsplit

from starlette.requests import Request
from starlette.responses import RedirectResponse, Response

from web.forms import safe_next
from web.pages import message, query_string
from web.session import Visitor, visitor

Handler = Callable[..., Response]
ROLE_PAGES = {
    "seller": ("My apps", "sellers: it shows the apps a shop installed", "/my-apps"),
    "developer": ("Developer console", "developers: it shows the apps they list", "/developer"),
}


def for_role(role: str) -> Callable[[Handler], Handler]:
    """A page for `role` only: the handler is called with the visitor after the request."""

    def decorate(handler: Handler) -> Handler:
        @functools.wraps(handler)
        def guarded(request: Request, *args: Any) -> Response:
            who = visitor(request)
            if who is None:
                return sign_in_first(request)
            if who.role != role:
                return refused(request, who, role)
            return handler(request, who, *args)

        return guarded

    return decorate


for_sellers = for_role("seller")
for_developers = for_role("developer")


def sign_in_first(request: Request) -> Response:
    """To the sign-in page, and back here afterwards (for a form: the page it was on)."""
    back = request.url.path
    if request.method == "GET" and request.url.query:
        back += f"?{request.url.query}"
    elif request.method != "GET":
        referer = urlsplit(request.headers.get("referer", ""))
        if referer.netloc == request.url.netloc and referer.path:
            back = referer.path + (f"?{referer.query}" if referer.query else "")
    return RedirectResponse(f"/signin{query_string({'next': safe_next(back)})}", status_code=303)


def refused(request: Request, who: Visitor, role: str) -> Response:
    """403: this page is for the other role."""
    title, whose, _ = ROLE_PAGES[role]
    own, _, own_home = ROLE_PAGES[who.role]
    return message(
        request,
        403,
        f"{title} is not for this account",
        f"This page is for {whose}. You are signed in as a {who.role}; sign out and sign in "
        f"with a {role} account to open it.",
        **{own: own_home, "Back to the store": "/"},
    )
