"""Accounts and sessions: sign up, log in, check a session, log out."""

from __future__ import annotations

import contextlib
from dataclasses import dataclass
from datetime import timedelta
from uuid import UUID

from eventsourcing.persistence import IntegrityError

from application.store import Outcome, Store
from domain import values as v
from domain.account import Account
from domain.claims import EmailClaim, email_claim_id
from domain.credentials import new_token, token_hash
from domain.errors import (
    AccountNotFound,
    EmailTaken,
    InvalidCredentials,
    InvalidInput,
    WrongRole,
)
from domain.session import Session, session_id_for

SESSION_LIFETIME = timedelta(hours=12)


@dataclass(frozen=True)
class StartedSession:
    token: str
    session: Session
    position: int


def register_account(
    store: Store,
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
    password_hash = store.passwords.hash(password)
    if store.load(email_claim_id(address), EmailClaim) is not None:
        raise EmailTaken(f"{address} is already registered")
    account = Account(
        role=parsed_role.value,
        email=address,
        password_hash=password_hash,
        name=display_name,
        account_type=kind,
        registered_at=store.clock.now(),
    )
    claim = EmailClaim(email=address, account_id=account.id)
    try:
        position = store.save(account, claim)
    except IntegrityError:
        raise EmailTaken(f"{address} is already registered") from None
    return Outcome(account.id, position)


def account(store: Store, account_id: UUID) -> Account:
    """The account with this id, or AccountNotFound."""
    found = store.load(account_id, Account)
    if found is None:
        raise AccountNotFound(f"account {account_id} not found")
    return found


def authenticate(store: Store, email: str, password: str, address: str | None = None) -> Account:
    """The account with this e-mail and password, or InvalidCredentials.

    Throttled (429) after too many failures for this account or client `address`; an
    unknown e-mail costs the same password check as a known one (no timing oracle).
    """
    key = email.strip().lower()[:320]
    store.logins.check(key, address)
    try:
        valid = v.email_address(email)
    except InvalidInput:
        valid = None
    claim = store.load(email_claim_id(valid), EmailClaim) if valid else None
    found = store.load(claim.account_id, Account) if claim else None
    if found is None:
        store.passwords.verify_nothing(password)
    if found is None or not store.passwords.verify(found.password_hash, password):
        store.logins.failed(key, address)
        raise InvalidCredentials("e-mail or password is wrong")
    store.logins.succeeded(key, address)
    if store.passwords.needs_rehash(found.password_hash):
        found.rehash_password(store.passwords.hash(password))
        with contextlib.suppress(IntegrityError):  # a concurrent log-in rehashed it first
            store.save(found)
    return found


def start_session(
    store: Store, email: str, password: str, address: str | None = None
) -> StartedSession:
    """Logs in: returns a new bearer token (shown once) and its session. `address` is the
    client's (for throttling)."""
    found = authenticate(store, email, password, address)
    token = new_token("ses_")
    now = store.clock.now()
    session = Session(
        token_hash=token_hash(token),
        account_id=found.id,
        role=found.role,
        started_at=now,
        expires_at=now + SESSION_LIFETIME,
    )
    position = store.save(session)
    assert position is not None
    return StartedSession(token, session, position)


def session_for(store: Store, token: str) -> Session | None:
    """The valid session a bearer token opens, or None.

    A session's start never changes and its only later event is its end, so the started
    session is remembered per process and each call asks the log one cheap question: has
    it an event after its first (an end, written by any process)? No decoding, no replay.
    """
    session_id = session_id_for(token_hash(token))
    started = store.remembered(("session", session_id), lambda: _started(store, session_id))
    if started is None or store.changed_since(session_id, started.version):
        return None  # unknown, or ended (a remembered session is at its first version)
    return started if started.is_valid(store.clock.now()) else None


def _started(store: Store, session_id: UUID) -> Session | None:
    """The session as started, if it exists and has not ended (else nothing to remember)."""
    session = store.load(session_id, Session)
    return session if session is not None and session.ended_at is None else None


def end_session(store: Store, token: str) -> Outcome:
    """Logs out (idempotent)."""
    session = store.load(session_id_for(token_hash(token)), Session)
    if session is None:
        raise InvalidCredentials("unknown session")
    if session.ended_at is not None:
        return Outcome(session.id, None)
    session.end(store.clock.now())
    return Outcome(session.id, store.save(session))


def require_role(store: Store, account_id: UUID, role: v.Role) -> None:
    """Refuses an account of another role (or none). Roles never change, so remembered."""
    known = store.remembered(("role", account_id), lambda: account(store, account_id).role)
    if known != role.value:
        raise WrongRole(f"this needs a {role.value} account")
