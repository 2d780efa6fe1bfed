"""The store's use cases: one method per command, each appending events in one transaction.

`AppStore` is the `eventsourcing` Application holding every aggregate, so all events share
one global, gapless log (positions) that projections and audits read.
"""

from __future__ import annotations

import contextlib
import random
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, TypeVar
from uuid import UUID

from eventsourcing.application import AggregateNotFoundError, Application, project_aggregate
from eventsourcing.domain import Aggregate
from eventsourcing.persistence import IntegrityError, Recording

from domain import values as v
from domain.account import Account, EmailClaim, email_claim_id
from domain.app_listing import (
    AppListing,
    SlugClaim,
    app_id_from_client_id,
    slug_claim_id,
    validate_listing,
)
from domain.clock import Clock, SystemClock
from domain.credentials import Passwords, new_token, token_hash, token_matches
from domain.errors import (
    AccountNotFound,
    AppDelisted,
    AppNotFound,
    ConcurrentUpdate,
    DomainError,
    DuplicateInstallation,
    EmailTaken,
    InstallationNotFound,
    InvalidCredentials,
    InvalidDuration,
    InvalidInput,
    NotRenewable,
    SlugTaken,
    WrongRole,
)
from domain.installation import (
    Installation,
    InstallationSlot,
    SyncEventReceipt,
    installation_slot_id,
    sync_receipt_id,
)
from domain.session import Session, session_id_for

A = TypeVar("A", bound=Aggregate)
R = TypeVar("R")

SESSION_LIFETIME = timedelta(hours=12)
ROLE_CACHE_SIZE = 100_000
# Attempts of a command that lost an optimistic-concurrency race before answering 409.
MAX_ATTEMPTS = 12


@dataclass(frozen=True)
class Outcome:
    """What a command did: the aggregate it acted on and the log position it reached.

    `position` is None when the command changed nothing (an idempotent repeat).
    """

    id: UUID
    position: int | None


@dataclass(frozen=True)
class ListedApp(Outcome):
    client_id: str = ""
    client_secret: str = ""


@dataclass(frozen=True)
class StartedSession:
    token: str
    session: Session
    position: int


@dataclass(frozen=True)
class SyncEvent:
    """A connector's report of one sync run (from Kafka or HTTP)."""

    event_id: str
    installation_id: UUID
    kind: str  # "failure" | "success"
    area: str
    occurred_at: datetime
    error_code: str = ""
    message: str = ""
    object_ids: list[str] = field(default_factory=list)
    app_id: UUID | None = None


@dataclass(frozen=True)
class SyncResult:
    event_id: str
    installation_id: UUID
    duplicate: bool
    incident_ids: list[UUID]
    position: int | None


class AppStore(Application[UUID]):
    """Every command of the store. Reads for display go to projections, not here."""

    name = "AppStore"
    # Busy connectors give installations long histories (one event per incident report).
    snapshotting_intervals = {Installation: 100}

    def __init__(
        self,
        env: dict[str, str] | None = None,
        *,
        clock: Clock | None = None,
        passwords: Passwords | None = None,
    ) -> None:
        super().__init__(env)
        self.clock: Clock = clock or SystemClock()
        self.passwords = passwords or Passwords()
        self._roles: dict[UUID, str] = {}

    # --- plumbing ---------------------------------------------------------------------
    def _get(self, aggregate_id: UUID, kind: type[A]) -> A | None:
        """The aggregate with this id if it is a `kind`, else None."""
        aggregate: Any
        if kind in self.snapshotting_intervals or self.repository.cache is not None:
            try:
                aggregate = self.repository.get(aggregate_id)
            except AggregateNotFoundError:
                return None
        else:
            # Only installations are snapshotted: other kinds skip the repository's
            # snapshot lookup, a database round trip that cost a third of a command.
            aggregate = project_aggregate(None, self.events.get(aggregate_id))
        return aggregate if isinstance(aggregate, kind) else None

    def _commit(self, *aggregates: Aggregate | None) -> int | None:
        recordings: list[Recording[UUID]] = self.save(*aggregates)
        return recordings[-1].notification.id if recordings else None

    def _retrying(self, attempt: Callable[[], R]) -> R:
        """Runs a read-decide-append attempt again when another writer got there first."""
        for tries in range(1, MAX_ATTEMPTS + 1):
            try:
                return attempt()
            except IntegrityError:
                # Jittered backoff so hot writers stop colliding in lock-step.
                time.sleep(random.uniform(0, 0.005 * tries))
        raise ConcurrentUpdate("too many concurrent changes, try again")

    # --- accounts and sessions ------------------------------------------------------------
    def register_account(
        self,
        role: str,
        email: str,
        password: str,
        name: str,
        account_type: str | None = None,
    ) -> Outcome:
        """Signs up a seller or developer; the e-mail address is unique."""
        try:
            parsed_role = v.Role(role)
        except ValueError:
            raise InvalidInput("role", "must be 'seller' or 'developer'") from None
        address = v.email_address(email)
        display_name = v.text(name, "name", max_length=120)
        kind: str | None = None
        if parsed_role is v.Role.SELLER:
            try:
                kind = v.AccountType(account_type or v.AccountType.LOCAL).value
            except ValueError:
                raise InvalidInput("account_type", "must be 'local' or 'cross_border'") from None
        elif account_type is not None:
            raise InvalidInput("account_type", "only sellers have an account type")
        password_hash = self.passwords.hash(password)
        if self._get(email_claim_id(address), EmailClaim) is not None:
            raise EmailTaken(f"{address} is already registered")
        account = Account(
            role=parsed_role.value,
            email=address,
            password_hash=password_hash,
            name=display_name,
            account_type=kind,
            registered_at=self.clock.now(),
        )
        claim = EmailClaim(email=address, account_id=account.id)
        try:
            position = self._commit(account, claim)
        except IntegrityError:
            raise EmailTaken(f"{address} is already registered") from None
        return Outcome(account.id, position)

    def account(self, account_id: UUID) -> Account:
        account = self._get(account_id, Account)
        if account is None:
            raise AccountNotFound(f"account {account_id} not found")
        return account

    def authenticate(self, email: str, password: str) -> Account:
        """The account with this e-mail and password, or InvalidCredentials."""
        try:
            address = v.email_address(email)
        except InvalidInput:
            raise InvalidCredentials("e-mail or password is wrong") from None
        claim = self._get(email_claim_id(address), EmailClaim)
        account = self._get(claim.account_id, Account) if claim else None
        if account is None or not self.passwords.verify(account.password_hash, password):
            raise InvalidCredentials("e-mail or password is wrong")
        if self.passwords.needs_rehash(account.password_hash):
            account.rehash_password(self.passwords.hash(password))
            with contextlib.suppress(IntegrityError):  # a concurrent log-in rehashed it first
                self._commit(account)
        return account

    def start_session(self, email: str, password: str) -> StartedSession:
        """Logs in: returns a new bearer token (shown once) and its session."""
        account = self.authenticate(email, password)
        token = new_token("ses_")
        now = self.clock.now()
        session = Session(
            token_hash=token_hash(token),
            account_id=account.id,
            role=account.role,
            started_at=now,
            expires_at=now + SESSION_LIFETIME,
        )
        position = self._commit(session)
        assert position is not None
        return StartedSession(token, session, position)

    def session_for(self, token: str) -> Session | None:
        """The valid session a bearer token opens, or None."""
        session = self._get(session_id_for(token_hash(token)), Session)
        if session is None or not session.is_valid(self.clock.now()):
            return None
        return session

    def end_session(self, token: str) -> Outcome:
        """Logs out (idempotent)."""
        session = self._get(session_id_for(token_hash(token)), Session)
        if session is None:
            raise InvalidCredentials("unknown session")
        if session.ended_at is not None:
            return Outcome(session.id, None)
        session.end(self.clock.now())
        return Outcome(session.id, self._commit(session))

    def _require_role(self, account_id: UUID, role: v.Role) -> None:
        """Refuses an account of another role (or none); roles never change, so remembered."""
        known = self._roles.get(account_id)
        if known is None:
            known = self.account(account_id).role
            if len(self._roles) >= ROLE_CACHE_SIZE:
                self._roles.clear()
            self._roles[account_id] = known
        if known != role.value:
            raise WrongRole(f"this needs a {role.value} account")

    # --- app listings -------------------------------------------------------------------
    def list_app(self, developer_id: UUID, details: dict[str, Any]) -> ListedApp:
        """Lists a new app; returns its OAuth client_id and a client_secret shown only once."""
        self._require_role(developer_id, v.Role.DEVELOPER)
        fields = validate_listing(details, partial=False)
        if self._get(slug_claim_id(fields["slug"]), SlugClaim) is not None:
            raise SlugTaken(f"slug {fields['slug']!r} is taken")
        secret = new_token("cs_")
        app = AppListing(
            developer_id=developer_id,
            details=fields,
            client_secret_hash=token_hash(secret),
            listed_at=self.clock.now(),
        )
        claim = SlugClaim(slug=fields["slug"], app_id=app.id)
        try:
            position = self._commit(app, claim)
        except IntegrityError:
            raise SlugTaken(f"slug {fields['slug']!r} is taken") from None
        return ListedApp(app.id, position, app.client_id, secret)

    def app(self, app_id: UUID) -> AppListing:
        app = self._get(app_id, AppListing)
        if app is None:
            raise AppNotFound(f"app {app_id} not found")
        return app

    def _own_app(self, developer_id: UUID, app_id: UUID) -> AppListing:
        app = self.app(app_id)
        if app.developer_id != developer_id:
            raise AppNotFound(f"app {app_id} not found")
        return app

    def update_app(self, developer_id: UUID, app_id: UUID, changes: dict[str, Any]) -> Outcome:
        """Changes some listing fields (PATCH semantics); a new slug must be free."""
        fields = validate_listing(changes, partial=True)

        def attempt() -> Outcome:
            app = self._own_app(developer_id, app_id)
            claim = None
            new_slug = fields.get("slug")
            if new_slug is not None and new_slug != app.details["slug"]:
                if self._get(slug_claim_id(new_slug), SlugClaim) is not None:
                    raise SlugTaken(f"slug {new_slug!r} is taken")
                claim = SlugClaim(slug=new_slug, app_id=app.id)
            app.update(fields, self.clock.now())
            try:
                return Outcome(app.id, self._commit(app, claim))
            except IntegrityError:
                if claim is not None and self._get(claim.id, SlugClaim) is not None:
                    raise SlugTaken(f"slug {new_slug!r} is taken") from None
                raise

        return self._retrying(attempt)

    def delist_app(self, developer_id: UUID, app_id: UUID) -> Outcome:
        """Hides the app and stops new installs; existing installations keep working."""

        def attempt() -> Outcome:
            app = self._own_app(developer_id, app_id)
            app.delist(self.clock.now())
            return Outcome(app.id, self._commit(app))

        return self._retrying(attempt)

    def rotate_client_secret(self, developer_id: UUID, app_id: UUID) -> ListedApp:
        """Issues a new client secret (shown once); the old one stops working."""
        secret = new_token("cs_")

        def attempt() -> ListedApp:
            app = self._own_app(developer_id, app_id)
            app.rotate_client_secret(token_hash(secret), self.clock.now())
            return ListedApp(app.id, self._commit(app), app.client_id, secret)

        return self._retrying(attempt)

    def authenticate_client(self, client_id: str, client_secret: str) -> AppListing | None:
        """The app whose OAuth client credentials these are, or None."""
        app_id = app_id_from_client_id(client_id)
        app = self._get(app_id, AppListing) if app_id else None
        if app is None or not token_matches(client_secret, app.client_secret_hash):
            return None
        return app

    # --- installations ------------------------------------------------------------------
    def installation(self, installation_id: UUID) -> Installation:
        installation = self._get(installation_id, Installation)
        if installation is None:
            raise InstallationNotFound(f"installation {installation_id} not found")
        return installation

    def _own_installation(self, seller_id: UUID, installation_id: UUID) -> Installation:
        """The seller's installation; another seller's is reported as not found."""
        installation = self.installation(installation_id)
        if installation.seller_id != seller_id:
            raise InstallationNotFound(f"installation {installation_id} not found")
        return installation

    def install(
        self,
        seller_id: UUID,
        app_id: UUID,
        duration: str,
        contact_email: str,
        contact_phone: str,
        *,
        scopes: Sequence[str] | None = None,
        via: str = "store",
    ) -> Outcome:
        """Starts an installation, pending the seller's authorization.

        A pending installation of the same app is superseded; an active one → 409.
        """
        parsed = v.Duration.parse(duration)
        email = v.email_address(contact_email, "contact_email")
        phone = v.phone_number(contact_phone, "contact_phone")
        self._require_role(seller_id, v.Role.SELLER)
        app = self.app(app_id)
        if not app.is_listed:
            raise AppDelisted(f"app {app_id} is no longer listed")
        if parsed.value not in app.durations:
            raise InvalidDuration("duration", f"this app offers {', '.join(app.durations)}")
        granted = app.scopes
        if scopes is not None:
            granted = v.scopes(list(scopes))
            extra = sorted(set(granted) - set(app.scopes))
            if extra:
                raise InvalidInput("scope", f"the app does not ask for {', '.join(extra)}")

        def attempt() -> Outcome:
            now = self.clock.now()
            slot = self._get(installation_slot_id(seller_id, app_id), InstallationSlot)
            if slot is None:
                slot = InstallationSlot(seller_id=seller_id, app_id=app_id)
            superseded = None
            if slot.installation_id is not None:
                current = self.installation(slot.installation_id)
                if current.is_live(now):
                    raise DuplicateInstallation(
                        f"app is already installed (installation {current.id})"
                    )
                if current.is_pending(now):
                    current.decline(now, "superseded")
                    superseded = current
            installation = Installation(
                seller_id=seller_id,
                app_id=app_id,
                duration=parsed.value,
                contact_email=email,
                contact_phone=phone,
                scopes=granted,
                installed_at=now,
                via=via,
            )
            slot.claim(installation.id)
            return Outcome(installation.id, self._commit(slot, superseded, installation))

        return self._retrying(attempt)

    def _act(
        self,
        seller_id: UUID | None,
        installation_id: UUID,
        act: Callable[[Installation, datetime], None],
    ) -> Outcome:
        """Loads the installation (the seller's own, if given), acts, appends; retried on races."""

        def attempt() -> Outcome:
            installation = (
                self.installation(installation_id)
                if seller_id is None
                else self._own_installation(seller_id, installation_id)
            )
            act(installation, self.clock.now())
            return Outcome(installation.id, self._commit(installation))

        return self._retrying(attempt)

    def authorize(self, seller_id: UUID, installation_id: UUID) -> Outcome:
        """The seller authorizes after reviewing the conditions: the app becomes active."""
        return self._act(seller_id, installation_id, lambda i, now: i.authorize(now))

    def decline(self, seller_id: UUID, installation_id: UUID) -> Outcome:
        """The seller declines the authorization."""
        return self._act(seller_id, installation_id, lambda i, now: i.decline(now))

    def cancel(self, seller_id: UUID, installation_id: UUID) -> Outcome:
        """Cancels: the app loses access at once. Final."""
        return self._act(seller_id, installation_id, lambda i, now: i.cancel(now))

    def renew(self, seller_id: UUID, installation_id: UUID, duration: str) -> Outcome:
        """Extends the authorization from max(now, expires_at); brings back an expired one."""
        parsed = v.Duration.parse(duration)

        def attempt() -> Outcome:
            installation = self._own_installation(seller_id, installation_id)
            app = self.app(installation.app_id)
            if parsed.value not in app.durations:
                raise InvalidDuration("duration", f"this app offers {', '.join(app.durations)}")
            now = self.clock.now()
            slot = None
            if installation.effective_status(now) is v.InstallationStatus.EXPIRED:
                # Coming back from expiry: only if no newer installation took the slot.
                slot = self._get(
                    installation_slot_id(installation.seller_id, installation.app_id),
                    InstallationSlot,
                )
                if slot is None or slot.installation_id != installation.id:
                    raise NotRenewable("a newer installation of this app replaced this one")
                if installation.status is v.InstallationStatus.ACTIVE:
                    installation.expire(now)
                slot.claim(installation.id)
            installation.renew(parsed, now)
            return Outcome(installation.id, self._commit(slot, installation))

        return self._retrying(attempt)

    def expire(self, installation_id: UUID) -> Outcome:
        """Records the expiry of an installation past its expires_at (the sweeper's command)."""
        return self._act(None, installation_id, lambda i, now: i.expire(now))

    def lapse(self, installation_id: UUID) -> Outcome:
        """Records that a pending installation's authorization window passed."""
        return self._act(None, installation_id, lambda i, now: i.lapse(now))

    # --- incidents ----------------------------------------------------------------------
    def acknowledge_incident(
        self, seller_id: UUID, installation_id: UUID, incident_id: UUID
    ) -> Outcome:
        return self._act(
            seller_id, installation_id, lambda i, now: i.acknowledge_incident(incident_id, now)
        )

    def resolve_incident(
        self, seller_id: UUID, installation_id: UUID, incident_id: UUID
    ) -> Outcome:
        return self._act(
            seller_id, installation_id, lambda i, now: i.resolve_incident(incident_id, now)
        )

    def record_sync_event(self, sync: SyncEvent) -> SyncResult:
        """Applies one connector sync report, exactly once per (installation, event_id)."""
        _check_sync(sync)

        def attempt() -> SyncResult:
            if self._get(sync_receipt_id(sync.installation_id, sync.event_id), SyncEventReceipt):
                return SyncResult(sync.event_id, sync.installation_id, True, [], None)
            (result,) = self._record_batch([sync])
            if isinstance(result, Exception):
                raise result
            return result

        return self._retrying(attempt)

    def record_sync_events(self, batch: Iterable[SyncEvent]) -> list[SyncResult | Exception]:
        """Applies many sync reports in one transaction; falls back to one by one when the
        batch collides (a redelivered event_id, or another writer on an installation).

        Each item's result is a SyncResult, or the DomainError that refused it.
        """
        items = list(batch)
        try:
            return self._record_batch(items)
        except IntegrityError:
            results: list[SyncResult | Exception] = []
            for sync in items:
                try:
                    results.append(self.record_sync_event(sync))
                except DomainError as error:  # reported per item, the batch goes on
                    results.append(error)
            return results

    def _record_batch(self, items: list[SyncEvent]) -> list[SyncResult | Exception]:
        now = self.clock.now()
        installations: dict[UUID, Installation | None] = {}
        receipts: dict[UUID, SyncEventReceipt] = {}
        results: list[SyncResult | Exception] = []
        for sync in items:
            try:
                _check_sync(sync)
                receipt_id = sync_receipt_id(sync.installation_id, sync.event_id)
                # Redeliveries from an earlier batch are not looked up one by one (that read
                # per message halved throughput): their receipt collides on save, and the
                # batch is then retried item by item, where duplicates are found.
                if receipt_id in receipts:
                    results.append(SyncResult(sync.event_id, sync.installation_id, True, [], None))
                    continue
                if sync.installation_id not in installations:
                    installations[sync.installation_id] = self._get(
                        sync.installation_id, Installation
                    )
                installation = installations[sync.installation_id]
                if installation is None or (
                    sync.app_id is not None and installation.app_id != sync.app_id
                ):
                    raise InstallationNotFound(f"installation {sync.installation_id} not found")
                before = len(installation.pending_events)
                incident_ids = _apply_sync(installation, sync, now)
                if len(installation.pending_events) > before:
                    receipts[receipt_id] = SyncEventReceipt(
                        installation_id=sync.installation_id,
                        event_id=sync.event_id,
                        received_at=now,
                    )
                results.append(
                    SyncResult(sync.event_id, sync.installation_id, False, incident_ids, None)
                )
            except DomainError as error:  # a refused item must not sink the batch
                results.append(error)
        position = self._commit(*[i for i in installations.values() if i], *receipts.values())
        return [
            SyncResult(r.event_id, r.installation_id, r.duplicate, r.incident_ids, position)
            if isinstance(r, SyncResult) and not r.duplicate
            else r
            for r in results
        ]


def _check_sync(sync: SyncEvent) -> None:
    v.text(sync.event_id, "event_id", max_length=200)
    if sync.kind not in ("failure", "success"):
        raise InvalidInput("kind", "must be 'failure' or 'success'")
    v.text(sync.area, "area", max_length=64)
    if sync.kind == "failure":
        v.text(sync.error_code, "error_code", max_length=120)
    if sync.occurred_at.tzinfo is None:
        raise InvalidInput("occurred_at", "must carry a timezone")


def _apply_sync(installation: Installation, sync: SyncEvent, now: datetime) -> list[UUID]:
    if sync.kind == "failure":
        return [
            installation.report_failure(
                sync.event_id,
                sync.area,
                sync.error_code,
                sync.message[:2000],
                [str(o) for o in sync.object_ids],
                sync.occurred_at,
                now,
            )
        ]
    return installation.report_success(sync.event_id, sync.area, sync.occurred_at, now)
