"""What the topology test (and bench/stack.py) drive: `appstore stack` as a subprocess, sellers
working over HTTP against every api process, connectors reporting over Kafka, webhook
subscriptions made over HTTP, and the measures of "everything before this moment is
processed"."""

from __future__ import annotations

import contextlib
import itertools
import json
import os
import random
import signal
import subprocess
import sys
import threading
import time
import uuid
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from uuid import UUID

import httpx
import psycopg
from kafka.admin import KafkaAdminClient
from kafka.consumer import KafkaConsumer
from kafka.errors import KafkaError
from kafka.producer.future import FutureRecordMetadata
from kafka.structs import TopicPartition

from consumers.producer import SyncEventPublisher
from domain.webhook import TOPICS
from tests.webhook_receiver import Received, Receiver

REPO = Path(__file__).resolve().parent.parent
PASSWORD = "correct horse battery staple"


class StackRun:
    """`python -m appstore stack …` in a process group of its own, read through its
    status file."""

    def __init__(self, folder: Path, database_url: str, kafka: str, *options: str) -> None:
        self.folder = folder
        self.status_file = folder / "status.json"
        self.output = folder / "stack.out"
        self.argv = [
            sys.executable, "-m", "appstore", "stack",
            "--database-url", database_url, "--kafka", kafka,
            "--logs", str(folder / "logs"), "--status-file", str(self.status_file),
            "--free-ports", *options,
        ]  # fmt: skip
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        with self.output.open("ab") as out:
            self.process = subprocess.Popen(
                self.argv, cwd=REPO, stdout=out, stderr=subprocess.STDOUT, start_new_session=True
            )

    def status(self) -> dict[str, Any]:
        try:
            return dict(json.loads(self.status_file.read_text()))
        except (OSError, ValueError):
            return {"ready": False, "processes": [], "projections": {}}

    def rows(self, service: str | None = None) -> list[dict[str, Any]]:
        return [
            row
            for row in self.status()["processes"]
            if service is None or row["service"] == service
        ]

    def row(self, name: str) -> dict[str, Any]:
        return next((r for r in self.rows() if r["name"] == name), {})

    def urls(self, service: str) -> list[str]:
        """The base URL of each process of a service with a readiness URL."""
        return [r["ready_url"].rsplit("/", 1)[0] for r in self.rows(service) if r["ready_url"]]

    def running(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def interrupt(self, timeout: float = 60) -> int:
        """Ctrl-C (SIGINT) to the stack; its exit code once everything stopped."""
        assert self.process is not None
        self.process.send_signal(signal.SIGINT)
        return self.process.wait(timeout=timeout)

    def kill_everything(self) -> None:
        """Last resort after a failed test: the stack and every process it started."""
        for row in self.rows():
            if row["pid"] and row["alive"]:
                with contextlib.suppress(ProcessLookupError, PermissionError):
                    os.killpg(row["pid"], signal.SIGKILL)
        if self.running():
            assert self.process is not None
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait(timeout=10)

    def log_tails(self, lines: int = 15) -> str:
        parts = [f"== stack\n{_tail(self.output, lines)}"]
        for log in sorted((self.folder / "logs").glob("*.log")):
            parts.append(f"== {log.name}\n{_tail(log, lines)}")
        return "\n".join(parts)


def _tail(path: Path, lines: int) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return ""


@dataclass(frozen=True)
class Ack:
    """A write the API acknowledged (2xx): the event it must have recorded, and where."""

    event: str  # e.g. "Installation.Renewed"
    aggregate_id: UUID
    position: int
    api: str


class Abandoned(Exception):
    """The journey cannot go on (an api died under it, an unexpected answer)."""


class SellerJourneys:
    """Sellers signing up, logging in, installing, authorizing, renewing and cancelling over
    HTTP on several threads; each request goes to the next api process in turn, and a refused
    connection (nothing sent) to the one after it."""

    def __init__(self, apis: list[str], app_ids: list[UUID], threads: int = 4) -> None:
        self.apis, self.app_ids = apis, app_ids
        self.acks: list[Ack] = []
        self.served: Counter[str] = Counter()  # answers per api process
        self.latencies: list[float] = []  # seconds per answered request
        self.failures: Counter[str] = Counter()
        self._turn = itertools.count()
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._threads = [
            threading.Thread(target=self._work, args=(n,), name=f"sellers-{n}", daemon=True)
            for n in range(threads)
        ]

    def start(self) -> None:
        for thread in self._threads:
            thread.start()

    def stop(self, timeout: float = 30) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join(timeout)
        assert not any(t.is_alive() for t in self._threads), "a seller thread did not stop"

    @property
    def requests(self) -> int:
        return sum(self.served.values())

    def _work(self, n: int) -> None:
        rng = random.Random(n)
        with httpx.Client(timeout=15) as client:
            while not self._stop.is_set():
                try:
                    self._journey(client, rng)
                except Abandoned:
                    time.sleep(0.05)

    def _journey(self, client: httpx.Client, rng: random.Random) -> None:
        email = f"seller-{uuid.uuid4().hex[:12]}@shop.example.com"
        body = {"role": "seller", "email": email, "password": PASSWORD, "name": "Load Seller"}
        account = self._write(client, "POST", "/v1/accounts", "Account.Registered", json=body)
        session = self._call(
            client, "POST", "/v1/sessions", json={"email": email, "password": PASSWORD}
        )
        auth = {"Authorization": f"Bearer {session['token']}"}
        for app_id in rng.sample(self.app_ids, 2):
            install = {
                "app_id": str(app_id), "duration": "30d",
                "contact_email": "ops@shop.example.com", "contact_phone": "+14155550101",
            }  # fmt: skip
            made = self._write(
                client,
                "POST",
                "/v1/installations",
                "Installation.Installed",
                json=install,
                headers=auth,
            )
            installation = made["id"]
            self._write(client, "POST", f"/v1/installations/{installation}/authorize",
                        "Installation.Authorized", headers=auth)  # fmt: skip
            if rng.random() < 0.5:
                self._write(client, "POST", f"/v1/me/apps/{installation}/renew",
                            "Installation.Renewed", json={"duration": "90d"}, headers=auth)  # fmt: skip
            if rng.random() < 0.4:
                self._write(client, "POST", f"/v1/me/apps/{installation}/cancel",
                            "Installation.Cancelled", headers=auth)  # fmt: skip
        assert account["id"]

    def _write(self, client: httpx.Client, method: str, path: str, event: str, **kw: Any) -> Any:
        body, api = self._request(client, method, path, **kw)
        with self._lock:
            self.acks.append(Ack(event, UUID(body["id"]), int(body["position"]), api))
        return body

    def _call(self, client: httpx.Client, method: str, path: str, **kw: Any) -> Any:
        return self._request(client, method, path, **kw)[0]

    def _request(self, client: httpx.Client, method: str, path: str, **kw: Any) -> tuple[Any, str]:
        first = next(self._turn)
        for attempt in range(len(self.apis)):
            api = self.apis[(first + attempt) % len(self.apis)]
            sent = time.perf_counter()
            try:
                answer = client.request(method, api + path, **kw)
            except httpx.ConnectError:
                self._count("refused (retried on the next api)")
                continue  # nothing was sent: safe to send elsewhere
            except httpx.HTTPError as error:
                self._count(f"lost in flight: {type(error).__name__}")
                raise Abandoned from None
            with self._lock:
                self.served[api] += 1
                self.latencies.append(time.perf_counter() - sent)
            if answer.status_code >= 300:
                self._count(f"{method} {path.split('/')[2]} → {answer.status_code}")
                raise Abandoned
            return answer.json(), api
        time.sleep(0.2)
        raise Abandoned

    def _count(self, what: str) -> None:
        with self._lock:
            self.failures[what] += 1


class ConnectorReports(threading.Thread):
    """Connectors reporting sync runs over Kafka at `rate` per second, round robin over
    installations: mostly failures (each counts once in an incident), some successes (they
    resolve), and every 20th a re-send of an earlier report (a retry: counts nothing)."""

    AREAS = ("orders", "products", "inventory")
    CODES = ("TIMEOUT", "SKU_NOT_FOUND", "RATE_LIMITED")

    def __init__(self, bootstrap: str, topic: str, installations: list[UUID], rate: float) -> None:
        super().__init__(name="connector-reports", daemon=True)
        self.publisher = SyncEventPublisher(bootstrap, topic=topic)
        self.installations, self.rate = installations, rate
        self.failures: Counter[UUID] = Counter()  # distinct failure reports per installation
        self.sent = self.resent = 0
        self.error: BaseException | None = None
        self._halt = threading.Event()
        self._futures: list[FutureRecordMetadata] = []

    def run(self) -> None:
        rng = random.Random(11)
        earlier: list[tuple[UUID, str, str, str]] = []
        started = time.monotonic()
        try:
            for n in itertools.count():
                if self._halt.is_set():
                    break
                delay = started + n / self.rate - time.monotonic()
                if delay > 0:
                    time.sleep(delay)
                installation = self.installations[n % len(self.installations)]
                area = rng.choice(self.AREAS)
                if n % 20 == 19 and earlier:
                    installation, event_id, area, code = rng.choice(earlier)
                    self._send(installation, event_id, area, code)
                    self.resent += 1
                elif n % 15 == 14:
                    send = self.publisher.publish_success
                    self._futures.append(send(installation, area=area, event_id=f"ok-{n}"))
                else:
                    code = rng.choice(self.CODES)
                    self._send(installation, f"run-{n}", area, code)
                    earlier.append((installation, f"run-{n}", area, code))
                    self.failures[installation] += 1
                self.sent += 1
            self.publisher.flush(timeout=60)
            for future in self._futures:
                future.get(timeout=30)  # raises if the broker refused one
        except BaseException as error:
            self.error = error
        finally:
            self.publisher.close(timeout=10)

    def _send(self, installation: UUID, event_id: str, area: str, code: str) -> None:
        self._futures.append(
            self.publisher.publish_failure(
                installation, area=area, error_code=code, event_id=event_id
            )
        )

    def finish(self, timeout: float = 90) -> None:
        self._halt.set()
        self.join(timeout)
        assert not self.is_alive(), "the connectors did not finish"
        assert self.error is None, f"producing failed: {self.error!r}"


def group_behind(bootstrap: str, topic: str, group: str, marks: dict[int, int]) -> int:
    """Messages before `marks` (partition → offset) the group has not committed yet."""
    admin = KafkaAdminClient(bootstrap_servers=bootstrap, request_timeout_ms=10_000)
    try:
        committed = admin.list_group_offsets(group).get(group, {})
    except KafkaError:  # no coordinator yet (a fresh broker): nothing committed
        committed = {}
    finally:
        admin.close()
    done = {tp.partition: meta.offset for tp, meta in committed.items() if tp.topic == topic}
    return sum(max(0, end - done.get(p, 0)) for p, end in marks.items())


def end_offsets(bootstrap: str, topic: str) -> dict[int, int]:
    """Each partition's end offset now."""
    consumer = KafkaConsumer(bootstrap_servers=bootstrap, request_timeout_ms=10_000)
    try:
        partitions = consumer.partitions_for_topic(topic) or set()
        ends = consumer.end_offsets([TopicPartition(topic, p) for p in partitions])
        return {tp.partition: offset for tp, offset in ends.items()}
    finally:
        consumer.close()


def subscribe_every_topic(
    api: str, email: str, apps: list[UUID], receiver: Receiver
) -> dict[str, str]:
    """The developer of `apps` (signing in with `email` and PASSWORD) subscribes each app to
    every topic over HTTP, at a path of its own on `receiver`: each path's signing secret."""
    secrets = {}
    with httpx.Client(base_url=api, timeout=15) as client:
        session = client.post("/v1/sessions", json={"email": email, "password": PASSWORD})
        assert session.status_code == 201, session.text
        auth = {"Authorization": f"Bearer {session.json()['token']}"}
        for n, app in enumerate(apps):
            path = f"app-{n}"
            body = {"url": receiver.url(path), "topics": list(TOPICS)}
            made = client.post(f"/v1/apps/{app}/webhooks", json=body, headers=auth)
            assert made.status_code == 201, made.text
            secrets[path] = made.json()["secret"]
    return secrets


class SignatureChecks(threading.Thread):
    """Each arrival at `receiver` checked within a moment, as a real receiver checks it:
    with the `standardwebhooks` library and the secret of its path. (The library refuses a
    timestamp more than 5 minutes from its clock, so checks at the end of a long run would
    refuse the first arrivals.)"""

    def __init__(self, receiver: Receiver, secrets: dict[str, str]) -> None:
        super().__init__(name="signature-checks", daemon=True)
        self.receiver, self.secrets = receiver, secrets
        self.verified: set[str] = set()  # webhook-ids with an arrival whose signature verifies
        self.refused: list[Received] = []  # arrivals whose signature does not
        self._checked = 0
        self._halt = threading.Event()

    def run(self) -> None:
        while not self._halt.wait(0.25):
            self._check()

    def _check(self) -> None:
        arrived = self.receiver.received[self._checked :]
        self._checked += len(arrived)
        for r in arrived:
            if r.verifies_with(self.secrets[r.path]):
                self.verified.add(r.message_id)
            else:
                self.refused.append(r)

    def finish(self) -> None:
        self._halt.set()
        self.join(timeout=30)
        assert not self.is_alive(), "the signature checks did not stop"
        self._check()


def deliveries_waiting(database_url: str, position: int) -> int:
    """Webhook deliveries of events up to `position` not delivered yet."""
    with psycopg.connect(database_url) as conn:
        row = conn.execute(
            "SELECT count(*) FROM webhook_deliveries WHERE position <= %s AND status <> %s",
            (position, "succeeded"),
        ).fetchone()
    return int(row[0]) if row else 0


def projections_behind(database_url: str, position: int) -> int:
    """How far the furthest-behind read model is from `position`."""
    with psycopg.connect(database_url) as conn:
        row = conn.execute("SELECT min(position) FROM projection_tracking").fetchone()
    return max(0, position - int(row[0] if row and row[0] is not None else 0))


def timed(condition: Callable[[], Any], timeout: float, what: str, interval: float = 0.2) -> float:
    """Seconds until `condition` holds (AssertionError after `timeout`)."""
    started = time.monotonic()
    while not condition():
        if time.monotonic() - started > timeout:
            raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}")
        time.sleep(interval)
    return time.monotonic() - started
