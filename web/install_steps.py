"""The steps both ways of installing share: installation information → confirm → the
authorization conditions.

A seller installs from the store's pages (web/install.py) or through a developer's
authorization link (web/authorize.py). Both walk the same pages, rendered from the same
templates (templates/install/), with the same checks and the same commands. A `Journey` is
what differs: where the forms post and what they carry, which scopes are asked for, and
what happens when the app is already installed.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal, Protocol

from starlette.requests import Request
from starlette.responses import Response

from application import installations
from application.store import Store
from domain import values as v
from domain.account import Account
from domain.app_listing import AppListing
from domain.errors import DomainError, DuplicateInstallation, InvalidInput
from domain.installation import Installation
from projections import my_apps
from web.forms import field_errors
from web.pages import DURATION_LABELS, read

FIELDS = ("duration", "contact_email", "contact_phone")
LABELS = {
    "duration": "Authorization duration",
    "contact_email": "Contact e-mail",
    "contact_phone": "Contact phone",
}
MISSING = {
    "duration": "Choose how long the app may access your shop.",
    "contact_email": "Enter an e-mail address the developer can reach you at.",
    "contact_phone": "Enter a phone number with its country code, such as +14155550100.",
}


class Journey(Protocol):
    """One way of installing, as the shared steps need it."""

    @property
    def request(self) -> Request: ...

    @property
    def store(self) -> Store: ...

    @property
    def listing(self) -> AppListing: ...

    @property
    def asked(self) -> list[str] | None:
        """The scopes asked for (None: every scope of the listing)."""

    @property
    def via(self) -> str: ...

    def page(self, template: str, *, status: int = 200, **context: Any) -> Response:
        """A page of this journey: its layout, form target and hidden fields."""

    def installed_already(self, seller: Account, live: Installation) -> Response:
        """What the seller sees when the app is already active in their shop."""


@dataclass(frozen=True)
class ScopeRow:
    """One line of the authorization conditions: what the app may do, in plain words."""

    scope: str
    description: str
    access: Literal["read", "change"]
    # An optional scope the seller may leave out: a (ticked) checkbox on the conditions page.
    optional: bool = False


@dataclass(frozen=True)
class DurationChoice:
    """A duration the seller may pick, with the expiry it would give."""

    value: str
    label: str
    expires_at: datetime | None


def entered(form: Mapping[str, Any]) -> dict[str, str]:
    """The installation information as the seller typed it."""
    return {name: str(form.get(name) or "").strip() for name in FIELDS}


def check(listing: AppListing, values: dict[str, str]) -> tuple[dict[str, str], dict[str, str]]:
    """The installation information made canonical, and what is wrong with it, by field."""

    def offered(value: str) -> str:
        duration = v.Duration.parse(value).value
        if duration not in listing.durations:
            raise InvalidInput("duration", "this app does not offer this duration")
        return duration

    checks: dict[str, Callable[[str], str]] = {
        "duration": offered,
        "contact_email": lambda value: v.email_address(value, "contact_email"),
        "contact_phone": lambda value: v.phone_number(value, "contact_phone"),
    }
    checked: dict[str, str] = {}
    errors: dict[str, str] = {}
    for name, parse in checks.items():
        if not values.get(name):
            errors[name] = MISSING[name]
            continue
        try:
            checked[name] = parse(values[name])
        except InvalidInput as error:
            errors.update(field_errors(error, LABELS, default=name))
    return checked, errors


def durations(listing: AppListing, now: datetime) -> list[DurationChoice]:
    """The durations the app offers, each with the expiry it gives if authorized now."""
    return [
        DurationChoice(d, DURATION_LABELS[d], v.Duration(d).expiry_from(now))
        for d in listing.durations
    ]


def first_values(journey: Journey, seller: Account, duration: str | None = None) -> dict[str, str]:
    """What the information form starts with: the contact the seller gave last time."""
    last = read(journey.request, lambda conn: my_apps.last_contact(conn, seller.id))
    email, phone = last or (seller.email, "")
    offered = journey.listing.durations
    return {
        "duration": duration if duration in offered else offered[0],
        "contact_email": email,
        "contact_phone": phone,
    }


# --- the steps ---------------------------------------------------------------------------
def show_info(
    journey: Journey,
    seller: Account,
    values: dict[str, str],
    errors: dict[str, str] | None = None,
    *,
    status: int = 200,
    message: str | None = None,
) -> Response:
    """Installation information: duration, contact e-mail and phone."""
    return journey.page(
        "install/info.html",
        status=status,
        step="info",
        seller=seller,
        values=values,
        errors=errors or {},
        labels=LABELS,
        durations=durations(journey.listing, journey.store.clock.now()),
        message=message,
    )


def info(journey: Journey, seller: Account, form: Mapping[str, Any]) -> Response:
    """The information was sent: back with errors by the field, or on to confirm it."""
    values = entered(form)
    checked, errors = check(journey.listing, values)
    if errors:
        return show_info(journey, seller, values, errors, status=422)
    expires = v.Duration(checked["duration"]).expiry_from(journey.store.clock.now())
    return journey.page("install/confirm.html", step="confirm", values=checked, expires_at=expires)


def edit(journey: Journey, seller: Account, form: Mapping[str, Any]) -> Response:
    """Back from confirm to change the information."""
    return show_info(journey, seller, entered(form))


def confirm(journey: Journey, seller: Account, form: Mapping[str, Any]) -> Response:
    """Confirmed: install (pending authorization), then show the conditions."""
    values = entered(form)
    checked, errors = check(journey.listing, values)
    if errors:
        return show_info(journey, seller, values, errors, status=422)
    started = start(journey, seller, checked)
    if isinstance(started, Installation):
        return show_conditions(journey, started)
    return started


def start(journey: Journey, seller: Account, checked: dict[str, str]) -> Installation | Response:
    """Installs the app pending authorization, or the page saying why it cannot."""
    store = journey.store
    try:
        outcome = installations.install(
            store,
            seller.id,
            journey.listing.id,
            checked["duration"],
            checked["contact_email"],
            checked["contact_phone"],
            asked=journey.asked,
            via=journey.via,
        )
    except DuplicateInstallation as error:
        live = installations.live_installation(store, seller.id, journey.listing.id)
        if live is not None:
            return journey.installed_already(seller, live)
        return show_info(journey, seller, checked, status=409, message=error.detail)
    except DomainError as error:
        errors = field_errors(error, LABELS, default="duration")
        return show_info(journey, seller, checked, errors, status=409)
    return installations.installation(store, outcome.id)


def show_conditions(
    journey: Journey, installation: Installation, *, status: int = 200, **context: Any
) -> Response:
    """The authorization conditions of an installation: each scope in plain words, optional
    ones as (ticked) checkboxes, how long.

    A live installation asked for scopes it does not grant yet (a link asking for more)
    shows only those (`more`); asked for nothing new, it shows what it keeps, with nothing
    to choose.
    """
    now = journey.store.clock.now()
    conditions = installation.conditions(now)
    listing = journey.listing
    if installation.is_live(now):
        expires = installation.expires_at
        new = [s for s in journey.asked or [] if s not in installation.scopes]
        shown = new or [
            s for s in installation.scopes if journey.asked is None or s in journey.asked
        ]
        rows = scope_rows(listing, shown, choosable=bool(new))
        context.setdefault("more", bool(new))
    else:
        expires = conditions.expires_at_if_authorized_now
        shown = [g.scope for g in conditions.scopes]
        rows = scope_rows(listing, shown, choosable=True)
    return journey.page(
        "install/conditions.html",
        status=status,
        step="conditions",
        installation_id=str(installation.id),
        scopes=rows,
        duration=installation.duration.value,
        expires_at=expires,
        **context,
    )


def chosen(journey: Journey, form: Mapping[str, Any]) -> list[str]:
    """The optional scopes the seller left ticked on the conditions page."""
    ticked = form.get("scopes") or []
    return [s for s in ticked if s in journey.listing.optional_scopes]


def listing_conditions(listing: AppListing) -> list[ScopeRow]:
    """The scopes of an app not installed yet, as its conditions will list them."""
    return scope_rows(listing, listing.asked_scopes, choosable=True)


def scope_rows(listing: AppListing, scopes: list[str], *, choosable: bool) -> list[ScopeRow]:
    """The lines of the conditions; with `choosable`, the listing's optional scopes are."""
    return [
        ScopeRow(s, v.SCOPES[s], v.scope_access(s), choosable and s in listing.optional_scopes)
        for s in scopes
    ]
