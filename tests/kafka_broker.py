"""A real Apache Kafka broker (KRaft, single node) for tests, via ``kafka/broker.sh``.

Typical use from ``conftest.py`` (session-scoped, one broker for the whole run)::

    import pytest
    from tests.kafka_broker import KafkaBroker   # or: from kafka_broker import ...

    @pytest.fixture(scope="session")
    def kafka_broker(tmp_path_factory):
        broker = KafkaBroker(tmp_path_factory.mktemp("kafka"))
        broker.start()          # blocks until a produce/consume round trip works
        yield broker
        broker.stop()

    def test_something(kafka_broker):
        producer = KafkaProducer(bootstrap_servers=kafka_broker.bootstrap_servers)

``KafkaBroker`` is also a context manager (``with KafkaBroker(d) as b: ...``).

If the environment variable ``APPSTORE_TEST_KAFKA_BOOTSTRAP`` is set (e.g.
``127.0.0.1:9092``), that existing broker is used instead: ``start()`` and
``stop()`` do nothing and ``restart()`` raises :class:`RestartUnsupported`
(``KafkaBroker(d, use_env=False)`` gets a private broker that can restart).

The jars come from ``kafka/broker.sh fetch`` (run once; ``start()`` fetches
them itself if they are missing). The readiness check in ``broker.sh`` runs
with the same Python interpreter as the tests, which must have kafka-python.
"""

from __future__ import annotations

import atexit
import contextlib
import os
import subprocess
import sys
from pathlib import Path

__all__ = [
    "BROKER_SH",
    "ENV_BOOTSTRAP",
    "KafkaBroker",
    "KafkaBrokerError",
    "RestartUnsupported",
]

ENV_BOOTSTRAP = "APPSTORE_TEST_KAFKA_BOOTSTRAP"
BROKER_SH = Path(__file__).resolve().parent.parent / "kafka" / "broker.sh"

# Upper bounds for the script itself; broker.sh has its own (90 s start, 30 s stop).
_START_TIMEOUT_S = 600  # includes a first-time jar download
_STOP_TIMEOUT_S = 90


class KafkaBrokerError(RuntimeError):
    """broker.sh failed; the message carries its stderr (with the broker log tail)."""


class RestartUnsupported(KafkaBrokerError):
    """restart() on an external broker given by APPSTORE_TEST_KAFKA_BOOTSTRAP."""


class KafkaBroker:
    def __init__(self, workdir: str | os.PathLike[str], *, use_env: bool = True) -> None:
        """``use_env=False`` ignores APPSTORE_TEST_KAFKA_BOOTSTRAP and always runs a
        private broker (e.g. for a test that must restart it)."""
        self.workdir = Path(workdir)
        self.external_bootstrap = (os.environ.get(ENV_BOOTSTRAP) or None) if use_env else None
        self._bootstrap: str | None = self.external_bootstrap
        self._atexit_registered = False

    @property
    def external(self) -> bool:
        """True when an existing broker from APPSTORE_TEST_KAFKA_BOOTSTRAP is used."""
        return self.external_bootstrap is not None

    @property
    def bootstrap_servers(self) -> str:
        """``host:port`` to hand to kafka-python clients."""
        if self._bootstrap is None:
            raise KafkaBrokerError("broker not started; call start() first")
        return self._bootstrap

    def _run(self, command: str, timeout: float) -> str:
        env = dict(os.environ)
        # The readiness check needs kafka-python: use the interpreter running the tests.
        env.setdefault("PYTHON", sys.executable)
        try:
            proc = subprocess.run(
                ["bash", str(BROKER_SH), command, str(self.workdir)],
                stdin=subprocess.DEVNULL,
                capture_output=True,
                text=True,
                env=env,
                timeout=timeout,
            )
        except subprocess.TimeoutExpired as exc:
            raise KafkaBrokerError(f"broker.sh {command} timed out after {timeout}s") from exc
        if proc.returncode != 0:
            raise KafkaBrokerError(
                f"broker.sh {command} {self.workdir} failed (exit {proc.returncode}):\n"
                f"{proc.stderr}"
            )
        return proc.stdout.strip()

    def start(self) -> str:
        """Start a fresh broker in ``workdir``; returns the bootstrap address."""
        if self.external:
            return self.bootstrap_servers
        self.workdir.mkdir(parents=True, exist_ok=True)
        if not self._atexit_registered:
            # Safety net: never leave a JVM behind if the fixture teardown is skipped.
            atexit.register(self._stop_at_exit)
            self._atexit_registered = True
        out = self._run("start", _START_TIMEOUT_S)
        self._bootstrap = out.splitlines()[-1].strip() if out else self._read_bootstrap()
        return self._bootstrap

    def stop(self) -> None:
        """Stop the broker (SIGTERM, then SIGKILL after a grace period). Idempotent."""
        if self.external:
            return
        self._run("stop", _STOP_TIMEOUT_S)

    def restart(self) -> str:
        """Stop and start again on the same ports and data (data survives)."""
        if self.external:
            raise RestartUnsupported(
                "cannot restart the external broker given by "
                f"{ENV_BOOTSTRAP}={self.external_bootstrap}"
            )
        out = self._run("restart", _START_TIMEOUT_S + _STOP_TIMEOUT_S)
        self._bootstrap = out.splitlines()[-1].strip() if out else self._read_bootstrap()
        return self._bootstrap

    def _stop_at_exit(self) -> None:
        if (self.workdir / "broker.pid").exists():
            with contextlib.suppress(Exception):
                self._run("stop", _STOP_TIMEOUT_S)

    @property
    def log_path(self) -> Path:
        return self.workdir / "broker.log"

    def _read_bootstrap(self) -> str:
        return (self.workdir / "bootstrap").read_text().strip()

    def __enter__(self) -> KafkaBroker:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def __repr__(self) -> str:
        where = "external" if self.external else str(self.workdir)
        return f"KafkaBroker({where}, bootstrap={self._bootstrap!r})"
