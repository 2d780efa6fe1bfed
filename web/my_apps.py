"""My apps and incidents: a seller's installations by status, one installation with its
incidents and the scopes it was granted, Renew (choose a duration, see the new expiry,
confirm), Cancel (behind a page that says what it does), Take back one optional scope
(behind a short confirmation), Acknowledge and Resolve an incident.

Lists read the my-apps and incidents projections; commands go through
application/installations.py. Everything is looked up through the signed-in seller, so
another seller's installation or incident is not found (404).
"""

from __future__ import annotations

from typing import Any
from uuid import UUID

from starlette.requests import Request
from starlette.responses import RedirectResponse, Response

from application import installations, listings
from domain import consent
from domain import values as v
from domain.errors import DomainError, InvalidInput
from projections import incidents, my_apps, notifications
from web.access import for_sellers
from web.forms import Form, field_errors
from web.pages import DURATION_LABELS, message, read, render, settled
from web.session import Visitor

PAGE_SIZE = 20
INCIDENTS_SHOWN = 50
FILTERS = {
    "": "All",
    "active": "Active",
    "expiring": "Expiring within 14 days",
    "expired": "Expired",
    "cancelled": "Cancelled",
}
INCIDENT_FILTERS = {"": "All", "open": "Open", "acknowledged": "Acknowledged", "resolved": "Resolved"}  # fmt: skip
RENEWABLE = ("active", "expiring", "expired")
DONE = {
    "installed": "{app} is installed and active.",
    "renewed": "{app} is renewed.",
    "cancelled": "{app} is cancelled: it no longer has access to your shop.",
    "acknowledged": "The incident is acknowledged. It stays open until it is resolved.",
    "resolved": "The incident is marked resolved.",
    "scope_revoked": "{app} no longer has this access: {scope}.",
}
# Scopes can be taken back from an installation in these states (Installation.revoke_scope).
REVOCABLE = ("active", "expiring", "expired")
# The newest unread notifications shown above the list (all of them: /notifications).
NOTIFICATIONS_SHOWN = 3
ACTIONS = {
    "acknowledge": (installations.acknowledge_incident, "acknowledged"),
    "resolve": (installations.resolve_incident, "resolved"),
}


def _int(value: str | None, default: int = 1) -> int:
    try:
        return max(1, min(10_000, int(value or default)))
    except ValueError:
        return default


@for_sellers
def my_apps_page(request: Request, seller: Visitor) -> Response:
    """GET /my-apps: my installations, filtered by status, soonest expiry first."""
    status = request.query_params.get("status", "")
    status = status if status in FILTERS else ""
    page = _int(request.query_params.get("page"))
    now = request.app.state.store.clock.now()

    def query(conn: Any) -> tuple[list[dict[str, Any]], int, dict[str, int], Any]:
        items, total = my_apps.my_apps(
            conn, seller.account_id, now, status=status or None, page=page, page_size=PAGE_SIZE
        )
        news = notifications.seller_notifications(
            conn, seller.account_id, unread=True, page_size=NOTIFICATIONS_SHOWN
        )
        return items, total, my_apps.status_counts(conn, seller.account_id, now), news

    items, total, counts, (news, _, unread) = read(request, query)
    counts[""] = sum(n for s, n in counts.items() if s != "declined")
    return render(
        request,
        "my_apps/list.html",
        items=items,
        total=total,
        shown=status,
        filters=FILTERS,
        counts=counts,
        page=page,
        pages=max(1, -(-total // PAGE_SIZE)),
        renewable=RENEWABLE,
        news=news,
        unread=unread,
    )


def _installation(request: Request, seller: Visitor) -> Any | None:
    """The seller's installation named in the path (a my-apps row), or None."""
    try:
        installation_id = UUID(request.path_params["id"])
    except ValueError:
        return None
    now = request.app.state.store.clock.now()
    row = read(request, lambda conn: my_apps.installation_of(conn, installation_id, now))
    return row if row is not None and row.seller_id == seller.account_id else None


def _not_found(request: Request) -> Response:
    return message(
        request, 404, "Page not found", "None of your apps is at this address.", **{"My apps": "/my-apps"}
    )  # fmt: skip


@for_sellers
def installation_page(request: Request, seller: Visitor) -> Response:
    """GET /my-apps/{id}: one installation, what it may do, and its incidents."""
    row = _installation(request, seller)
    if row is None:
        return _not_found(request)
    shown = request.query_params.get("incidents", "")
    shown = shown if shown in INCIDENT_FILTERS else ""
    found, total = read(
        request,
        lambda conn: incidents.seller_incidents(
            conn,
            seller.account_id,
            installation_id=row.id,
            status=shown or None,
            page_size=INCIDENTS_SHOWN,
        ),
    )
    done = DONE.get(request.query_params.get("done", ""))
    now = request.app.state.store.clock.now()
    revoked = request.query_params.get("scope", "")
    return render(
        request,
        "my_apps/app.html",
        row=row,
        days_left=v.days_left(row.expires_at, now),
        granted=_granted(request, row),
        incidents=found,
        incidents_total=total,
        shown=shown,
        incident_filters=INCIDENT_FILTERS,
        notice=done.format(app=row.name, scope=v.SCOPES.get(revoked, revoked)) if done else None,
        renewable=RENEWABLE,
    )


# --- the scopes granted, and taking one back -------------------------------------------------
def _granted(request: Request, row: Any) -> list[dict[str, Any]]:
    """Each scope the installation has, in plain words, and whether the seller may take it
    back (`kept`: why not, when the app requires it or it is the app's last access)."""
    revocable = row.effective_status in REVOCABLE
    required = listings.app(request.app.state.store, row.app_id).scopes if revocable else []
    granted = []
    for scope in row.scopes:
        kept = None
        if revocable:
            try:
                consent.check_revocable(scope, row.scopes, required)
            except DomainError:
                kept = "required" if scope in required else "last"
        granted.append(
            {
                "scope": scope,
                "words": v.SCOPES.get(scope, scope),
                "access": v.scope_access(scope),
                "revocable": revocable and kept is None,
                "kept": kept,
            }
        )
    return granted


def _granted_scope(request: Request, row: Any) -> str | None:
    """The scope named in the path, if the installation has it."""
    scope = request.path_params["scope"]
    return scope if scope in row.scopes else None


@for_sellers
def revoke_scope_page(request: Request, seller: Visitor) -> Response:
    """GET /my-apps/{id}/scopes/{scope}/revoke: what taking the scope back does, first."""
    row = _installation(request, seller)
    scope = None if row is None else _granted_scope(request, row)
    if row is None or scope is None:
        return _not_found(request)
    return render(request, "my_apps/revoke_scope.html", row=row, scope=scope, words=v.SCOPES[scope])


@for_sellers
def revoke_scope(request: Request, seller: Visitor, form: Form) -> Response:
    """POST /my-apps/{id}/scopes/{scope}/revoke: the app loses the scope at once."""
    row = _installation(request, seller)
    scope = None if row is None else _granted_scope(request, row)
    if row is None or scope is None:
        return _not_found(request)
    try:
        outcome = installations.revoke_scope(
            request.app.state.store, seller.account_id, row.id, scope
        )
    except DomainError as error:
        back = {f"Back to {row.name}": f"/my-apps/{row.id}#access"}
        title = f"{row.name} keeps this access"
        status = 422 if isinstance(error, InvalidInput) else 409
        return message(request, status, title, error.detail, **back)
    settled(request, outcome.position)
    done = f"/my-apps/{row.id}?done=scope_revoked&scope={scope}#access"
    return RedirectResponse(done, status_code=303)


# --- renew ---------------------------------------------------------------------------------
def _renewal_choices(request: Request, row: Any) -> list[tuple[str, str, str]]:
    """(duration, label, new expiry) for each duration the app offers."""
    offered = listings.app(request.app.state.store, row.app_id).durations
    now = request.app.state.store.clock.now()
    choices = []
    for duration in offered:
        expiry = v.Duration(duration).renewal_expiry(row.expires_at, now)
        note = "never expires" if expiry is None else f"until {expiry:%d %B %Y}"
        choices.append((duration, DURATION_LABELS[duration], note))
    return choices


def _cannot_renew(request: Request, row: Any) -> Response | None:
    if row.effective_status in RENEWABLE and row.expires_at is not None:
        return None
    why = (
        "it has no end date"
        if row.effective_status in RENEWABLE
        else "it is cancelled; install it again from the store"
    )
    back = {f"Back to {row.name}": f"/my-apps/{row.id}"}
    return message(request, 409, f"{row.name} cannot be renewed", f"It cannot: {why}.", **back)


def _renew_form(
    request: Request, row: Any, chosen: str, errors: dict[str, str], status: int = 200
) -> Response:
    return render(
        request,
        "my_apps/renew.html",
        status=status,
        row=row,
        choices=_renewal_choices(request, row),
        chosen=chosen,
        errors=errors,
    )


@for_sellers
def renew_page(request: Request, seller: Visitor) -> Response:
    """GET /my-apps/{id}/renew: choose a duration; each shows the expiry it would give."""
    row = _installation(request, seller)
    if row is None:
        return _not_found(request)
    return _cannot_renew(request, row) or _renew_form(request, row, row.duration, {})


@for_sellers
def renew(request: Request, seller: Visitor, form: Form) -> Response:
    """POST /my-apps/{id}/renew: `review` shows the new expiry, `renew` renews."""
    row = _installation(request, seller)
    if row is None:
        return _not_found(request)
    refusal = _cannot_renew(request, row)
    if refusal is not None:
        return refusal
    chosen = form["duration"]
    if chosen not in {value for value, _, _ in _renewal_choices(request, row)}:
        errors = {"duration": "Choose one of the durations this app offers."}
        return _renew_form(request, row, chosen, errors, status=422)
    store = request.app.state.store
    if form["step"] != "renew":
        expiry = v.Duration(chosen).renewal_expiry(row.expires_at, store.clock.now())
        return render(
            request, "my_apps/renew_confirm.html", row=row, chosen=chosen, new_expiry=expiry
        )
    try:
        outcome = installations.renew(store, seller.account_id, row.id, chosen)
    except DomainError as error:
        errors = field_errors(error, {"duration": "Duration"}, default="duration")
        return _renew_form(request, row, chosen, errors, status=409)
    settled(request, outcome.position)
    return RedirectResponse(f"/my-apps/{row.id}?done=renewed", status_code=303)


# --- cancel --------------------------------------------------------------------------------
@for_sellers
def cancel_page(request: Request, seller: Visitor) -> Response:
    """GET /my-apps/{id}/cancel: what cancelling does, before it is done."""
    row = _installation(request, seller)
    if row is None:
        return _not_found(request)
    return render(request, "my_apps/cancel.html", row=row)


@for_sellers
def cancel(request: Request, seller: Visitor, form: Form) -> Response:
    """POST /my-apps/{id}/cancel: access stops at once; final."""
    row = _installation(request, seller)
    if row is None:
        return _not_found(request)
    try:
        outcome = installations.cancel(request.app.state.store, seller.account_id, row.id)
    except DomainError as error:
        back = {f"Back to {row.name}": f"/my-apps/{row.id}"}
        return message(request, 409, f"{row.name} cannot be cancelled", error.detail, **back)
    settled(request, outcome.position)
    return RedirectResponse(f"/my-apps/{row.id}?done=cancelled", status_code=303)


# --- incidents -----------------------------------------------------------------------------
@for_sellers
def incident_action(request: Request, seller: Visitor, form: Form) -> Response:
    """POST /my-apps/{id}/incidents/{incident}/{acknowledge|resolve}."""
    row = _installation(request, seller)
    action = ACTIONS.get(request.path_params["action"])
    try:
        incident_id = UUID(request.path_params["incident"])
    except ValueError:
        incident_id = None
    incident = None
    if row is not None and incident_id is not None:
        incident = read(
            request, lambda conn: incidents.seller_incident(conn, seller.account_id, incident_id)
        )
    if row is None or action is None or incident is None or incident.installation_id != row.id:
        return _not_found(request)
    command, done = action
    back = f"/my-apps/{row.id}"
    try:
        outcome = command(request.app.state.store, seller.account_id, row.id, incident.id)
    except DomainError as error:
        title = f"This incident is already {incident.status}"
        return message(request, 409, title, error.detail, **{f"Back to {row.name}": back})
    settled(request, outcome.position)
    return RedirectResponse(f"{back}?done={done}#incident-{incident.id}", status_code=303)
