"""AppListing: an app a developer lists in the store, with the OAuth client it owns."""

from __future__ import annotations

from datetime import datetime
from typing import Any
from uuid import UUID

from eventsourcing.domain import Aggregate, event

from domain import values as v
from domain.errors import AppDelisted, InvalidInput

# Fields a developer sets on a listing, in the order the detail page shows them.
LISTING_FIELDS: tuple[str, ...] = (
    "name",
    "slug",
    "tagline",
    "description",
    "benefits",
    "categories",
    "platforms",
    "media",
    "compatibility",
    "partner_url",
    "faqs",
    "contact",
    "scopes",
    "optional_scopes",
    "redirect_uris",
    "durations",
)


class AppListing(Aggregate):
    """A listed app. `details` holds the validated listing fields (see LISTING_FIELDS)."""

    class Listed(Aggregate.Created):
        developer_id: UUID
        details: dict[str, Any]
        client_secret_hash: str
        listed_at: datetime

    class Updated(Aggregate.Event):
        changes: dict[str, Any]
        updated_at: datetime

    class Delisted(Aggregate.Event):
        delisted_at: datetime

    class ClientSecretRotated(Aggregate.Event):
        client_secret_hash: str
        rotated_at: datetime

    @event(Listed)
    def __init__(
        self,
        developer_id: UUID,
        details: dict[str, Any],
        client_secret_hash: str,
        listed_at: datetime,
    ) -> None:
        self.developer_id = developer_id
        self.details = details
        self.client_secret_hash = client_secret_hash
        self.listed_at = listed_at
        self.updated_at = listed_at
        self.delisted_at: datetime | None = None

    @property
    def is_listed(self) -> bool:
        return self.delisted_at is None

    @property
    def client_id(self) -> str:
        return client_id_for(self.id)

    @property
    def scopes(self) -> list[str]:
        """The scopes the app requires: a seller cannot leave them out or revoke them."""
        return list(self.details["scopes"])

    @property
    def optional_scopes(self) -> list[str]:
        """Scopes the app asks for that a seller may leave out or revoke later."""
        return list(self.details.get("optional_scopes", []))

    @property
    def asked_scopes(self) -> list[str]:
        """Every scope the app asks for, required then optional."""
        return [*self.scopes, *self.optional_scopes]

    @property
    def durations(self) -> list[str]:
        return list(self.details["durations"])

    def update(self, changes: dict[str, Any], now: datetime) -> None:
        """Applies already validated partial changes to a listed app."""
        if not self.is_listed:
            raise AppDelisted(f"app {self.id} is delisted and cannot be changed")
        changed = {k: val for k, val in changes.items() if self.details.get(k) != val}
        _check_disjoint_scopes({**self.details, **changed})
        if changed:
            self._updated(changed, now)

    @event(Updated)
    def _updated(self, changes: dict[str, Any], updated_at: datetime) -> None:
        self.details = {**self.details, **changes}
        self.updated_at = updated_at

    def delist(self, now: datetime) -> None:
        """Hides the app from the catalog and stops new installs (idempotent)."""
        if self.is_listed:
            self._delisted(now)

    @event(Delisted)
    def _delisted(self, delisted_at: datetime) -> None:
        self.delisted_at = delisted_at

    @event(ClientSecretRotated)
    def rotate_client_secret(self, client_secret_hash: str, rotated_at: datetime) -> None:
        """Replaces the OAuth client secret (the old one stops working)."""
        self.client_secret_hash = client_secret_hash


def client_id_for(app_id: UUID) -> str:
    """The public OAuth client_id of an app."""
    return f"app_{app_id.hex}"


def app_id_from_client_id(client_id: str) -> UUID | None:
    """The app id a client_id names, or None if it is not one of ours."""
    if not client_id.startswith("app_") or len(client_id) != 36:
        return None
    try:
        return UUID(hex=client_id[4:])
    except ValueError:
        return None


def validate_listing(data: dict[str, Any], *, partial: bool) -> dict[str, Any]:
    """Checks and normalises listing fields; raises a named InvalidInput naming the field.

    With `partial`, only the fields present are checked (PATCH); otherwise every required
    field must be there (POST).
    """
    unknown = sorted(set(data) - set(LISTING_FIELDS))
    if unknown:
        raise InvalidInput(unknown[0], "is not a listing field")
    out: dict[str, Any] = {}

    def present(key: str) -> bool:
        return key in data and (data[key] is not None or not partial)

    if present("name") or not partial:
        out["name"] = v.text(data.get("name"), "name", max_length=80)
    if present("slug"):
        out["slug"] = v.slug(data["slug"])
    elif not partial:
        out["slug"] = v.slugify(out["name"])
    if present("tagline") or not partial:
        out["tagline"] = v.text(data.get("tagline"), "tagline", max_length=160)
    if present("description") or not partial:
        out["description"] = v.text(
            data.get("description"), "description", max_length=10_000, multiline=True
        )
    if present("benefits") or not partial:
        out["benefits"] = _texts(data.get("benefits"), "benefits", max_items=12, max_length=300)
    if present("categories") or not partial:
        out["categories"] = v.categories(data.get("categories"))
    if present("platforms") or not partial:
        out["platforms"] = v.platforms(data.get("platforms"))
    if present("media") or not partial:
        out["media"] = _media(data.get("media"))
    if present("compatibility") or not partial:
        out["compatibility"] = _texts(
            data.get("compatibility"), "compatibility", max_items=20, max_length=200
        )
    if present("partner_url") or not partial:
        out["partner_url"] = v.https_url(data.get("partner_url"), "partner_url")
    if present("faqs") or not partial:
        out["faqs"] = _faqs(data.get("faqs"))
    if present("contact") or not partial:
        out["contact"] = _contact(data.get("contact"))
    if present("scopes") or not partial:
        out["scopes"] = v.scopes(data.get("scopes"))
    if present("optional_scopes") or not partial:
        out["optional_scopes"] = v.scopes(
            data.get("optional_scopes"), "optional_scopes", allow_empty=True
        )
    _check_disjoint_scopes(out)
    if present("redirect_uris") or not partial:
        uris = data.get("redirect_uris")
        if not isinstance(uris, list) or not uris:
            raise InvalidInput("redirect_uris", "at least one redirect URI is required")
        out["redirect_uris"] = list(
            dict.fromkeys(v.redirect_uri(u, f"redirect_uris[{i}]") for i, u in enumerate(uris))
        )
    if present("durations") or not partial:
        raw = data.get("durations")
        if raw is None and not partial:
            raw = [d.value for d in v.Duration]
        if not isinstance(raw, list) or not raw:
            raise InvalidInput("durations", "at least one duration is required")
        parsed = {v.Duration.parse(d, f"durations[{i}]") for i, d in enumerate(raw)}
        out["durations"] = [d.value for d in v.Duration if d in parsed]
    return out


def _check_disjoint_scopes(details: dict[str, Any]) -> None:
    """A scope is either required or optional, never both."""
    both = [s for s in details.get("optional_scopes", []) if s in details.get("scopes", [])]
    if both:
        raise InvalidInput("optional_scopes", f"{', '.join(both)} is already a required scope")


def _texts(values: object, field: str, *, max_items: int, max_length: int) -> list[str]:
    if values is None:
        return []
    if not isinstance(values, list):
        raise InvalidInput(field, "must be a list of strings")
    if len(values) > max_items:
        raise InvalidInput(field, f"at most {max_items} items")
    return [v.text(x, f"{field}[{i}]", max_length=max_length) for i, x in enumerate(values)]


def _media(values: object) -> list[dict[str, str]]:
    if values is None:
        return []
    if not isinstance(values, list) or len(values) > 20:
        raise InvalidInput("media", "must be a list of at most 20 {type, url} items")
    out = []
    for i, item in enumerate(values):
        if not isinstance(item, dict) or item.get("type") not in ("image", "video"):
            raise InvalidInput(f"media[{i}].type", "must be 'image' or 'video'")
        out.append({"type": item["type"], "url": v.https_url(item.get("url"), f"media[{i}].url")})
    return out


def _faqs(values: object) -> list[dict[str, str]]:
    if values is None:
        return []
    if not isinstance(values, list) or len(values) > 30:
        raise InvalidInput("faqs", "must be a list of at most 30 {question, answer} items")
    out = []
    for i, item in enumerate(values):
        if not isinstance(item, dict):
            raise InvalidInput(f"faqs[{i}]", "must be an object with question and answer")
        out.append(
            {
                "question": v.text(item.get("question"), f"faqs[{i}].question", max_length=300),
                "answer": v.text(
                    item.get("answer"), f"faqs[{i}].answer", max_length=3000, multiline=True
                ),
            }
        )
    return out


def _contact(value: object) -> dict[str, str]:
    if not isinstance(value, dict):
        raise InvalidInput("contact", "must be an object with email and phone")
    return {
        "email": v.email_address(value.get("email"), "contact.email"),
        "phone": v.phone_number(value.get("phone"), "contact.phone"),
    }
