"""The compose topology as `appstore stack` runs it, on the real PostgreSQL and Kafka, under a
mixed load, with one process of each long-running service SIGKILLed (the stack restarts
each after a few seconds, as compose's `restart: unless-stopped` would).

Sellers sign up, install, authorize, renew and cancel over HTTP against both api processes;
connectors report sync runs over Kafka for several installations. Afterwards: every
acknowledged write is in the event log at the position it answered, every report counted
exactly once, no installation in two states, read models equal to a fresh `appstore replay`,
`/readyz` 200 on every process, and Ctrl-C stops everything with exit code 0.

compose.yaml runs one api process of 4 uvicorn workers; on these 2-core machines the test
runs 2 api processes of 1 worker each (so one can be killed while the other serves) next to
compose's 2 projectors and 3 consumers. A service compose.yaml gains (the webhook dispatcher)
is started, killed and checked for readiness here without a change; what it does under load
is checked once `work_since` and the load know about it.
"""

from __future__ import annotations

import functools
import json
import os
import signal
import subprocess
import sys
import time
import uuid
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any
from uuid import UUID

import httpx
import pytest
import sqlalchemy as sa

from application import installations
from application.store import Store
from appstore.bootstrap import build_store
from appstore.settings import Settings
from projections.incidents import incidents
from projections.my_apps import installations as my_apps_rows
from projections.read_side import build_projector, snapshot
from tests import factories as f
from tests.consumer_support import failures_recorded, kafka_bootstrap
from tests.stack_support import (
    REPO,
    Ack,
    ConnectorReports,
    SellerJourneys,
    StackRun,
    end_offsets,
    group_behind,
    projections_behind,
    timed,
)

__all__ = ["kafka_bootstrap"]  # a fixture, imported for pytest

pytestmark = [pytest.mark.kafka, pytest.mark.postgres, pytest.mark.slow]

API_PROCESSES = 2
RESTART_DELAY = 3.0
LOAD_SECONDS = 40.0  # at least; the load goes on until every kill has recovered
SETTLE = 4.0  # load before the first kill, and between kills
REPORTS_PER_SECOND = 60.0


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
    )  # fmt: skip
    store = build_store(Settings(database_url=postgres_url, fast_password_hashing=True))
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
        assert {"api", "projector", "consumer"} <= set(services), services
        apps = [f.app(store, f.developer(store)) for _ in range(6)]
        connected = [
            f.active_installation(store, f.seller(store), apps[n % 6], "unlimited")
            for n in range(12)
        ]
        sellers = SellerJourneys(stack.urls("api"), apps)
        reports = ConnectorReports(kafka_bootstrap, topic, connected, REPORTS_PER_SECOND)
        sellers.start()
        reports.start()
        load_began = time.monotonic()

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
            return lambda: True

        recovery = {}
        for service in services:
            time.sleep(SETTLE)
            recovery[service] = kill_and_recover(
                stack, service, functools.partial(work_since, service)
            )
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
    except BaseException:
        print(stack.log_tails())
        raise
    finally:
        if stack.running():
            stack.kill_everything()
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
            "recovery": recovery,
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
