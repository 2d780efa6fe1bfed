"""The expiry sweep: record what time has already decided (expiries, lapsed authorizations)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Protocol
from uuid import UUID

from application import installations
from application.store import Store
from domain.errors import DomainError


class DueInstallations(Protocol):
    """Where the sweep learns what is due (a read model query, see projections.my_apps)."""

    def due_for_expiry(self, now: datetime) -> Sequence[UUID]: ...

    def due_for_lapse(self, now: datetime) -> Sequence[UUID]: ...

    def due_for_warning(self, now: datetime) -> Sequence[UUID]: ...


@dataclass(frozen=True)
class SweepResult:
    expired: int
    lapsed: int
    warned: int = 0


def sweep(store: Store, due: DueInstallations, now: datetime | None = None) -> SweepResult:
    """Appends Expired / Declined(lapsed) / ExpiryWarned events for installations the read
    model finds due.

    The read model may be behind: an installation renewed, cancelled or already warned
    meanwhile is refused by the aggregate and skipped. Two sweepers racing for the same
    warning collide on the installation's next version: one warning, never two.
    """
    now = now or store.clock.now()
    expired = lapsed = warned = 0
    for installation_id in due.due_for_expiry(now):
        try:
            installations.expire(store, installation_id)
            expired += 1
        except DomainError:
            pass
    for installation_id in due.due_for_lapse(now):
        try:
            installations.lapse(store, installation_id)
            lapsed += 1
        except DomainError:
            pass
    for installation_id in due.due_for_warning(now):
        try:
            installations.warn_expiry(store, installation_id)
            warned += 1
        except DomainError:
            pass
    return SweepResult(expired, lapsed, warned)
