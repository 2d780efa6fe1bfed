"""The seller's authorization record of one installation: who authorized what, when, for how
long, and what the app's tokens did. Read from the event history itself, like audits."""

from __future__ import annotations

from datetime import datetime
from typing import Any
from uuid import UUID

from application import accounts, installations, listings
from application.store import Store
from domain import values as v
from domain.oauth import InstallationGrants, TokenGrant, installation_grants_id
from domain.values import InstallationStatus

# The events that record the seller's consent, and the scopes each consented to.
_CONSENTS = ("Authorized", "ScopesGranted")

_ACTIVITY: dict[type[Any], str] = {
    TokenGrant.Granted: "issued",
    TokenGrant.Refreshed: "refreshed",
    TokenGrant.AccessTokenRevoked: "revoked",
    TokenGrant.Revoked: "revoked",
}


def authorization_record(store: Store, seller_id: UUID, installation_id: UUID) -> dict[str, Any]:
    """Who authorized what, when, for how long, and the tokens' activity, from the events."""
    installation = installations.own_installation(store, seller_id, installation_id)
    app = listings.app(store, installation.app_id)
    seller = accounts.account(store, installation.seller_id)
    now = store.clock.now()
    lifecycle = []
    for e in store.events_of(installation.id):
        name = type(e).__name__
        if name.startswith("Incident"):
            continue
        attributes = vars(e)
        entry: dict[str, Any] = {"event": name, "at": _iso(_first_time(attributes))}
        for key in ("duration", "expires_at", "reason", "scope"):
            if key in attributes:
                entry[key] = _iso(attributes[key])
        if name in _CONSENTS and attributes.get("scopes") is not None:
            entry["scopes"] = list(attributes["scopes"])
        if "by" in attributes:
            entry["by"] = str(attributes["by"])
        lifecycle.append(entry)
    grants = []
    activity: list[dict[str, Any]] = []
    ledger = store.load(installation_grants_id(installation.id), InstallationGrants)
    for grant_id in ledger.grant_ids if ledger else []:
        grant = store.load(grant_id, TokenGrant)
        if grant is None:
            continue
        grants.append(
            {
                "grant_id": str(grant.id),
                "granted_at": _iso(grant.granted_at),
                "scopes": grant.scopes,
                "refreshes": grant.generation - 1,
                "revoked_at": _iso(grant.revoked_at),
                "revoke_reason": grant.revoke_reason,
            }
        )
        for e in store.events_of(grant_id):
            action = _ACTIVITY.get(type(e))
            if action is None:
                continue
            item: dict[str, Any] = {
                "action": action,
                "at": _iso(_first_time(vars(e))),
                "grant_id": str(grant_id),
            }
            if isinstance(e, TokenGrant.Revoked):
                item["what"] = "all tokens of this authorization"
                item["reason"] = e.reason
            elif isinstance(e, TokenGrant.AccessTokenRevoked):
                item["what"] = "one access token"
            activity.append(item)
    if installation.status is InstallationStatus.CANCELLED and installation.ended_at:
        activity.append(
            {
                "action": "revoked",
                "at": _iso(installation.ended_at),
                "what": "all tokens (cancelled)",
            }
        )
    activity.sort(key=lambda item: item["at"] or "")
    return {
        "installation_id": str(installation.id),
        "app": {"id": str(app.id), "slug": app.details["slug"], "name": app.details["name"]},
        "authorized_by": {
            "seller_id": str(seller.id),
            "name": seller.name,
            "email": seller.email,
            "account_type": seller.account_type,
        },
        "via": installation.via,
        "status": installation.effective_status(now).value,
        "duration": installation.duration.value,
        "scopes": [{"scope": s, "description": v.SCOPES[s]} for s in installation.scopes],
        "installed_at": _iso(installation.installed_at),
        "authorized_at": _iso(installation.authorized_at),
        "expires_at": _iso(installation.expires_at),
        "ended_at": _iso(installation.ended_at),
        "end_reason": installation.end_reason,
        "contact_email": installation.contact_email,
        "contact_phone": installation.contact_phone,
        "history": lifecycle,
        "grants": grants,
        "token_activity": activity,
    }


def _first_time(attributes: dict[str, Any]) -> Any:
    """The event's own time: its first `…_at` attribute."""
    return next((val for key, val in attributes.items() if key.endswith("_at")), None)


def _iso(value: object) -> Any:
    return value.isoformat() if isinstance(value, datetime) else value
