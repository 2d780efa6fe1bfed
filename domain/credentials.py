"""Secrets the store hands out (session tokens, client secrets) and how they are kept: hashed."""

from __future__ import annotations

import hashlib
import hmac
import secrets

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError

from domain.errors import WeakPassword

MIN_PASSWORD_LENGTH = 10


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
    """argon2id hashing of account passwords (parameters injectable for fast tests)."""

    def __init__(self, hasher: PasswordHasher | None = None) -> None:
        self._hasher = hasher or PasswordHasher()

    def hash(self, password: str) -> str:
        if len(password) < MIN_PASSWORD_LENGTH:
            raise WeakPassword("password", f"must be at least {MIN_PASSWORD_LENGTH} characters")
        if len(password) > 1024:
            raise WeakPassword("password", "must be at most 1024 characters")
        return self._hasher.hash(password)

    def verify(self, password_hash: str, password: str) -> bool:
        try:
            return self._hasher.verify(password_hash, password)
        except (VerificationError, InvalidHashError):
            return False

    def needs_rehash(self, password_hash: str) -> bool:
        return self._hasher.check_needs_rehash(password_hash)

    @classmethod
    def fast(cls) -> Passwords:
        """Cheap argon2id parameters for tests and demo data only."""
        return cls(PasswordHasher(time_cost=1, memory_cost=1024, parallelism=1))
