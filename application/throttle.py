"""Log-in throttling: failed attempts counted per account, per client address and per both,
in a sliding window; past a limit, every attempt of that key is refused (429 with
Retry-After) without checking the password, the right one included.

One `LoginThrottle` per store (`Store.logins`), used by `accounts.start_session`, which the
API (`POST /v1/sessions`), the sign-in page and the OAuth log-in step all call. It counts in
the memory of one process: with N processes an attacker gets up to N times the attempts
(docs/operations.md).
"""

from __future__ import annotations

import math
import threading
from collections import OrderedDict, deque
from dataclasses import dataclass
from datetime import datetime, timedelta

from domain.clock import Clock
from domain.errors import Throttled

WINDOW = timedelta(minutes=15)
# Failures allowed per window: one address trying one account, one account from anywhere
# (higher: a stranger's failures must not lock its owner out quickly), one address trying
# any accounts (credential stuffing).
ACCOUNT_AT_ADDRESS = 5
ACCOUNT = 20
ADDRESS = 50
MAX_KEYS = 100_000  # a bound on memory, oldest keys forgotten first


@dataclass(frozen=True)
class Limits:
    window: timedelta = WINDOW
    account_at_address: int = ACCOUNT_AT_ADDRESS
    account: int = ACCOUNT
    address: int = ADDRESS


class LoginThrottle:
    """Thread-safe counts of failed log-ins by key, on an injectable clock."""

    def __init__(self, clock: Clock, limits: Limits | None = None) -> None:
        self.clock = clock
        self.limits = limits or Limits()
        self._failures: OrderedDict[tuple[str, ...], deque[datetime]] = OrderedDict()
        self._lock = threading.Lock()

    def _keys(self, email: str, address: str | None) -> list[tuple[tuple[str, ...], int]]:
        keys: list[tuple[tuple[str, ...], int]] = [(("account", email), self.limits.account)]
        if address:
            keys.append((("pair", email, address), self.limits.account_at_address))
            keys.append((("address", address), self.limits.address))
        return keys

    def check(self, email: str, address: str | None) -> None:
        """Raises Throttled when this account or address has failed too often lately."""
        now = self.clock.now()
        wait = 0.0
        with self._lock:
            for key, limit in self._keys(email, address):
                times = self._recent(key, now)
                if times is not None and len(times) >= limit:
                    wait = max(wait, (times[-limit] + self.limits.window - now).total_seconds())
        if wait > 0:
            raise Throttled("too many failed log-ins; try again later", retry_after=math.ceil(wait))

    def failed(self, email: str, address: str | None) -> None:
        now = self.clock.now()
        with self._lock:
            for key, _ in self._keys(email, address):
                times = self._recent(key, now)
                if times is None:
                    times = self._failures[key] = deque()
                times.append(now)
                self._failures.move_to_end(key)
            while len(self._failures) > MAX_KEYS:
                self._failures.popitem(last=False)

    def succeeded(self, email: str, address: str | None) -> None:
        """The account's own counts start over (its address's do not)."""
        with self._lock:
            self._failures.pop(("account", email), None)
            if address:
                self._failures.pop(("pair", email, address), None)

    def _recent(self, key: tuple[str, ...], now: datetime) -> deque[datetime] | None:
        times = self._failures.get(key)
        if times is None:
            return None
        while times and times[0] <= now - self.limits.window:
            times.popleft()
        return times
