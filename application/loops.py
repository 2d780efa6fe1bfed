"""Background loops that never die silently: supervised, backed off, and reporting health.

A `SupervisedLoop` runs a step function in a thread until it is stopped (the projector, the
expiry sweeper, the in-process Kafka consumer, a webhook dispatcher). ANY exception a step
raises is caught and logged (one line; the traceback only for the first failure of a run,
and never for an unreachable store), then the step is tried again after an exponentially
growing, jittered delay with a cap. Each loop writes a `LoopHealth`: alive, last success,
last error, consecutive failures, and its lag when it reports one. `/readyz` and `/metrics`
read every registered loop (`Loops`), judged by one `ReadinessPolicy`:

- `stopped`: the loop (its thread) is not running;
- a blocked status its owner set (e.g. the consumer's `stalled` partition);
- `failing`: its last attempts failed, for longer than the loop's grace;
- `lagging`: its lag has stayed above `max_lag` for longer than `lag_seconds`;
- `ok` otherwise.
"""

from __future__ import annotations

import logging
import random
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from application.availability import unavailable_reason

log = logging.getLogger("appstore.loops")


@dataclass(frozen=True)
class ReadinessPolicy:
    """When a loop's lag makes it not ready: above `max_lag` for longer than `lag_seconds`."""

    max_lag: int = 1000
    lag_seconds: float = 30.0


@dataclass(frozen=True)
class Backoff:
    """Exponential backoff with jitter: `initial` doubled per failure, capped at `cap`."""

    initial: float = 0.1
    cap: float = 5.0

    def delay(self, failures: int, rand: Callable[[], float] = random.random) -> float:
        """Seconds to wait after the `failures`-th failure in a row (half of it random)."""
        base: float = min(self.cap, self.initial * 2.0 ** min(max(failures - 1, 0), 30))
        return base * (0.5 + rand() / 2)


class LoopHealth:
    """Thread-safe state of one loop, written by the loop, read by /readyz and /metrics."""

    def __init__(
        self,
        name: str,
        *,
        policy: ReadinessPolicy | None = None,
        failing_grace_s: float = 0.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.name = name
        self.policy = policy or ReadinessPolicy()
        self.failing_grace_s = failing_grace_s
        self._clock = clock
        self._lock = threading.Lock()
        self._alive = False
        self._last_success: float | None = None
        self._last_error: str | None = None
        self._failures = 0
        self._failing_since: float | None = None
        self._lag: int | None = None
        self._lag_above_since: float | None = None
        self._blocked: tuple[str, str] | None = None

    # --- written by the loop ---------------------------------------------------------------
    def started(self) -> None:
        with self._lock:
            self._alive = True

    def stopped(self) -> None:
        with self._lock:
            self._alive = False

    def succeeded(self) -> None:
        """An attempt went through: whatever failed before is over."""
        with self._lock:
            self._last_success = self._clock()
            self._failures = 0
            self._failing_since = None

    def failed(self, error: BaseException) -> None:
        """An attempt failed (it will be retried)."""
        with self._lock:
            self._last_error = f"{type(error).__name__}: {error}"[:500]
            self._failures += 1
            if self._failing_since is None:
                self._failing_since = self._clock()

    def report_lag(self, lag: int | None) -> None:
        """How far behind the loop is (events, messages), when it knows."""
        with self._lock:
            self._lag = lag
            if lag is None or lag <= self.policy.max_lag:
                self._lag_above_since = None
            elif self._lag_above_since is None:
                self._lag_above_since = self._clock()

    def block(self, status: str, detail: str) -> None:
        """Not ready for a reason of the owner's (e.g. `stalled`) until `unblock`."""
        with self._lock:
            self._blocked = (status, detail)

    def unblock(self) -> None:
        with self._lock:
            self._blocked = None

    # --- read ------------------------------------------------------------------------------
    def snapshot(self) -> dict[str, Any]:
        """`{name, status, ready, alive, consecutive_failures, last_error, last_success_age_s,
        failing_for_s, lag, lag_above_for_s, detail}`; `ready` only for status `ok`."""
        with self._lock:
            now = self._clock()
            alive, failures, last_error = self._alive, self._failures, self._last_error
            failing_for = None if self._failing_since is None else now - self._failing_since
            above_for = None if self._lag_above_since is None else now - self._lag_above_since
            success_age = None if self._last_success is None else now - self._last_success
            lag, blocked = self._lag, self._blocked
        detail = None
        if not alive:
            status = "stopped"
        elif blocked is not None:
            status, detail = blocked
        elif failing_for is not None and failing_for >= self.failing_grace_s:
            status = "failing"
        elif above_for is not None and above_for >= self.policy.lag_seconds:
            status = "lagging"
        else:
            status = "ok"
        return {
            "name": self.name,
            "status": status,
            "ready": status == "ok",
            "alive": alive,
            "consecutive_failures": failures,
            "last_error": last_error,
            "last_success_age_s": _rounded(success_age),
            "failing_for_s": _rounded(failing_for),
            "lag": lag,
            "lag_above_for_s": _rounded(above_for),
            "detail": detail,
        }


def _rounded(seconds: float | None) -> float | None:
    return None if seconds is None else round(seconds, 3)


class Loops:
    """Every background loop of a process, as /readyz and /metrics see them."""

    def __init__(self) -> None:
        self._healths: dict[str, LoopHealth] = {}

    def register(self, health: LoopHealth) -> LoopHealth:
        self._healths[health.name] = health
        return health

    def __iter__(self) -> Any:
        return iter(list(self._healths.values()))

    def __contains__(self, name: object) -> bool:
        return name in self._healths

    def snapshot(self) -> dict[str, dict[str, Any]]:
        """Each loop's snapshot, by name."""
        return {health.name: health.snapshot() for health in self}


# A step returns True when more work is waiting (run again at once), False to idle.
Step = Callable[[], bool]


class SupervisedLoop:
    """Runs `step` until stopped; survives any error with backoff; reports to `health`."""

    def __init__(
        self,
        name: str,
        step: Step,
        *,
        interval: float,
        health: LoopHealth | None = None,
        backoff: Backoff | None = None,
        wake: threading.Event | None = None,
        on_stop: Callable[[], None] | None = None,
    ) -> None:
        """`interval`: seconds to idle between steps with nothing to do; `wake`, when set
        by someone, ends that idle wait at once (e.g. a write in this process); `on_stop`
        finishes what a step left under way once the loop is told to stop."""
        self.name = name
        self.step = step
        self.interval = interval
        self.health = health or LoopHealth(name)
        self.backoff = backoff or Backoff()
        self.wake = wake
        self.on_stop = on_stop
        self._traced: set[type[BaseException]] = set()  # errors shown in full this run

    def run(self, stop: threading.Event) -> None:
        """Blocks until `stop` is set."""
        self.health.started()
        failures = 0
        try:
            while not stop.is_set():
                try:
                    busy = self.step()
                except Exception as error:
                    failures += 1
                    self.health.failed(error)
                    delay = self.backoff.delay(failures)
                    self._log_failure(error, failures, delay)
                    stop.wait(delay)
                    continue
                if failures:
                    log.info("%s recovered after %d failed attempts", self.name, failures)
                    failures = 0
                    self._traced.clear()
                self.health.succeeded()
                if not busy:
                    self._idle(stop)
        finally:
            if self.on_stop is not None:
                try:
                    self.on_stop()
                except Exception as error:  # stopping must not hide why the loop ended
                    log.warning("%s did not stop cleanly: %s", self.name, error, exc_info=error)
            self.health.stopped()

    def start(self, stop: threading.Event) -> threading.Thread:
        """Runs the loop in a daemon thread named after it."""
        thread = threading.Thread(target=self.run, args=(stop,), name=self.name, daemon=True)
        thread.start()
        return thread

    def _idle(self, stop: threading.Event) -> None:
        if self.wake is None:
            stop.wait(self.interval)
            return
        self.wake.wait(self.interval)
        self.wake.clear()

    def _log_failure(self, error: Exception, failures: int, delay: float) -> None:
        reason = unavailable_reason(error)
        what = f"store unavailable ({reason})" if reason else f"{type(error).__name__}: {error}"
        message = "%s failed (attempt %d), retrying in %.1fs: %s"
        # A bug shows its traceback once per run of failures; an outage never does.
        show_trace = reason is None and type(error) not in self._traced
        self._traced.add(type(error))
        log.warning(message, self.name, failures, delay, what[:300], exc_info=show_trace)
