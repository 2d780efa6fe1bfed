"""Value types and closed vocabularies of the store: durations, scopes, categories, platforms."""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Literal
from urllib.parse import urlsplit

from domain.errors import (
    InvalidDuration,
    InvalidEmail,
    InvalidInput,
    InvalidPhone,
    InvalidUrl,
    UnknownCategory,
    UnknownPlatform,
    UnknownScope,
)

# The durations as a type, for request models (kept equal to Duration by a test).
DurationText = Literal["30d", "90d", "180d", "365d", "unlimited"]
# An active installation this close to its expiry is shown as `expiring` (and warned).
EXPIRING_WITHIN = timedelta(days=14)
# Days before expiry at which the seller (and the developer) are warned, most urgent last.
EXPIRY_WARNING_DAYS = (14, 3, 1)


class Duration(StrEnum):
    """How long an authorization lasts."""

    D30 = "30d"
    D90 = "90d"
    D180 = "180d"
    D365 = "365d"
    UNLIMITED = "unlimited"

    @property
    def days(self) -> int | None:
        """Length in days, or None for unlimited."""
        return None if self is Duration.UNLIMITED else int(self.value[:-1])

    def expiry_from(self, start: datetime) -> datetime | None:
        """The expiry of an authorization of this length starting at `start`."""
        days = self.days
        return None if days is None else start + timedelta(days=days)

    def renewal_expiry(self, expires_at: datetime | None, now: datetime) -> datetime | None:
        """The expiry after renewing for this long: from the old expiry while it is ahead."""
        return self.expiry_from(max(now, expires_at) if expires_at is not None else now)

    @classmethod
    def parse(cls, value: object, field: str = "duration") -> Duration:
        """Reads a duration such as "90d" or "unlimited"; raises InvalidDuration otherwise."""
        try:
            return cls(str(value))
        except ValueError:
            allowed = ", ".join(d.value for d in cls)
            raise InvalidDuration(field, f"must be one of {allowed}, got {value!r}") from None


def expiry_warning_due(expires_at: datetime | None, now: datetime) -> int | None:
    """The most urgent warning threshold (in days) passed at `now` before an expiry that
    is still ahead; None when none is (or there is no expiry)."""
    if expires_at is None or expires_at <= now:
        return None
    passed = [d for d in EXPIRY_WARNING_DAYS if expires_at - now <= timedelta(days=d)]
    return min(passed) if passed else None


def days_left(expires_at: datetime | None, now: datetime) -> int | None:
    """Whole days (rounded up) until expiry; None for unlimited, 0 once past."""
    if expires_at is None:
        return None
    return max(0, math.ceil((expires_at - now).total_seconds() / 86400))


class Role(StrEnum):
    SELLER = "seller"
    DEVELOPER = "developer"


class AccountType(StrEnum):
    """A seller's account type, as in the seed's "select your account type"."""

    LOCAL = "local"
    CROSS_BORDER = "cross_border"


class InstallationStatus(StrEnum):
    PENDING_AUTHORIZATION = "pending_authorization"
    ACTIVE = "active"
    EXPIRED = "expired"
    CANCELLED = "cancelled"
    DECLINED = "declined"


def past_expiry(expires_at: datetime | None, now: datetime) -> bool:
    """Whether an installation expiring at `expires_at` (None: never) has expired by `now`."""
    return expires_at is not None and expires_at <= now


def installation_live(
    status: InstallationStatus, expires_at: datetime | None, now: datetime
) -> bool:
    """An installation's rule for being live: active and not past its expiry (read of the
    aggregate, and of the facts a token check keeps: application/access_facts.py)."""
    return status is InstallationStatus.ACTIVE and not past_expiry(expires_at, now)


class IncidentStatus(StrEnum):
    OPEN = "open"
    ACKNOWLEDGED = "acknowledged"
    RESOLVED = "resolved"


CATEGORIES: dict[str, str] = {
    "integrations": "Integrations",
    "connectors": "Connectors",
    "multi-channel-management": "Multi-channel management",
    "print-on-demand": "Print on demand",
    "shipping-fulfillment": "Shipping and fulfillment",
    "product-listing": "Product listing",
    "customer-engagement": "Customer engagement",
    "optimization": "Optimization",
    "inventory-management": "Inventory management",
    "analytics": "Analytics",
    "marketing": "Marketing",
    "customer-service": "Customer service",
}

PLATFORMS: dict[str, str] = {
    "shopify": "Shopify",
    "amazon": "Amazon",
    "etsy": "Etsy",
    "walmart": "Walmart",
    "woocommerce": "WooCommerce",
    "ebay": "eBay",
    "bigcommerce": "BigCommerce",
    "magento": "Magento",
    "wix": "Wix",
    "squarespace": "Squarespace",
}

SCOPES: dict[str, str] = {
    "shop.read": "See your shop's name, region, currency and settings",
    "products.read": "See your products, variants and prices",
    "products.write": "Create, change and delete your products and prices",
    "orders.read": "See your orders, including buyer shipping addresses",
    "orders.write": "Change your orders: cancel, split, add notes",
    "fulfillment.read": "See shipments, tracking numbers and fulfillment status",
    "fulfillment.write": "Ship orders and upload tracking numbers",
    "inventory.read": "See stock levels in your warehouses",
    "inventory.write": "Change stock levels in your warehouses",
    "customers.read": "See your customers' names and contact details",
    "finance.read": "See your settlements, payouts and fees",
}


def scope_access(scope: str) -> Literal["read", "change"]:
    """Whether a scope lets an app only read, or also change, the seller's data."""
    return "read" if scope.endswith(".read") else "change"


@dataclass(frozen=True)
class ScopeGrant:
    """One scope as the seller reviews it: what it lets the app do, in plain words."""

    scope: str
    description: str
    access: Literal["read", "change"]


@dataclass(frozen=True)
class Conditions:
    """What a seller agrees to by authorizing: the access, and for how long."""

    scopes: list[ScopeGrant]
    duration: str
    expires_at_if_authorized_now: datetime | None
    authorize_before: datetime

    @classmethod
    def of(
        cls, scopes: list[str], duration: Duration, now: datetime, *, authorize_before: datetime
    ) -> Conditions:
        return cls(
            scopes=[ScopeGrant(s, SCOPES[s], scope_access(s)) for s in scopes],
            duration=duration.value,
            expires_at_if_authorized_now=duration.expiry_from(now),
            authorize_before=authorize_before,
        )

    @property
    def can_read(self) -> list[str]:
        return [s.description for s in self.scopes if s.access == "read"]

    @property
    def can_change(self) -> list[str]:
        return [s.description for s in self.scopes if s.access == "change"]


SYNC_AREAS: tuple[str, ...] = (
    "orders",
    "fulfillment",
    "inventory",
    "products",
    "refunds",
    "returns",
    "customers",
    "finance",
)

# The scopes that let an app report on a sync area (POST /v1/sync-events): access to that
# area's data, read or write. An area not listed here needs no particular scope.
SYNC_AREA_SCOPES: dict[str, tuple[str, ...]] = {
    "orders": ("orders.read", "orders.write"),
    "refunds": ("orders.read", "orders.write"),
    "returns": ("orders.read", "orders.write"),
    "fulfillment": ("fulfillment.read", "fulfillment.write"),
    "inventory": ("inventory.read", "inventory.write"),
    "products": ("products.read", "products.write"),
    "customers": ("customers.read",),
    "finance": ("finance.read",),
}

_EMAIL = re.compile(
    r"^[A-Za-z0-9.!#$%&'*+/=?^_`{|}~-]+@[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?)+$"
)
_E164 = re.compile(r"^\+[1-9][0-9]{6,14}$")
_SLUG = re.compile(r"^[a-z0-9]+(?:-[a-z0-9]+)*$")
_LOOPBACK_HOSTS = {"127.0.0.1", "localhost", "::1", "[::1]"}


def email_address(value: object, field: str = "email") -> str:
    """A syntactically valid e-mail address, lower-cased for comparison."""
    text = str(value).strip() if value is not None else ""
    if len(text) > 254 or not _EMAIL.match(text):
        raise InvalidEmail(field, f"{text!r} is not a valid e-mail address")
    return text.lower()


def phone_number(value: object, field: str = "phone") -> str:
    """A phone number in E.164 form (+ and 7–15 digits); spaces, dots and dashes are dropped."""
    text = re.sub(r"[\s.\-()]", "", str(value)) if value is not None else ""
    if not _E164.match(text):
        raise InvalidPhone(field, f"{value!r} is not an E.164 phone number such as +14155550100")
    return text


def https_url(value: object, field: str) -> str:
    """An absolute https URL (loopback http allowed for development)."""
    text = str(value).strip() if value is not None else ""
    try:
        parts = urlsplit(text)
        parts.port  # noqa: B018 - a malformed port raises here
    except ValueError:
        raise InvalidUrl(field, f"{text!r} is not a valid URL") from None
    if parts.username is not None or parts.password is not None:
        raise InvalidUrl(field, "must not contain a user name or password")
    if any(_is_control(c) or c.isspace() for c in text):
        raise InvalidUrl(field, "must not contain spaces or control characters")
    if parts.scheme == "http" and parts.hostname in _LOOPBACK_HOSTS:
        return text
    if parts.scheme != "https" or not parts.hostname or len(text) > 2048:
        raise InvalidUrl(field, f"{text!r} is not an absolute https URL")
    return text


def redirect_uri(value: object, field: str = "redirect_uris") -> str:
    """An OAuth redirect URI: https (or http on loopback), no fragment (RFC 6749 §3.1.2)."""
    text = https_url(value, field)
    if urlsplit(text).fragment:
        raise InvalidUrl(field, f"{text!r} must not contain a fragment")
    return text


def slug(value: object, field: str = "slug") -> str:
    """A URL slug: lower-case letters, digits and single dashes, 2–64 characters."""
    text = str(value) if value is not None else ""
    if not (2 <= len(text) <= 64) or not _SLUG.match(text):
        raise InvalidInput(field, f"{text!r} must be 2-64 lower-case letters, digits or dashes")
    return text


def slugify(name: str) -> str:
    """A slug made from a display name."""
    text = re.sub(r"[^a-z0-9]+", "-", name.lower()).strip("-")
    return text[:64].strip("-") or "app"


def scopes(values: object, field: str = "scopes", *, allow_empty: bool = False) -> list[str]:
    """A de-duplicated, ordered list of known scopes."""
    items = _string_list(values, field)
    for item in items:
        if item not in SCOPES:
            raise UnknownScope(field, f"{item!r} is not one of {', '.join(SCOPES)}")
    if not items and not allow_empty:
        raise InvalidInput(field, "at least one scope is required")
    return sorted(set(items), key=list(SCOPES).index)


def categories(values: object, field: str = "categories") -> list[str]:
    """A non-empty, de-duplicated list of known categories."""
    items = _string_list(values, field)
    for item in items:
        if item not in CATEGORIES:
            raise UnknownCategory(field, f"{item!r} is not one of {', '.join(CATEGORIES)}")
    if not items:
        raise InvalidInput(field, "at least one category is required")
    return list(dict.fromkeys(items))


def platforms(values: object, field: str = "platforms") -> list[str]:
    """A de-duplicated list of known platforms (may be empty for TikTok-only apps)."""
    items = _string_list(values, field)
    for item in items:
        if item not in PLATFORMS:
            raise UnknownPlatform(field, f"{item!r} is not one of {', '.join(PLATFORMS)}")
    return list(dict.fromkeys(items))


def text(
    value: object, field: str, *, max_length: int, required: bool = True, multiline: bool = False
) -> str:
    """A stripped string of at most `max_length` characters, without NUL or other control
    characters (line breaks and tabs only where `multiline`)."""
    if value is None:
        value = ""
    if not isinstance(value, str):
        raise InvalidInput(field, "must be a string")
    if (_CONTROL_BUT_LAYOUT if multiline else _CONTROL).search(value):
        kind = "control characters" if multiline else "control characters or line breaks"
        raise InvalidInput(field, f"must not contain {kind}")
    result = value.strip()
    if required and not result:
        raise InvalidInput(field, "must not be empty")
    if len(result) > max_length:
        raise InvalidInput(field, f"must be at most {max_length} characters")
    return result


# C0/C1 controls, DEL, and the invisible line/paragraph separators and bidi overrides; the
# layout characters (tab, line feed, carriage return) are C0 controls a multi-line text keeps.
_CONTROLS = r"\x00-\x1f\x7f-\x9f\u2028\u2029\u202a-\u202e\u2066-\u2069"
_CONTROL = re.compile(rf"[{_CONTROLS}]")
_CONTROL_BUT_LAYOUT = re.compile(rf"(?![\t\n\r])[{_CONTROLS}]")


def _is_control(char: str) -> bool:
    return _CONTROL.match(char) is not None


def _string_list(values: object, field: str) -> list[str]:
    if values is None:
        return []
    if isinstance(values, str) or not isinstance(values, list | tuple):
        raise InvalidInput(field, "must be a list of strings")
    for item in values:
        if not isinstance(item, str):
            raise InvalidInput(field, "must be a list of strings")
    return list(values)
