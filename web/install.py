"""Installing from the store: `/apps/{slug}/install`.

From an app's page, Install now walks the shared steps (web/install_steps.py):
installation information → confirm → authorization conditions → Authorize. From the search
results (`?from=search`) it goes straight to the authorization conditions, with the
duration (Unlimited offered first, so nothing expires) and the contact on the same page
(the seed's tip). Every POST names its `step`; STEPS says what each one does.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any
from uuid import UUID

from starlette.requests import Request
from starlette.responses import RedirectResponse, Response

from api.tokens import issuer
from application import accounts, authorization, installations, listings
from application.store import Store
from domain.account import Account
from domain.app_listing import AppListing
from domain.errors import AuthorizationLapsed, DomainError, InstallationNotFound
from domain.installation import Installation
from projections import catalog_search
from web import install_steps as steps
from web.access import for_sellers
from web.forms import Form
from web.pages import message, read, render, settled
from web.session import Visitor

STORE_STEPS = [("info", "Installation information"), ("confirm", "Confirm"), ("conditions", "Authorize")]  # fmt: skip
LAPSED = (
    "The authorization conditions were open for more than 30 minutes. Check the "
    "information and confirm again."
)


@dataclass(frozen=True)
class StoreJourney:
    """Installing one app from the store's pages."""

    request: Request
    listing: AppListing
    asked: list[str] | None = None
    via: str = "store"

    @property
    def store(self) -> Store:
        store: Store = self.request.app.state.store
        return store

    @property
    def slug(self) -> str:
        return str(self.listing.details["slug"])

    def page(self, template: str, *, status: int = 200, **context: Any) -> Response:
        values: dict[str, Any] = {
            "app": self.listing.details,
            "action": f"/apps/{self.slug}/install",
            "carried": {},
            "steps": STORE_STEPS,
            "switch_account": False,
            "message": None,
        }
        values.update(context)
        return render(self.request, template, status=status, **values)

    def installed_already(self, seller: Account, live: Installation) -> Response:
        return self.page(
            "install/installed.html",
            status=409 if self.request.method == "POST" else 200,
            step=None,
            installation_id=str(live.id),
            expires_at=live.expires_at,
        )


def _journey(request: Request) -> StoreJourney | None:
    """The journey of the app named in the path, or None when no listed app has that name."""
    slug = request.path_params["slug"]
    row = read(request, lambda conn: catalog_search.find_app(conn, slug))
    if row is None:
        return None
    listing = listings.app(request.app.state.store, row.id)
    return StoreJourney(request, listing) if listing.is_listed else None


def _unknown(request: Request) -> Response:
    return message(request, 404, "Page not found", "No listed app has this address.")


@for_sellers
def install_page(request: Request, visitor: Visitor) -> Response:
    """GET /apps/{slug}/install: the first step (from the search results: authorization)."""
    journey = _journey(request)
    if journey is None:
        return _unknown(request)
    seller = accounts.account(journey.store, visitor.account_id)
    live = installations.live_installation(journey.store, seller.id, journey.listing.id)
    if live is not None:
        return journey.installed_already(seller, live)
    if request.query_params.get("from") == "search":
        return _show_quick(journey, seller, steps.first_values(journey, seller, "unlimited"))
    return steps.show_info(journey, seller, steps.first_values(journey, seller))


@for_sellers
def install_step(request: Request, visitor: Visitor, form: Form) -> Response:
    """POST /apps/{slug}/install: one step of the flow, named by the form's `step`."""
    journey = _journey(request)
    if journey is None:
        return _unknown(request)
    seller = accounts.account(journey.store, visitor.account_id)
    fields: dict[str, Any] = {
        name: form[name]
        for name in ("duration", "contact_email", "contact_phone", "installation_id", "decision")
    }
    fields["scopes"] = form.all("scopes")
    step = STEPS.get(form["step"], STEPS["edit"])
    return step(journey, seller, fields)


def _show_quick(
    journey: StoreJourney,
    seller: Account,
    values: dict[str, str],
    errors: dict[str, str] | None = None,
    status: int = 200,
) -> Response:
    """Straight to authorization: the conditions, with the duration and contact to give."""
    now = journey.store.clock.now()
    return journey.page(
        "install/conditions.html",
        status=status,
        step="conditions",
        quick=True,
        steps=[],
        installation_id="",
        scopes=steps.listing_conditions(journey.listing),
        duration=values["duration"],
        expires_at=None,
        durations=steps.durations(journey.listing, now),
        values=values,
        errors=errors or {},
        labels=steps.LABELS,
    )


def _quick(journey: StoreJourney, seller: Account, form: dict[str, Any]) -> Response:
    """Authorized from the quick page: install and authorize in one go."""
    values = steps.entered(form)
    checked, errors = steps.check(journey.listing, values)
    if errors:
        return _show_quick(journey, seller, values, errors, status=422)
    started = steps.start(journey, seller, checked)
    if not isinstance(started, Installation):
        return started
    return _authorize(journey, seller, started, steps.chosen(journey, form))


def _decide(journey: StoreJourney, seller: Account, form: dict[str, Any]) -> Response:
    """Authorize, or leave without authorizing (the pending installation is declined)."""
    store = journey.store
    try:
        installation = installations.own_installation(
            store, seller.id, UUID(form["installation_id"])
        )
    except (ValueError, InstallationNotFound):
        installation = None
    if installation is None or installation.app_id != journey.listing.id:
        return message(journey.request, 404, "Page not found", "This installation is unknown.")
    if form["decision"] != "allow":
        if installation.is_pending(store.clock.now()):
            installations.decline(store, seller.id, installation.id)
        return RedirectResponse(f"/apps/{journey.slug}", status_code=303)
    return _authorize(journey, seller, installation, steps.chosen(journey, form))


def _authorize(
    journey: StoreJourney, seller: Account, installation: Installation, chosen: list[str]
) -> Response:
    """Authorizes with the required scopes and the optional ones left ticked, then sends the
    seller on to the app with a one-time code for the developer (SPEC: in-store install)."""
    store = journey.store
    if installation.is_live(store.clock.now()):
        return journey.installed_already(seller, installation)
    values = {
        "duration": installation.duration.value,
        "contact_email": installation.contact_email,
        "contact_phone": installation.contact_phone,
    }
    required = journey.listing.scopes
    kept = [s for s in installation.scopes if s in required or s in chosen]
    try:
        authorized = authorization.authorize_in_store(
            store, seller.id, installation.id, issuer(journey.request), kept
        )
    except AuthorizationLapsed:
        return steps.show_info(journey, seller, values, status=409, message=LAPSED)
    except DomainError as error:
        return steps.show_info(journey, seller, values, status=409, message=error.detail)
    settled(journey.request, authorized.position)
    return RedirectResponse(authorized.redirect_url, status_code=303)


# The flow, step by step: what each POSTed `step` does.
STEPS: dict[str, Callable[[StoreJourney, Account, dict[str, Any]], Response]] = {
    "info": steps.info,
    "edit": steps.edit,
    "confirm": steps.confirm,
    "decide": _decide,
    "quick": _quick,
}
