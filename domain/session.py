"""Session: a signed-in account, found by the hash of its bearer token."""

from __future__ import annotations

from datetime import datetime
from uuid import NAMESPACE_URL, UUID, uuid5

from eventsourcing.domain import Aggregate, event


class Session(Aggregate):
    """A log-in. Its id derives from the token's hash, so the token itself is never stored."""

    class Started(Aggregate.Created):
        token_hash: str
        account_id: UUID
        role: str
        started_at: datetime
        expires_at: datetime

    class Ended(Aggregate.Event):
        ended_at: datetime

    @staticmethod
    def create_id(token_hash: str) -> UUID:
        return session_id_for(token_hash)

    @event(Started)
    def __init__(
        self,
        token_hash: str,
        account_id: UUID,
        role: str,
        started_at: datetime,
        expires_at: datetime,
    ) -> None:
        self.account_id = account_id
        self.role = role
        self.started_at = started_at
        self.expires_at = expires_at
        self.ended_at: datetime | None = None

    def is_valid(self, now: datetime) -> bool:
        return self.ended_at is None and now < self.expires_at

    @event(Ended)
    def end(self, ended_at: datetime) -> None:
        self.ended_at = ended_at


def session_id_for(token_hash: str) -> UUID:
    return uuid5(NAMESPACE_URL, f"appstore:session:{token_hash}")
