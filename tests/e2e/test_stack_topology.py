"""The compose topology as `appstore stack` runs it, on the real PostgreSQL and Kafka, under a
mixed load, with one process of each long-running service SIGKILLed (the stack restarts
each after a few seconds, as compose's `restart: unless-stopped` would): an api process and
a dispatcher at once, then a projector, then a consumer.

Sellers sign up, install, authorize, renew and cancel over HTTP against both api processes;
connectors report sync runs over Kafka for several installations; every app is subscribed
(over HTTP) to every webhook topic at a receiver in this test, which refuses everything
(503) for a few seconds once. Afterwards: every acknowledged write is in the event log at
the position it answered, every report counted exactly once, no installation in two states,
read models equal to a fresh `appstore replay`; every delivery the delivery log holds
arrived at least once with a valid Standard Webhooks signature, none failed, each
acknowledged authorization, renewal and cancellation has exactly one, and a refused one came
again with the same webhook-id; `/readyz` 200 on every process (api, projectors, consumers,
dispatchers), and Ctrl-C stops everything with exit code 0.

compose.yaml runs one api process of 4 uvicorn workers; on these 2-core machines the test
runs 2 api processes of 1 worker each (so one can be killed while the other serves) next to
compose's 2 projectors, 3 consumers and 2 dispatchers. The dispatchers get a short POST
timeout and small batches (`WEBHOOK_ENV`): a SIGKILLed dispatcher's claims wait for their
lease to end (2 × rounds per batch × timeout + 5 s), 13 s here instead of compose's 265 s.
"""

from __future__ import annotations

import functools
import json
import os
import signal
import subprocess
import sys
import threading
import time
import uuid
from collections import Counter
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any
from uuid import UUID

import httpx
import pytest
import sqlalchemy as sa

from application import accounts, installations
from application.store import Store
from appstore.bootstrap import build_store
from appstore.settings import Settings
from domain.webhook import message_id
from projections.incidents import incidents
from projections.my_apps import installations as my_apps_rows
from projections.read_side import build_projector, snapshot
from projections.webhook_deliveries import deliveries
from tests import factories as f
from tests.consumer_support import failures_recorded, kafka_bootstrap
from tests.stack_support import (
    PASSWORD,
    REPO,
    Ack,
    ConnectorReports,
    SellerJourneys,
    SignatureChecks,
    StackRun,
    deliveries_waiting,
    end_offsets,
    group_behind,
    projections_behind,
    subscribe_every_topic,
    timed,
)
from tests.webhook_receiver import Received, Receiver

__all__ = ["kafka_bootstrap"]  # a fixture, imported for pytest

pytestmark = [pytest.mark.kafka, pytest.mark.postgres, pytest.mark.slow]

API_PROCESSES = 2
RESTART_DELAY = 3.0
LOAD_SECONDS = 40.0  # at least; the load goes on until every kill has recovered
SETTLE = 4.0  # load before the first kill, and between kills
REPORTS_PER_SECOND = 60.0
RECEIVER_DOWN = 3.0  # seconds the webhook receiver answers 503 to everything, once
WEBHOOK_ENV = {
    "APPSTORE_WEBHOOKS_ALLOW_LOOPBACK": "true",  # the receiver is this test, on 127.0.0.1
    "APPSTORE_WEBHOOKS_TIMEOUT": "2",
    "APPSTORE_WEBHOOKS_BATCH_SIZE": "16",  # 2 rounds of 8 POSTs: a lease of 13 s
    "APPSTORE_WEBHOOKS_FIRST_RETRY": "1",
}
TOPIC_OF = {
    "Installation.Authorized": "installation.authorized",
    "Installation.Renewed": "installation.renewed",
    "Installation.Cancelled": "installation.cancelled",
}


def test_the_compose_topology_under_load_survives_a_sigkill_of_each_process(
    postgres_url: str, kafka_bootstrap: str, tmp_path: Path
) -> None:
    began = time.monotonic()
    topic, group = f"sync-{uuid.uuid4().hex[:8]}", f"group-{uuid.uuid4().hex[:8]}"
    stack = StackRun(
        tmp_path, postgres_url, kafka_bootstrap,
        "--scale", f"api={API_PROCESSES}", "--workers", "1",
        "--restart-delay", str(RESTART_DELAY), "--grace", "20",
        "--env", f"APPSTORE_SYNC_EVENTS_TOPIC={topic}",
        "--env", f"APPSTORE_CONSUMER_GROUP_ID={group}",
        "--env", "APPSTORE_FAST_PASSWORD_HASHING=true",
        *(option for name, value in WEBHOOK_ENV.items() for option in ("--env", f"{name}={value}")),
    )  # fmt: skip
    store = build_store(Settings(database_url=postgres_url, fast_password_hashing=True))
    receiver = Receiver().start()
    figures: dict[str, Any] = {}
    stack.start()
    try:
        figures["stack ready after s"] = timed(
            lambda: stack.status()["ready"], 180, "every process of the stack ready"
        )
        services = list(
            dict.fromkeys(
                row["service"] for row in stack.rows() if row["ready_url"] or row["alive"]
            )
        )
        assert {"api", "projector", "consumer", "dispatcher"} <= set(services), services
        email = f"hooks-{uuid.uuid4().hex[:8]}@dev.example.com"
        developer = accounts.register_account(store, "developer", email, PASSWORD, "Hooks").id
        apps = [f.app(store, developer) for _ in range(6)]
        connected = [
            f.active_installation(store, f.seller(store), apps[n % 6], "unlimited")
            for n in range(12)
        ]
        secrets = subscribe_every_topic(stack.urls("api")[0], email, apps, receiver)
        checks = SignatureChecks(receiver, secrets)
        checks.start()
        sellers = SellerJourneys(stack.urls("api"), apps)
        reports = ConnectorReports(kafka_bootstrap, topic, connected, REPORTS_PER_SECOND)
        sellers.start()
        reports.start()
        load_began = time.monotonic()
        down: list[float] = []
        window = threading.Thread(
            target=lambda: down.extend(refuse_for_a_while(receiver, RECEIVER_DOWN)), daemon=True
        )

        def work_since(service: str) -> Callable[[], bool]:
            """'What has arrived until now is processed', for a service's kind of work."""
            if service == "api":
                apis = stack.urls("api")
                answered = dict(sellers.served)
                return lambda: all(sellers.served[a] > answered.get(a, 0) for a in apis)
            if service == "projector":
                head = store.head()
                return lambda: projections_behind(postgres_url, head) == 0
            if service == "consumer":
                marks = end_offsets(kafka_bootstrap, topic)
                return lambda: group_behind(kafka_bootstrap, topic, group, marks) == 0
            if service == "dispatcher":
                head = store.head()
                return lambda: (
                    projections_behind(postgres_url, head) == 0
                    and deliveries_waiting(postgres_url, head) == 0
                )
            return lambda: True

        def kill(service: str) -> dict[str, float]:
            return kill_and_recover(stack, service, functools.partial(work_since, service))

        recovery: dict[str, dict[str, float]] = {}
        figures["recovery"] = recovery
        for n, together in enumerate(rounds(services)):
            if n == 1:
                window.start()  # not while a dispatcher is down: that costs its lease
            time.sleep(SETTLE)
            with ThreadPoolExecutor(len(together)) as pool:
                recovery.update(zip(together, pool.map(kill, together), strict=True))
        time.sleep(max(0.0, load_began + LOAD_SECONDS - time.monotonic()))
        sellers.stop()
        reports.finish()
        load_seconds = time.monotonic() - load_began

        expected = sum(reports.failures.values())
        figures["reports drained after load s"] = timed(
            lambda: failures_recorded(store, connected) >= expected, 120, "every report applied"
        )
        head = store.head()
        timed(lambda: projections_behind(postgres_url, head) == 0, 60, "read models at the head")
        figures["deliveries drained after load s"] = timed(
            lambda: deliveries_waiting(postgres_url, head) == 0, 90, "every delivery delivered"
        )
        time.sleep(1)  # a report applied twice would show by now

        # /readyz 200 on every process, asked directly (not only through the stack).
        urls = [row["ready_url"] for row in stack.rows() if row["ready_url"]]
        assert all(httpx.get(url, timeout=5).status_code == 200 for url in urls), stack.rows()
        assert stack.status()["ready"]
        assert stack.interrupt() == 0, stack.log_tails()
        # Stopped by the SIGTERM, none SIGKILLed after the grace period (uvicorn ends a
        # graceful shutdown by re-raising the SIGTERM it caught: -15).
        exits = {row["name"]: row["last_exit"] for row in stack.rows() if not row["alive"]}
        assert set(exits.values()) <= {0, -signal.SIGTERM}, f"not stopped cleanly: {exits}"

        missing = writes_missing_from_the_log(store, sellers.acks)
        assert not missing, f"{len(missing)} acknowledged writes are not in the log: {missing[:5]}"
        assert all(sellers.served[url] > 0 for url in stack.urls("api")), sellers.served
        assert len({ack.api for ack in sellers.acks}) == API_PROCESSES
        assert_counted_once(store, postgres_url, connected, reports.failures)
        assert_one_state_each(store, postgres_url, sellers.acks, connected)
        assert_read_models_equal_a_replay(store, postgres_url)
        window.join(timeout=10)
        checks.finish()
        figures["webhooks"] = assert_every_delivery_arrived_signed(
            store, postgres_url, receiver.received, checks, sellers.acks, (down[0], down[1])
        )
    except BaseException:
        print(stack.log_tails())
        print(json.dumps(figures, indent=1, default=str))
        raise
    finally:
        if stack.running():
            stack.kill_everything()
        receiver.stop()
        store.close()
    kinds = Counter(ack.event.split(".")[1] for ack in sellers.acks)
    figures.update(
        {
            "load s": round(load_seconds, 1),
            "http requests answered": sellers.requests,
            "per api process": sorted(sellers.served.values()),
            "writes acknowledged": dict(kinds),
            "requests not answered": dict(sellers.failures),
            "kafka reports sent (re-sends)": (reports.sent, reports.resent),
            "failure reports counted": sum(reports.failures.values()),
            "test s": round(time.monotonic() - began, 1),
        }
    )
    # The figures of the last run, for docs/operations.md (also shown with pytest -s).
    report = json.dumps(figures, indent=1, default=str)
    (REPO / "var").mkdir(exist_ok=True)
    (REPO / "var" / "stack-topology.json").write_text(report + "\n")
    print("\n" + report)


def kill_and_recover(
    stack: StackRun, service: str, work_since: Callable[[], Callable[[], bool]]
) -> dict[str, float]:
    """SIGKILLs the last process of `service` (the process only, as `kill -9 PID` would).
    Seconds from the kill until the stack's replacement is healthy, and until the work that
    arrived in the second after the kill (`work_since()`, taken then) is done — work the
    dead process may have held (its partitions, its projection locks) waits that long."""
    victim = stack.rows(service)[-1]
    name, pid = victim["name"], victim["pid"]
    os.kill(pid, signal.SIGKILL)
    killed = time.monotonic()

    def replaced() -> bool:
        row = stack.row(name)
        healthy = row.get("health") in ("ready", "running")
        return bool(row) and row["pid"] != pid and row["alive"] and healthy

    time.sleep(1.0)
    done = work_since()
    seconds: dict[str, float] = {}
    while len(seconds) < 2:
        elapsed = round(time.monotonic() - killed, 1)
        assert elapsed < 120, f"{name} not recovered 120 s after SIGKILL: {seconds}"
        if "healthy again s" not in seconds and replaced():
            seconds["healthy again s"] = elapsed
        if "work after the kill done s" not in seconds and done():
            seconds["work after the kill done s"] = elapsed
        time.sleep(0.2)
    return seconds


def rounds(services: list[str]) -> list[list[str]]:
    """The services killed at the same moment, round by round: the dispatcher with the api
    (their work, deliveries and HTTP, is independent), each other one alone. The load lasts
    until the last round has recovered, so every round costs the drain after it too."""
    together = {"dispatcher": "api"}
    out: list[list[str]] = []
    for service in services:
        partner = next((r for r in out if together.get(service) in r), None)
        if partner is not None:
            partner.append(service)
        else:
            out.append([service])
    return out


def refuse_for_a_while(receiver: Receiver, seconds: float) -> tuple[float, float]:
    """The receiver answers 503 to everything for `seconds`: (from, until) in time.time().
    What arrives in that window is refused (the status is read after the arrival is
    recorded; a margin at the end leaves out one answered just after)."""
    time.sleep(1.0)
    receiver.status = 503
    began = time.time()
    time.sleep(seconds)
    ended = time.time()
    receiver.status = 200
    return began, ended - 0.2


def assert_every_delivery_arrived_signed(
    store: Store,
    database_url: str,
    received: list[Received],
    checks: SignatureChecks,
    acks: list[Ack],
    down: tuple[float, float],
) -> dict[str, Any]:
    """Every delivery of the delivery log arrived at least once with a signature that the
    `standardwebhooks` library accepts with its subscription's secret, and none failed;
    nothing arrived that the log does not hold; every try of a delivery is the same message
    (webhook-id, body); each one refused while the receiver was down came again; each
    acknowledged authorization, renewal and cancellation made exactly one delivery."""
    projector = build_projector(store, database_url)
    with projector.engine.connect() as conn:
        c = deliveries.c
        rows = conn.execute(sa.select(c.id, c.status, c.event_type, c.payload)).all()
    assert rows, "no webhook deliveries at all"
    assert {r.status for r in rows} == {"succeeded"}, Counter(r.status for r in rows)
    arrivals: dict[str, list[Received]] = {}
    for r in received:
        arrivals.setdefault(r.message_id, []).append(r)
    # SPEC: at-least-once, the same webhook-id on every try. A receiver that dedupes by
    # webhook-id sees each delivery of the log exactly once, and nothing else.
    logged = {message_id(r.id) for r in rows}
    assert len(logged) == len(rows)
    assert logged <= set(arrivals), f"{len(logged - set(arrivals))} deliveries never arrived"
    assert set(arrivals) <= logged, f"unknown webhook-ids: {sorted(set(arrivals) - logged)[:5]}"
    for tries in arrivals.values():
        assert len({(r.path, r.body) for r in tries}) == 1, "a retry was not the same message"
    assert not checks.refused, f"bad signatures: {[r.headers for r in checks.refused[:3]]}"
    assert logged <= checks.verified
    refused = {r.message_id for r in received if down[0] <= r.at <= down[1]}
    assert refused, "nothing arrived while the receiver was down"
    assert all(any(r.at > down[1] for r in arrivals[m]) for m in refused)
    made = Counter(
        (UUID(str(r.payload["installation_id"])), r.event_type)
        for r in rows
        if r.event_type in TOPIC_OF.values()
    )
    acknowledged = Counter((a.aggregate_id, TOPIC_OF[a.event]) for a in acks if a.event in TOPIC_OF)
    assert {key: made[key] for key in acknowledged} == dict(acknowledged)
    firsts = sorted(min(r.at for r in tries) for tries in arrivals.values())
    again = sum(1 for m, tries in arrivals.items() if len(tries) > 1 and m not in refused)
    return {
        "deliveries": len(rows),
        "arrivals": len(received),
        "refused while down, then delivered": len(refused),
        "arrived more than once otherwise (in flight at a kill)": again,
        "deliveries/s, first to last arrival": round(
            len(firsts) / max(firsts[-1] - firsts[0], 1e-9), 1
        ),
        "by topic": dict(Counter(r.event_type for r in rows)),
    }


def writes_missing_from_the_log(store: Store, acks: list[Ack]) -> list[Ack]:
    """Acknowledged writes without their event in the log at (or just before, in the same
    transaction) the position the API answered; each event matches one write only."""
    head = store.head()
    events: dict[UUID, list[tuple[int, str]]] = {}
    start = 1
    while start <= head:
        batch = store.notifications(start, 5000)
        for n in batch:
            events.setdefault(n.originator_id, []).append((n.id, n.topic))
        start = batch[-1].id + 1 if batch else head + 1
    missing = []
    for ack in acks:
        candidates = events.get(ack.aggregate_id, [])
        match = next(
            (
                e
                for e in candidates
                if ack.position - 10 < e[0] <= ack.position and e[1].endswith(ack.event)
            ),
            None,
        )
        if match is None:
            missing.append(ack)
        else:
            candidates.remove(match)
    return missing


def assert_counted_once(
    store: Store, database_url: str, connected: list[UUID], sent: Counter[UUID]
) -> None:
    """Each distinct failure report is one count in the aggregate and in the read model."""
    in_log = {i: failures_recorded(store, [i]) for i in connected}
    assert in_log == dict(sent)
    projector = build_projector(store, database_url)
    with projector.engine.connect() as conn:
        rows = conn.execute(
            sa.select(incidents.c.installation_id, sa.func.sum(incidents.c.count)).group_by(
                incidents.c.installation_id
            )
        ).all()
    assert {UUID(str(i)): int(total) for i, total in rows} == dict(sent)


def assert_one_state_each(
    store: Store, database_url: str, acks: list[Ack], connected: list[UUID]
) -> None:
    """The read model shows each installation in the state its events give it, once, and
    no seller holds two live installations of one app."""
    made = {a.aggregate_id for a in acks if a.event == "Installation.Installed"} | set(connected)
    cancelled = {a.aggregate_id for a in acks if a.event == "Installation.Cancelled"}
    projector = build_projector(store, database_url)
    with projector.engine.connect() as conn:
        rows = conn.execute(sa.select(my_apps_rows)).mappings().all()
    shown = Counter(UUID(str(r["id"])) for r in rows)
    assert not [i for i, n in shown.items() if n > 1]
    assert made <= set(shown)
    for row in rows:
        aggregate = installations.installation(store, UUID(str(row["id"])))
        assert row["status"] == aggregate.status.value, (row["id"], row["status"], aggregate.status)
    for installation in cancelled:
        assert installations.installation(store, installation).status.value == "cancelled"
    live = Counter(
        (r["seller_id"], r["app_id"])
        for r in rows
        if r["status"] in ("active", "pending_authorization")
    )
    assert max(live.values(), default=0) <= 1


def assert_read_models_equal_a_replay(store: Store, database_url: str) -> None:
    """Read models built live, through kills, equal those `appstore replay` rebuilds."""
    projector = build_projector(store, database_url)
    live = snapshot(projector)
    env = {**os.environ, "APPSTORE_DATABASE_URL": database_url}
    replay = subprocess.run(
        [sys.executable, "-m", "appstore", "replay"],
        cwd=REPO, env=env, capture_output=True, timeout=180,
    )  # fmt: skip
    assert replay.returncode == 0, replay.stderr.decode()[-2000:]
    assert snapshot(projector) == live
