"""App listings: list, change, delist an app; its OAuth client secret."""

from __future__ import annotations

import contextlib
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any
from uuid import UUID

from eventsourcing.persistence import IntegrityError

from application.accounts import require_role
from application.store import Outcome, Store
from domain import values as v
from domain.app_listing import AppListing, validate_listing
from domain.claims import SlugClaim, slug_claim_id
from domain.credentials import new_token, token_hash
from domain.errors import AppNotFound, SlugTaken


@dataclass(frozen=True)
class ListedApp(Outcome):
    """A listed app's OAuth credentials; the secret is shown this once."""

    client_id: str = ""
    client_secret: str = ""


def list_app(store: Store, developer_id: UUID, details: dict[str, Any]) -> ListedApp:
    """Lists a new app; returns its OAuth client_id and a client_secret shown only once."""
    require_role(store, developer_id, v.Role.DEVELOPER)
    fields = validate_listing(details, partial=False)
    secret = new_token("cs_")
    app = AppListing(
        developer_id=developer_id,
        details=fields,
        client_secret_hash=token_hash(secret),
        listed_at=store.clock.now(),
    )
    claim = _claim(store, fields["slug"], app.id)
    try:
        position = store.save(app, claim)
    except IntegrityError:
        raise SlugTaken(f"slug {fields['slug']!r} is taken") from None
    return ListedApp(app.id, position, app.client_id, secret)


def _claim(store: Store, slug: str, app_id: UUID) -> SlugClaim:
    """A claim of `slug` for the app: new, or a released one taken again; SlugTaken if held.

    Saved with the listing; a racing claimant collides on the claim's id or version."""
    claim = store.load(slug_claim_id(slug), SlugClaim)
    if claim is None:
        return SlugClaim(slug=slug, app_id=app_id)
    if claim.held:
        raise SlugTaken(f"slug {slug!r} is taken")
    claim.reclaim(app_id)
    return claim


def app(store: Store, app_id: UUID) -> AppListing:
    """The app with this id (listed or not), or AppNotFound."""
    found = store.load(app_id, AppListing)
    if found is None:
        raise AppNotFound(f"app {app_id} not found")
    return found


def own_app(store: Store, developer_id: UUID, app_id: UUID) -> AppListing:
    """The developer's own app; another developer's is reported as not found."""
    found = app(store, app_id)
    if found.developer_id != developer_id:
        raise AppNotFound(f"app {app_id} not found")
    return found


def update_app(store: Store, developer_id: UUID, app_id: UUID, changes: dict[str, Any]) -> Outcome:
    """Changes some listing fields (PATCH semantics); a new slug must be free."""
    fields = validate_listing(changes, partial=True)

    def attempt() -> Outcome:
        listing = own_app(store, developer_id, app_id)
        claims: list[SlugClaim] = []
        new_slug = fields.get("slug")
        if new_slug is not None and new_slug != listing.details["slug"]:
            claims.append(_claim(store, new_slug, listing.id))
            old = store.load(slug_claim_id(listing.details["slug"]), SlugClaim)
            if old is not None and old.held and old.app_id == listing.id:
                old.release()  # the old slug is free again, in the same transaction
                claims.append(old)
        listing.update(fields, store.clock.now())
        return Outcome(listing.id, store.save(listing, *claims))

    return store.retrying(attempt)


def delist_app(store: Store, developer_id: UUID, app_id: UUID) -> Outcome:
    """Hides the app and stops new installs; existing installations keep working."""

    def attempt() -> Outcome:
        listing = own_app(store, developer_id, app_id)
        listing.delist(store.clock.now())
        return Outcome(listing.id, store.save(listing))

    return store.retrying(attempt)


def rotate_client_secret(store: Store, developer_id: UUID, app_id: UUID) -> ListedApp:
    """Issues a new client secret (shown once); the old one stops working."""
    secret = new_token("cs_")

    def attempt() -> ListedApp:
        listing = own_app(store, developer_id, app_id)
        listing.rotate_client_secret(token_hash(secret), store.clock.now())
        return ListedApp(listing.id, store.save(listing), listing.client_id, secret)

    return store.retrying(attempt)


def import_apps(store: Store, apps: Sequence[tuple[UUID, dict[str, Any]]]) -> list[UUID]:
    """Lists many apps in one transaction (a bulk import): the same events as `list_app`
    for each. When a slug is taken, the others are listed one by one and that one is
    skipped. Returns the ids listed; their client secrets are never shown."""

    def pairs() -> list[tuple[AppListing, SlugClaim]]:
        built = []
        for developer_id, details in apps:
            fields = validate_listing(details, partial=False)
            app = AppListing(
                developer_id=developer_id,
                details=fields,
                client_secret_hash=token_hash(new_token("cs_")),
                listed_at=store.clock.now(),
            )
            built.append((app, SlugClaim(slug=fields["slug"], app_id=app.id)))
        return built

    batch = pairs()
    try:
        store.save(*(aggregate for pair in batch for aggregate in pair))
        return [app.id for app, _ in batch]
    except IntegrityError:
        # The failed save consumed the pending events: build them again, one by one.
        listed = []
        for app, claim in pairs():
            with contextlib.suppress(IntegrityError):
                store.save(app, claim)
                listed.append(app.id)
        return listed
