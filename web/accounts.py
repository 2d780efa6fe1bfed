"""Sign in, sign up (seller with account type, or developer) and sign out.

The only module of the pages that runs account commands on the store.
"""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import RedirectResponse, Response

from api.auth import client_address
from application import accounts
from application.store import Store
from domain import values as v
from domain.credentials import MIN_PASSWORD_LENGTH
from domain.errors import DomainError, EmailTaken, InvalidCredentials, Throttled
from web import csrf, session
from web.forms import Form, field_errors, safe_next
from web.pages import render

SIGN_UP_LABELS = {
    "role": "Account",
    "account_type": "Account type",
    "name": "Shop or company name",
    "email": "E-mail",
    "password": "Password",
}
ACCOUNT_TYPES = {
    v.AccountType.LOCAL.value: "Local seller",
    v.AccountType.CROSS_BORDER.value: "Cross-border seller",
}


def _store(request: Request) -> Store:
    store: Store = request.app.state.store
    return store


def _signed_in(request: Request, token: str, next_url: str) -> Response:
    """Off to `next_url` with the new session; a session this browser had is ended."""
    old = session.visitor(request)
    if old is not None:
        accounts.end_session(_store(request), old.token)
    response = RedirectResponse(next_url, status_code=303)
    session.start(request, response, token)
    csrf.rotate(request)  # forms shown before the log-in stop working
    csrf.remember(request, response)
    return response


def sign_in_page(request: Request) -> Response:
    """GET /signin."""
    return _sign_in_form(request, {}, {}, safe_next(request.query_params.get("next")))


def _sign_in_form(
    request: Request,
    values: dict[str, str],
    errors: dict[str, str],
    next_url: str,
    status: int = 200,
) -> Response:
    return render(
        request, "signin.html", status=status, values=values, errors=errors, next_url=next_url
    )


def sign_in(request: Request, form: Form) -> Response:
    """POST /signin: e-mail and password start a session."""
    next_url = safe_next(form["next"])
    values = {"email": form["email"]}
    errors = {}
    if not form["email"]:
        errors["email"] = "Enter your e-mail address."
    if not form.raw("password"):
        errors["password"] = "Enter your password."
    if errors:
        return _sign_in_form(request, values, errors, next_url, status=422)
    try:
        started = accounts.start_session(
            _store(request), form["email"], form.raw("password"), client_address(request)
        )
    except InvalidCredentials:
        errors = {"password": "The e-mail address or password is wrong."}
        return _sign_in_form(request, values, errors, next_url, status=401)
    except Throttled as error:
        errors = {"password": "Too many failed attempts. Wait a few minutes and try again."}
        response = _sign_in_form(request, values, errors, next_url, status=429)
        response.headers["Retry-After"] = str(int(error.retry_after))
        return response
    return _signed_in(request, started.token, next_url)


def sign_up_page(request: Request) -> Response:
    """GET /signup (`?role=developer` to start as a developer)."""
    role = request.query_params.get("role")
    values = {
        "role": role if role in ("seller", "developer") else "seller",
        "account_type": v.AccountType.LOCAL.value,
    }
    return _sign_up_form(request, values, {}, safe_next(request.query_params.get("next")))


def _sign_up_form(
    request: Request,
    values: dict[str, str],
    errors: dict[str, str],
    next_url: str,
    status: int = 200,
) -> Response:
    return render(
        request,
        "signup.html",
        status=status,
        values=values,
        errors=errors,
        labels=SIGN_UP_LABELS,
        account_types=ACCOUNT_TYPES,
        min_password=MIN_PASSWORD_LENGTH,
        next_url=next_url,
    )


def sign_up(request: Request, form: Form) -> Response:
    """POST /signup: registers the account and signs it in."""
    next_url = safe_next(form["next"])
    values = {name: form[name] for name in ("role", "account_type", "name", "email")}
    store = _store(request)
    seller = values["role"] == v.Role.SELLER.value
    try:
        accounts.register_account(
            store,
            values["role"],
            values["email"],
            form.raw("password"),
            values["name"],
            (values["account_type"] or None) if seller else None,
        )
        started = accounts.start_session(store, values["email"], form.raw("password"))
    except EmailTaken:
        errors = {"email": "This e-mail address already has an account. Sign in instead."}
        return _sign_up_form(request, values, errors, next_url, status=409)
    except DomainError as error:
        errors = field_errors(error, SIGN_UP_LABELS, default="email")
        return _sign_up_form(request, values, errors, next_url, status=422)
    return _signed_in(request, started.token, next_url)


def sign_out(request: Request, form: Form) -> Response:
    """POST /signout: ends the session (its token stops working) and forgets the cookie."""
    current = session.visitor(request)
    if current is not None:
        accounts.end_session(_store(request), current.token)
    response = RedirectResponse("/", status_code=303)
    session.forget(request, response)
    csrf.rotate(request)
    csrf.remember(request, response)
    return response
