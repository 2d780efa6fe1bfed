"""Sealing secrets the store must be able to use again (webhook signing secrets).

Standard Webhooks signs with the secret itself, so it cannot be stored as a hash like
passwords and client secrets. It is stored sealed instead: Fernet (AES-128-CBC + HMAC)
under a key the event store never sees, so an export of the log, a backup or an audit
screen shows nothing usable.
"""

from __future__ import annotations

import base64
import hashlib

from cryptography.fernet import Fernet, InvalidToken


class SecretUnreadable(Exception):
    """A sealed secret that this key cannot open (the key was changed or lost)."""


class SecretBox:
    """Seals and opens short secrets with one key."""

    def __init__(self, passphrase: str) -> None:
        # Any passphrase becomes a 32-byte Fernet key; the label keeps it apart from the
        # same passphrase's other uses (CSRF signing).
        digest = hashlib.sha256(b"appstore webhook secrets\0" + passphrase.encode()).digest()
        self._fernet = Fernet(base64.urlsafe_b64encode(digest))

    def seal(self, secret: str) -> str:
        """The secret, encrypted and authenticated, as text for an event."""
        return self._fernet.encrypt(secret.encode()).decode()

    def open(self, sealed: str) -> str:
        """The secret a `seal` call was given."""
        try:
            return self._fernet.decrypt(sealed.encode()).decode()
        except InvalidToken:
            raise SecretUnreadable("the webhook secret key cannot open this secret") from None
