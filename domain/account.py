"""Account: a seller (who installs apps) or a developer (who lists them)."""

from __future__ import annotations

from datetime import datetime
from uuid import NAMESPACE_URL, UUID, uuid5

from eventsourcing.domain import Aggregate, event


class Account(Aggregate):
    """A person who signs in to the store. The password is kept only as an argon2 hash."""

    @event("Registered")
    def __init__(
        self,
        role: str,
        email: str,
        password_hash: str,
        name: str,
        account_type: str | None,
        registered_at: datetime,
    ) -> None:
        self.role = role
        self.email = email
        self.password_hash = password_hash
        self.name = name
        self.account_type = account_type
        self.registered_at = registered_at

    @event("PasswordRehashed")
    def rehash_password(self, password_hash: str) -> None:
        """Stores a stronger hash of the same password (argon2 parameters were raised)."""
        self.password_hash = password_hash


class EmailClaim(Aggregate):
    """Reserves an e-mail address for one account.

    Its id is derived from the address, so two sign-ups racing for the same address
    collide on the event store's unique (id, version) key: uniqueness without a read model.
    """

    @staticmethod
    def create_id(email: str) -> UUID:
        return email_claim_id(email)

    @event("Claimed")
    def __init__(self, email: str, account_id: UUID) -> None:
        self.email = email
        self.account_id = account_id


def email_claim_id(email: str) -> UUID:
    """The id of the claim on a (lower-cased) e-mail address."""
    return uuid5(NAMESPACE_URL, f"appstore:email:{email.lower()}")
