"""Secrets the store hands out (session tokens, client secrets) and how they are kept: hashed."""

from __future__ import annotations

import hashlib
import hmac
import secrets
import threading

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError

from domain.errors import Throttled, WeakPassword

MIN_PASSWORD_LENGTH = 10
# argon2 is CPU- and memory-hard on purpose: at most this many run at once per process, so
# a burst of log-ins queues here instead of starving every other request of CPU.
MAX_CONCURRENT_HASHES = 2
# A log-in queued longer than this behind others is refused (429) instead of piling up.
HASH_QUEUE_S = 10.0


def new_token(prefix: str) -> str:
    """A random bearer credential (256 bits) with a readable prefix such as `ses_`."""
    return f"{prefix}{secrets.token_urlsafe(32)}"


def token_hash(token: str) -> str:
    """SHA-256 of a random token: what we store instead of the token.

    Random 256-bit tokens need no slow hash (no dictionary to guess from), and a fast
    hash keeps each authenticated request cheap.
    """
    return hashlib.sha256(token.encode()).hexdigest()


def token_matches(token: str, stored_hash: str) -> bool:
    """Constant-time comparison of a presented token with a stored hash."""
    return hmac.compare_digest(token_hash(token), stored_hash)


class Passwords:
    """argon2id hashing of account passwords (parameters injectable for fast tests).

    At most `max_concurrent` hashes or verifications run at once; `verify_nothing` spends
    the time of a verification for an unknown account, so timing tells no one which
    e-mail addresses have accounts.
    """

    def __init__(
        self,
        hasher: PasswordHasher | None = None,
        *,
        max_concurrent: int = MAX_CONCURRENT_HASHES,
        queue_s: float = HASH_QUEUE_S,
    ) -> None:
        self._hasher = hasher or PasswordHasher()
        self._slots = threading.BoundedSemaphore(max_concurrent)
        self._queue_s = queue_s
        self._dummy: str | None = None

    def hash(self, password: str) -> str:
        if len(password) < MIN_PASSWORD_LENGTH:
            raise WeakPassword("password", f"must be at least {MIN_PASSWORD_LENGTH} characters")
        if len(password) > 1024:
            raise WeakPassword("password", "must be at most 1024 characters")
        with self._slot():
            return self._hasher.hash(password)

    def verify(self, password_hash: str, password: str) -> bool:
        with self._slot():
            try:
                return self._hasher.verify(password_hash, password)
            except (VerificationError, InvalidHashError):
                return False

    def verify_nothing(self, password: str) -> None:
        """As long as `verify` takes, for an account that does not exist (always fails)."""
        if self._dummy is None:
            with self._slot():
                self._dummy = self._hasher.hash(secrets.token_urlsafe(16))
        self.verify(self._dummy, password)

    def needs_rehash(self, password_hash: str) -> bool:
        return self._hasher.check_needs_rehash(password_hash)

    def _slot(self) -> _Slot:
        if not self._slots.acquire(timeout=self._queue_s):
            raise Throttled("too many log-ins at once; try again shortly", 1.0)
        return _Slot(self._slots)

    @classmethod
    def fast(cls) -> Passwords:
        """Cheap argon2id parameters for tests and demo data only."""
        return cls(PasswordHasher(time_cost=1, memory_cost=1024, parallelism=1))


class _Slot:
    """A held hashing slot, released on exit."""

    def __init__(self, slots: threading.BoundedSemaphore) -> None:
        self._slots = slots

    def __enter__(self) -> None:
        return None

    def __exit__(self, *exc: object) -> None:
        self._slots.release()
