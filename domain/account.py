"""Account: a seller (who installs apps) or a developer (who lists them)."""

from __future__ import annotations

from datetime import datetime

from eventsourcing.domain import Aggregate, event


class Account(Aggregate):
    """A person who signs in to the store. The password is kept only as an argon2 hash."""

    class Registered(Aggregate.Created):
        role: str
        email: str
        password_hash: str
        name: str
        account_type: str | None
        registered_at: datetime

    class PasswordRehashed(Aggregate.Event):
        password_hash: str

    @event(Registered)
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

    @event(PasswordRehashed)
    def rehash_password(self, password_hash: str) -> None:
        """Stores a stronger hash of the same password (argon2 parameters were raised)."""
        self.password_hash = password_hash
