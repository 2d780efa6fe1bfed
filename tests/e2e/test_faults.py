"""Faults injected into a running `appstore serve` (a real process on a PostgreSQL cluster of
this module's own, with the Kafka consumer in-process): PostgreSQL stopped for 20 s under
load, connections terminated with pg_terminate_backend, a role made read-only or denied.
The store answers 503 with Retry-After within ~5 s (never a 500, never a hang), logs no
traceback, /readyz says so within a second, and everything recovers without a restart:
no acknowledged write is lost, the projector and the consumer keep running."""

from __future__ import annotations

import itertools
import os
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest

from application.store import Store
from appstore.bootstrap import build_store
from appstore.settings import Settings
from consumers.producer import SyncEventPublisher
from domain.account import Account
from tests.consumer_support import (
    create_topic,
    failures_recorded,
    kafka_bootstrap,
    unique_topic,
    wait_until,
)
from tests.postgres_cluster import PrivatePostgres, can_run_postgres

__all__ = ["kafka_bootstrap"]  # a fixture, imported for pytest

pytestmark = [pytest.mark.postgres, pytest.mark.kafka, pytest.mark.slow]

REPO = Path(__file__).resolve().parents[2]
PASSWORD = "correct horse battery staple"
OUTAGE_S = 20.0
# The bound is ~5 s (two attempts of the 2 s pool timeout); CI machines are shared.
MAX_503_S = 6.0
_emails = itertools.count(1)


@pytest.fixture(scope="module")
def cluster() -> Iterator[PrivatePostgres]:
    """A cluster of this module's own: the tests stop it and change its roles."""
    if not can_run_postgres():
        pytest.skip("needs the PostgreSQL server binaries (scripts/postgres.sh)")
    # Not under pytest's tmp_path: as root, the cluster runs as `postgres`, which must reach it.
    directory = Path(tempfile.mkdtemp(prefix="appstore-faults-pg-"))
    os.chmod(directory, 0o755)
    cluster = PrivatePostgres(directory)
    try:
        cluster.start()
        cluster.sql("CREATE ROLE app LOGIN")
        yield cluster
    finally:
        cluster.close()
        shutil.rmtree(directory, ignore_errors=True)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Serve:
    """`appstore serve` as a process of its own."""

    def __init__(self, database_url: str, log: Path, **env: str) -> None:
        self.port = _free_port()
        self.base = f"http://127.0.0.1:{self.port}"
        self.log = log
        environment = dict(os.environ)
        environment.update(
            APPSTORE_DATABASE_URL=database_url,
            APPSTORE_FAST_PASSWORD_HASHING="true",
            APPSTORE_SERVE_WORKERS="1",
            **env,
        )
        command = [sys.executable, "-c", "from appstore.cli import main; main()", "serve"]
        with log.open("wb") as out:
            self.process = subprocess.Popen(
                [*command, "--port", str(self.port)],
                cwd=REPO,
                env=environment,
                stdout=out,
                stderr=out,
            )
        self.http = httpx.Client(base_url=self.base, timeout=30)
        wait_until(self.ready, 60, "appstore serve ready", 0.2)

    def ready(self) -> bool:
        try:
            return self.http.get("/readyz", timeout=2).status_code == 200
        except httpx.HTTPError:
            assert self.process.poll() is None, self.log.read_text()[-3000:]
            return False

    def stop(self) -> str:
        self.http.close()
        self.process.send_signal(signal.SIGTERM)
        try:
            self.process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(timeout=10)
        return self.log.read_text()

    def account(self, role: str) -> dict[str, str]:
        email = f"{role}{next(_emails)}-{uuid.uuid4().hex[:6]}@example.com"
        body = {"role": role, "email": email, "password": PASSWORD, "name": "N"}
        assert self.http.post("/v1/accounts", json=body).status_code == 201
        login = self.http.post("/v1/sessions", json={"email": email, "password": PASSWORD})
        assert login.status_code == 201, login.text
        return {"Authorization": f"Bearer {login.json()['token']}"}

    def installation(self) -> tuple[dict[str, str], str]:
        """A seller's active installation of a new app: (seller headers, installation id)."""
        from tests import factories as f

        developer, seller = self.account("developer"), self.account("seller")
        listed = self.http.post("/v1/apps", json=f.listing(), headers=developer)
        assert listed.status_code == 201, listed.text
        body = {
            "app_id": listed.json()["id"],
            "duration": "30d",
            "contact_email": "ops@shop.example.com",
            "contact_phone": "+14155550101",
        }
        installed = self.http.post("/v1/installations", json=body, headers=seller)
        assert installed.status_code == 201, installed.text
        installation_id = installed.json()["id"]
        authorized = self.http.post(
            f"/v1/installations/{installation_id}/authorize", headers=seller
        )
        assert authorized.status_code == 200, authorized.text
        return seller, installation_id


@dataclass
class Sample:
    kind: str
    started: float  # time.monotonic()
    seconds: float
    status: int  # 0: no answer (connection error or client timeout)
    retry_after: str | None = None
    body: Any = None


@dataclass
class Load:
    """Client threads calling `serve` in a loop until stopped; every answer is recorded."""

    serve: Serve
    samples: list[Sample] = field(default_factory=list)
    stop: threading.Event = field(default_factory=threading.Event)
    threads: list[threading.Thread] = field(default_factory=list)

    def run(
        self, kind: str, request: Callable[[httpx.Client], httpx.Response], pause: float
    ) -> None:
        def loop() -> None:
            with httpx.Client(base_url=self.serve.base, timeout=30) as client:
                while not self.stop.is_set():
                    started = time.monotonic()
                    try:
                        answer = request(client)
                        body = answer.json() if answer.content else None
                        sample = Sample(
                            kind,
                            started,
                            time.monotonic() - started,
                            answer.status_code,
                            answer.headers.get("retry-after"),
                            body,
                        )
                    except (httpx.HTTPError, ValueError):
                        sample = Sample(kind, started, time.monotonic() - started, 0)
                    self.samples.append(sample)
                    self.stop.wait(pause)

        thread = threading.Thread(target=loop, name=f"load-{kind}", daemon=True)
        thread.start()
        self.threads.append(thread)

    def finish(self) -> None:
        self.stop.set()
        for thread in self.threads:
            thread.join(40)
        assert not any(t.is_alive() for t in self.threads)

    def of(self, kind: str, since: float = 0.0, until: float = float("inf")) -> list[Sample]:
        return [s for s in self.samples if s.kind == kind and since <= s.started < until]


def _sign_up(client: httpx.Client) -> httpx.Response:
    email = f"load{next(_emails)}-{uuid.uuid4().hex[:8]}@example.com"
    body = {"role": "seller", "email": email, "password": PASSWORD, "name": "Load"}
    return client.post("/v1/accounts", json=body)


def _no_500s(samples: list[Sample]) -> None:
    wrong = [(s.kind, s.status, s.body) for s in samples if s.status >= 500 and s.status != 503]
    assert not wrong, wrong[:5]
    unanswered = [s for s in samples if s.status == 0]
    assert not unanswered, f"{len(unanswered)} requests got no answer"
    assert all(s.retry_after for s in samples if s.status == 503 and s.kind != "ready")


def _store(database_url: str) -> Store:
    return build_store(Settings(database_url=database_url, fast_password_hashing=True))


def test_postgresql_stopped_for_20_s_under_load(
    cluster: PrivatePostgres, kafka_bootstrap: str, tmp_path: Path
) -> None:
    database_url = cluster.new_database()
    topic = unique_topic("faults")
    create_topic(kafka_bootstrap, topic, 2)
    serve = Serve(
        database_url,
        tmp_path / "serve.log",
        APPSTORE_KAFKA_BOOTSTRAP_SERVERS=kafka_bootstrap,
        APPSTORE_SYNC_EVENTS_TOPIC=topic,
        APPSTORE_CONSUMER_GROUP_ID=unique_topic("group"),
    )
    reports = 30
    try:
        _, installation_id = serve.installation()
        wait_until(lambda: serve.http.get("/readyz").json().get("consumer"), 30, "the consumer")
        load = Load(serve)
        for _ in range(3):
            load.run("write", _sign_up, 0.05)
        load.run("read", lambda c: c.get("/v1/apps"), 0.1)
        load.run("ready", lambda c: c.get("/readyz"), 0.25)
        time.sleep(3)

        cluster.stop()
        down = time.monotonic()
        publisher = SyncEventPublisher(kafka_bootstrap, topic=topic)
        for n in range(reports):  # connectors keep reporting meanwhile
            publisher.publish_failure(
                uuid.UUID(installation_id), area="orders", error_code="E", event_id=f"r{n}"
            )
        publisher.flush(timeout=30)
        publisher.close(timeout=10)
        time.sleep(max(0.0, OUTAGE_S - (time.monotonic() - down)))
        resuming = time.monotonic()  # PostgreSQL may accept connections before resume returns
        cluster.resume()
        up = time.monotonic()
        wait_until(serve.ready, 30, "/readyz 200 after the outage", 0.2)
        recovered = time.monotonic() - up
        time.sleep(3)  # writes go on after the recovery
        load.finish()
    finally:
        log = serve.stop()

    samples = load.samples
    _no_500s(samples)
    during = [s for s in samples if down + 1 <= s.started and s.started + s.seconds <= resuming]
    failed = [s for s in during if s.kind in ("write", "read")]
    assert failed and all(s.status == 503 for s in failed), {s.status for s in failed}
    slowest = max(s.seconds for s in failed)
    assert slowest <= MAX_503_S, f"a 503 took {slowest:.1f}s"
    readiness = [s for s in during if s.kind == "ready"]
    assert readiness and all(s.status == 503 for s in readiness)
    assert max(s.seconds for s in readiness) < 1.0
    after = load.of("write", since=up + recovered)
    assert after and all(s.status == 201 for s in after)
    print(
        f"\noutage: {len(failed)} calls answered 503, p50 "
        f"{statistics.median(s.seconds for s in failed):.2f}s, max {slowest:.2f}s; /readyz "
        f"max {max(s.seconds for s in readiness) * 1000:.0f} ms; ready again "
        f"{recovered:.1f}s after PostgreSQL"
    )

    # No acknowledged write is lost; the projector and the consumer lived through it.
    acknowledged = [s.body["id"] for s in samples if s.kind == "write" and s.status == 201]
    store = _store(database_url)
    try:
        missing = [a for a in acknowledged if store.load(uuid.UUID(a), Account) is None]
        assert not missing, f"{len(missing)} of {len(acknowledged)} acknowledged sign-ups lost"
        wait_until(
            lambda: failures_recorded(store, [uuid.UUID(installation_id)]) == reports,
            60,
            "every report sent during the outage applied",
            0.5,
        )
    finally:
        store.close()
    assert "Traceback" not in log, log[log.index("Traceback") - 500 :][:3000]
    assert "store unavailable (unreachable)" in log


def test_terminated_connections_are_survived(cluster: PrivatePostgres, tmp_path: Path) -> None:
    """Issue 10 #1: after a pg_terminate_backend sweep the projector died for good."""
    serve = Serve(cluster.new_database(), tmp_path / "serve.log")
    try:
        seller, installation_id = serve.installation()
        load = Load(serve)
        load.run("read", lambda c: c.get("/v1/me/apps", headers=seller), 0.02)
        load.run("write", _sign_up, 0.05)
        time.sleep(1)  # every pool warm
        for _ in range(3):
            swept = cluster.sql(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                "WHERE backend_type = 'client backend' AND pid <> pg_backend_pid()"
            )
            assert swept
            time.sleep(1)
        load.finish()
        _no_500s(load.samples)
        renewed = serve.http.post(
            f"/v1/me/apps/{installation_id}/renew", json={"duration": "90d"}, headers=seller
        )
        assert renewed.status_code == 200, renewed.text
        position = renewed.headers["X-Appstore-Position"]
        mine = serve.http.get(
            "/v1/me/apps", headers={**seller, "X-Appstore-Min-Position": position}
        )
        assert "X-Appstore-Stale" not in mine.headers
        (item,) = mine.json()["items"]
        assert item["expires_at"] == renewed.json()["expires_at"]
        ready = serve.http.get("/readyz").json()
        assert ready["status"] == "ok" and ready["loops"]["projector"]["alive"]
    finally:
        log = serve.stop()
    assert "Exception in thread" not in log
    assert "Traceback" not in log


def test_a_read_only_or_denied_role_is_a_503_and_recovers(
    cluster: PrivatePostgres, tmp_path: Path
) -> None:
    database_url = cluster.new_database(owner="app")
    database = database_url.rsplit("/", 1)[1]
    serve = Serve(database_url, tmp_path / "serve.log")

    def reconnect() -> None:  # role settings apply to new sessions
        cluster.sql("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE usename = 'app'")

    def sign_up_answer() -> httpx.Response:
        started = time.monotonic()
        answer = _sign_up(serve.http)
        assert time.monotonic() - started <= MAX_503_S
        return answer

    try:
        assert sign_up_answer().status_code == 201
        cluster.sql(
            f'ALTER ROLE app IN DATABASE "{database}" SET default_transaction_read_only = on'
        )
        reconnect()
        refused = wait_until(
            lambda: (a := sign_up_answer()).status_code == 503 and a, 20, "a read-only 503"
        )
        assert "read-only" in refused.json()["detail"] and refused.headers["retry-after"]
        assert serve.http.get("/v1/apps").status_code == 200  # reads still work
        cluster.sql(f'ALTER ROLE app IN DATABASE "{database}" RESET default_transaction_read_only')
        reconnect()
        wait_until(lambda: sign_up_answer().status_code == 201, 20, "writable again")

        # Privileges are checked per statement: no reconnect needed.
        cluster.sql("REVOKE INSERT ON appstore_events FROM app", database)
        denied = sign_up_answer()
        assert denied.status_code == 503, denied.text
        assert "permission denied" in denied.json()["detail"]
        cluster.sql("GRANT INSERT ON appstore_events TO app", database)
        assert sign_up_answer().status_code == 201
    finally:
        log = serve.stop()
    assert "Traceback" not in log
