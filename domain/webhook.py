"""Webhook subscriptions: where an app's developer wants to be told what happened.

A subscription belongs to one app: a URL, the topics it wants, and a signing secret. The
secret is kept only sealed (encrypted by the application layer): Standard Webhooks signs
with the secret itself, so the dispatcher must be able to recover it, but it is shown
to the developer only once, when created or rotated. A rotation keeps the previous secret
signing for an overlap window, so receivers can switch without losing a delivery.
"""

from __future__ import annotations

import base64
import ipaddress
from datetime import datetime, timedelta
from urllib.parse import urlsplit
from uuid import NAMESPACE_URL, UUID, uuid5

from eventsourcing.domain import Aggregate, event

from domain.errors import InvalidInput, InvalidUrl, WebhookNotFound

# The topics a subscription may ask for. Each is produced by one row of
# projections/webhook_topics.py (a test keeps the two lists equal).
TOPICS: tuple[str, ...] = (
    "installation.authorized",
    "installation.renewed",
    "installation.cancelled",
    "installation.expired",
    "installation.expiring",
    "installation.scopes_changed",
    "incident.raised",
    "incident.resolved",
    "review.posted",
)
# What each topic means, in the words the developer console shows beside its checkbox.
TOPIC_MEANINGS: dict[str, str] = {
    "installation.authorized": "A seller authorized your app (with the scopes granted).",
    "installation.renewed": "A seller renewed an installation (also back from expiry).",
    "installation.cancelled": "A seller cancelled: your tokens for that shop stopped working.",
    "installation.expired": "An installation reached its expiry date.",
    "installation.expiring": "An installation expires in 14, 3 or 1 days (each once).",
    "installation.scopes_changed": "A seller granted more scopes or took one back.",
    "incident.raised": "A sync failure you reported opened an incident.",
    "incident.resolved": "An incident was resolved (by a later success or by the seller).",
    "review.posted": "A seller posted a review of your app (with its stars and text).",
}
# Sent to one subscription on request ("send a test event"), whatever its topics.
TEST_TOPIC = "webhook.test"
# How long the previous secret keeps signing after a rotation, unless told otherwise.
DEFAULT_OVERLAP = timedelta(hours=24)
MAX_OVERLAP = timedelta(days=7)
MAX_URL = 2048
# Names that always mean this machine.
LOOPBACK_NAMES = ("localhost", "localhost.localdomain")


class UnknownTopic(InvalidInput):
    title = "Unknown webhook topic"


class Webhook(Aggregate):
    """One subscription of an app to some topics, with its sealed signing secrets."""

    class Created(Aggregate.Created):
        app_id: UUID
        developer_id: UUID
        url: str
        topics: list[str]
        sealed_secret: str
        created_at: datetime

    class Changed(Aggregate.Event):
        url: str
        topics: list[str]
        changed_at: datetime

    class SecretRotated(Aggregate.Event):
        sealed_secret: str
        previous_until: datetime
        rotated_at: datetime

    class TestRequested(Aggregate.Event):
        requested_at: datetime

    class Deleted(Aggregate.Event):
        deleted_at: datetime

    @event(Created)
    def __init__(
        self,
        app_id: UUID,
        developer_id: UUID,
        url: str,
        topics: list[str],
        sealed_secret: str,
        created_at: datetime,
    ) -> None:
        self.app_id = app_id
        self.developer_id = developer_id
        self.url = url
        self.topics = list(topics)
        self.sealed_secret = sealed_secret
        self.previous_sealed_secret: str | None = None
        self.previous_until: datetime | None = None
        self.created_at = created_at
        self.deleted_at: datetime | None = None

    @property
    def is_deleted(self) -> bool:
        return self.deleted_at is not None

    def sealed_secrets(self, now: datetime) -> list[str]:
        """The sealed secrets that sign at `now`: the current one, and the previous one
        while its overlap window lasts."""
        secrets = [self.sealed_secret]
        if self.previous_sealed_secret and self.previous_until and now < self.previous_until:
            secrets.append(self.previous_sealed_secret)
        return secrets

    def change(self, url: str, topics: list[str], now: datetime) -> None:
        """New URL and/or topics (already checked); no event when nothing changes."""
        self._require_live()
        if (url, list(topics)) != (self.url, self.topics):
            self._changed(url, list(topics), now)

    @event(Changed)
    def _changed(self, url: str, topics: list[str], changed_at: datetime) -> None:
        self.url = url
        self.topics = list(topics)

    def rotate_secret(self, sealed_secret: str, now: datetime, overlap: timedelta) -> None:
        """A new secret signs from now on; the current one keeps signing for `overlap`
        (a secret older than that is dropped at once)."""
        self._require_live()
        if overlap < timedelta(0) or overlap > MAX_OVERLAP:
            raise InvalidInput("overlap_hours", f"must be between 0 and {MAX_OVERLAP.days * 24}")
        self._secret_rotated(sealed_secret, now + overlap, now)

    @event(SecretRotated)
    def _secret_rotated(
        self, sealed_secret: str, previous_until: datetime, rotated_at: datetime
    ) -> None:
        self.previous_sealed_secret = self.sealed_secret
        self.previous_until = previous_until
        self.sealed_secret = sealed_secret

    def request_test(self, now: datetime) -> None:
        """Asks for one `webhook.test` delivery to this subscription."""
        self._require_live()
        self._test_requested(now)

    @event(TestRequested)
    def _test_requested(self, requested_at: datetime) -> None:
        pass

    def delete(self, now: datetime) -> None:
        """Stops every future delivery; pending ones are given up."""
        self._require_live()
        self._deleted(now)

    @event(Deleted)
    def _deleted(self, deleted_at: datetime) -> None:
        self.deleted_at = deleted_at

    def _require_live(self) -> None:
        if self.is_deleted:
            raise WebhookNotFound(f"webhook {self.id} not found")


# --- what a subscription may say ------------------------------------------------------------
def check_topics(topics: list[str]) -> list[str]:
    """The topics, de-duplicated in the given order; UnknownTopic names the first bad one."""
    if not topics:
        raise InvalidInput("topics", "choose at least one topic")
    for topic in topics:
        if topic not in TOPICS:
            raise UnknownTopic("topics", f"{topic!r} is not one of {', '.join(TOPICS)}")
    return list(dict.fromkeys(topics))


def check_url(url: str, *, allow_loopback: bool) -> str:
    """The URL if a subscription may point at it: https (or http to this machine when
    loopback is allowed), no credentials, and a literal address must be a public one.

    Host names are resolved (and refused if they resolve to a forbidden address) each
    time a delivery is sent, since DNS answers change.
    """
    url = url.strip()
    if not url or len(url) > MAX_URL:
        raise InvalidUrl("url", f"must be an absolute URL of at most {MAX_URL} characters")
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError as error:
        raise InvalidUrl("url", f"is not a valid URL: {error}") from None
    host = (parts.hostname or "").lower()
    if parts.scheme not in ("https", "http") or not host:
        raise InvalidUrl("url", "must be an absolute https:// URL")
    if parts.username is not None or parts.password is not None:
        raise InvalidUrl("url", "must not carry credentials; verify the signature instead")
    if port == 0:
        raise InvalidUrl("url", "port 0 cannot be reached")
    loopback = is_loopback_host(host)
    if loopback and not allow_loopback:
        raise InvalidUrl("url", "points at this machine (loopback), which is not allowed")
    if parts.scheme == "http" and not loopback:
        raise InvalidUrl(
            "url", "must use https (http is accepted only for loopback in development)"
        )
    address = literal_address(host)
    if address is not None:
        reason = forbidden_address(address, allow_loopback=allow_loopback)
        if reason is not None:
            raise InvalidUrl("url", f"points at {reason}")
    return url


def is_loopback_host(host: str) -> bool:
    """Whether a URL's host names this machine (a loopback address or localhost)."""
    if host.lower().rstrip(".") in LOOPBACK_NAMES:
        return True
    address = literal_address(host)
    return address is not None and unmapped(address).is_loopback


def literal_address(host: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    """The address a host written as an IP literal stands for, else None."""
    try:
        return ipaddress.ip_address(host.strip("[]"))
    except ValueError:
        return None


def unmapped(
    address: ipaddress.IPv4Address | ipaddress.IPv6Address,
) -> ipaddress.IPv4Address | ipaddress.IPv6Address:
    """An IPv4-mapped IPv6 address (::ffff:10.0.0.1) as the IPv4 address it carries."""
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return address.ipv4_mapped
    return address


def forbidden_address(
    address: ipaddress.IPv4Address | ipaddress.IPv6Address, *, allow_loopback: bool
) -> str | None:
    """Why a delivery may not connect to `address` (None: it may).

    Only globally routable unicast addresses are allowed (loopback too, when allowed):
    never private networks, link-local (where cloud metadata services answer), shared,
    reserved, multicast or unspecified addresses.
    """
    address = unmapped(address)
    if address.is_loopback:
        return None if allow_loopback else f"a loopback address ({address})"
    if address.is_link_local:
        return f"a link-local address ({address}), where cloud metadata services answer"
    if address.is_multicast:
        return f"a multicast address ({address})"
    if address.is_unspecified:
        return f"an unspecified address ({address})"
    if address.is_private:
        return f"a private address ({address})"
    if not address.is_global:
        return f"an address that is not publicly routable ({address})"
    return None


def webhook_secret_text(raw: bytes) -> str:
    """A signing secret as shown to the developer: `whsec_` + base64 (Standard Webhooks)."""
    return "whsec_" + base64.b64encode(raw).decode()


def delivery_id_for(webhook_id: UUID, position: int) -> UUID:
    """The one delivery of the event at `position` to this subscription (stable on replay)."""
    return uuid5(NAMESPACE_URL, f"appstore:delivery:{webhook_id}:{position}")


def message_id(delivery_id: UUID) -> str:
    """The `webhook-id` (and payload `id`) of a delivery: the same on every try."""
    return f"msg_{delivery_id.hex}"
