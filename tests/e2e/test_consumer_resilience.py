"""The consumer under failure, on a real broker and PostgreSQL: broker restart mid-stream,
two workers in one group, a worker killed with SIGKILL, SIGTERM, a store that is down.
In every case each report is applied exactly once."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from dataclasses import replace
from pathlib import Path
from typing import Any
from uuid import UUID

import pytest
from eventsourcing.persistence import OperationalError

from application.store import Store
from appstore.settings import Settings
from consumers.config import GROUP_ID, WorkerConfig
from consumers.producer import SyncEventPublisher
from consumers.worker import RETRIES
from tests.consumer_support import (
    consumer_settings,
    create_topic,
    failures_recorded,
    kafka_bootstrap,
    live_installations,
    new_store,
    private_broker,
    read_topic,
    running_worker,
    unique_topic,
    wait_until,
)
from tests.kafka_broker import KafkaBroker

__all__ = ["kafka_bootstrap", "private_broker"]  # fixtures, imported for pytest

pytestmark = [pytest.mark.kafka, pytest.mark.postgres, pytest.mark.slow]

REPO = Path(__file__).resolve().parent.parent


class PacedReports(threading.Thread):
    """Publishes `total` failure reports round-robin over installations at `rate` per second."""

    def __init__(
        self, bootstrap: str, topic: str, installations: list[UUID], total: int, rate: float
    ) -> None:
        super().__init__(name="paced-reports", daemon=True)
        self.publisher = SyncEventPublisher(bootstrap, topic=topic)
        self.installations, self.total, self.rate = installations, total, rate
        self.sent = 0
        self.error: BaseException | None = None

    def run(self) -> None:
        try:
            started = time.monotonic()
            for n in range(self.total):
                delay = started + n / self.rate - time.monotonic()
                if delay > 0:
                    time.sleep(delay)
                self.publisher.publish_failure(
                    self.installations[n % len(self.installations)],
                    area="orders",
                    error_code="TIMEOUT",
                    event_id=f"report-{n}",
                )
                self.sent += 1
            self.publisher.flush(timeout=90)
        except BaseException as error:
            self.error = error
        finally:
            self.publisher.close(timeout=10)

    def finish(self, timeout: float = 120) -> None:
        self.join(timeout)
        assert not self.is_alive(), "the producer did not finish"
        assert self.error is None, f"producing failed: {self.error!r}"


def _setup(database_url: str, bootstrap: str, partitions: int) -> tuple[Settings, WorkerConfig]:
    topic = unique_topic("sync")
    create_topic(bootstrap, topic, partitions)
    settings = consumer_settings(database_url, bootstrap, topic)
    config = WorkerConfig(
        bootstrap_servers=bootstrap,
        topic=topic,
        group_id=unique_topic("group"),
        partitions=partitions,
        batch_size=100,
    )
    return settings, config


def test_a_broker_restart_mid_stream_loses_and_doubles_nothing(
    postgres_url: str, private_broker: KafkaBroker
) -> None:
    settings, config = _setup(postgres_url, private_broker.bootstrap_servers, partitions=2)
    store = new_store(settings)
    try:
        installations = live_installations(store, 4)
        reports = PacedReports(config.bootstrap_servers, config.topic, installations, 600, 60)
        with running_worker(store, config) as running:
            reports.start()
            wait_until(lambda: running.applied >= 100, 30, "the stream under way")
            assert private_broker.restart() == config.bootstrap_servers
            reports.finish()
            wait_until(
                lambda: failures_recorded(store, installations) >= 600,
                90,
                "every report after the restart",
                0.5,
            )
            time.sleep(1)  # anything doubled would show up now
        assert failures_recorded(store, installations) == 600
        assert running.applied == 600
    finally:
        store.close()


def test_two_workers_in_one_group_apply_every_report_once(
    postgres_url: str, kafka_bootstrap: str
) -> None:
    settings, config = _setup(postgres_url, kafka_bootstrap, partitions=4)
    store_a, store_b = new_store(settings), new_store(settings)
    try:
        installations = live_installations(store_a, 20)
        with running_worker(store_a, config) as a, running_worker(store_b, config) as b:
            wait_until(
                lambda: a.worker.assignment() and b.worker.assignment(),
                60,
                "both workers own partitions",
                0.2,
            )
            owned = a.worker.assignment() | b.worker.assignment()
            assert len(owned) == 4 and not a.worker.assignment() & b.worker.assignment()
            reports = PacedReports(config.bootstrap_servers, config.topic, installations, 1000, 1e6)
            reports.start()
            reports.finish()
            wait_until(lambda: a.applied + b.applied >= 1000, 60, "1,000 reports applied", 0.2)
            time.sleep(1)
        assert a.applied > 0 and b.applied > 0
        assert a.applied + b.applied == 1000
        assert failures_recorded(store_a, installations) == 1000
    finally:
        store_a.close()
        store_b.close()


def _worker_process(
    settings: Settings, config: WorkerConfig, log: Path, *, cli: bool = False
) -> subprocess.Popen[Any]:
    """`appstore consume` as a subprocess (with `cli`: settings only, the default group
    and batch size; otherwise this config's group and batch size as options)."""
    env = dict(os.environ)
    env.update(
        APPSTORE_DATABASE_URL=settings.database_url,
        APPSTORE_KAFKA_BOOTSTRAP_SERVERS=config.bootstrap_servers,
        APPSTORE_SYNC_EVENTS_TOPIC=config.topic,
        APPSTORE_FAST_PASSWORD_HASHING="true",
    )
    command = [sys.executable, "-c", "from appstore.cli import main; main()", "consume"]
    if not cli:
        command += ["--group-id", config.group_id, "--batch-size", str(config.batch_size)]
    with log.open("ab") as out:
        return subprocess.Popen(command, cwd=REPO, env=env, stdout=out, stderr=subprocess.STDOUT)


def _stop(process: subprocess.Popen[Any], log: Path) -> int:
    process.send_signal(signal.SIGTERM)
    try:
        return process.wait(timeout=30)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait(timeout=10)
        pytest.fail(f"worker ignored SIGTERM for 30 s; log:\n{log.read_text()[-3000:]}")


def test_a_worker_killed_with_sigkill_and_restarted_loses_and_doubles_nothing(
    postgres_url: str, kafka_bootstrap: str, tmp_path: Path
) -> None:
    settings, config = _setup(postgres_url, kafka_bootstrap, partitions=2)
    log = tmp_path / "worker.log"
    store = new_store(settings)
    first = second = None
    try:
        installations = live_installations(store, 5)
        reports = PacedReports(config.bootstrap_servers, config.topic, installations, 1500, 300)
        first = _worker_process(settings, config, log)
        reports.start()
        wait_until(
            lambda: failures_recorded(store, installations) >= 300,
            60,
            "the first worker under way",
            0.1,
        )
        first.kill()  # SIGKILL: no cleanup, the current batch's offsets stay uncommitted
        first.wait(timeout=10)
        assert failures_recorded(store, installations) < 1500, "killed too late to matter"
        second = _worker_process(settings, config, log)
        reports.finish()
        wait_until(
            lambda: failures_recorded(store, installations) >= 1500,
            90,
            "every report after the restart",
            0.5,
        )
        time.sleep(1)
        assert failures_recorded(store, installations) == 1500
        assert _stop(second, log) == 0
    finally:
        for process in (first, second):
            if process is not None and process.poll() is None:
                process.kill()
                process.wait(timeout=10)
        store.close()


def test_appstore_consume_stops_on_sigterm_with_its_offsets_committed(
    postgres_url: str, kafka_bootstrap: str, tmp_path: Path
) -> None:
    settings, config = _setup(postgres_url, kafka_bootstrap, partitions=2)
    config = replace(config, group_id=GROUP_ID, batch_size=500)  # what `appstore consume` uses
    log = tmp_path / "worker.log"
    store = new_store(settings)
    try:
        installations = live_installations(store, 2)
        process = _worker_process(settings, config, log, cli=True)
        try:
            reports = PacedReports(config.bootstrap_servers, config.topic, installations, 200, 1e6)
            reports.start()
            reports.finish()
            wait_until(
                lambda: failures_recorded(store, installations) >= 200, 60, "200 reports", 0.2
            )
            assert _stop(process, log) == 0
        finally:
            if process.poll() is None:
                process.kill()
                process.wait(timeout=10)
        # A new worker of the group starts after the committed offsets: nothing re-delivered.
        with running_worker(store, config) as running:
            with SyncEventPublisher(config.bootstrap_servers, topic=config.topic) as publisher:
                publisher.publish_failure(installations[0], area="orders", error_code="TIMEOUT")
            wait_until(lambda: running.records_seen >= 1, 60, "the new report")
            time.sleep(0.5)
        assert (running.records_seen, running.duplicates) == (1, 0)
        assert failures_recorded(store, installations) == 201
    finally:
        store.close()


class StoreDownAtFirst:
    """The real store, except that its first `failures` writes find the database down."""

    def __init__(self, store: Store, failures: int) -> None:
        self._store = store
        self.failures = failures

    def save(self, *aggregates: Any) -> Any:
        if self.failures > 0:
            self.failures -= 1
            raise OperationalError("connection refused (database restarting)")
        return self._store.save(*aggregates)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._store, name)


def test_a_store_outage_is_retried_without_skipping_a_report(
    postgres_url: str, kafka_bootstrap: str
) -> None:
    settings, config = _setup(postgres_url, kafka_bootstrap, partitions=1)
    store = new_store(settings)
    try:
        installations = live_installations(store, 2)
        flaky = StoreDownAtFirst(store, failures=3)
        retries_before = RETRIES.labels("store")._value.get()
        reports = PacedReports(config.bootstrap_servers, config.topic, installations, 50, 1e6)
        reports.start()
        reports.finish()
        with running_worker(flaky, config) as running:  # type: ignore[arg-type]
            wait_until(lambda: running.applied >= 50, 60, "50 reports after the outage", 0.2)
        assert flaky.failures == 0
        assert RETRIES.labels("store")._value.get() - retries_before == 3
        assert failures_recorded(store, installations) == 50
    finally:
        store.close()


def test_a_batch_that_fails_unexpectedly_is_polled_again_not_skipped(
    postgres_url: str, kafka_bootstrap: str
) -> None:
    settings, config = _setup(postgres_url, kafka_bootstrap, partitions=1)
    store = new_store(settings)
    try:
        installations = live_installations(store, 1)
        with running_worker(store, config) as running:
            worker = running.worker
            real_send = worker._send_dead_letters
            calls: list[int] = []

            def buggy_once(letters: Any) -> None:
                calls.append(len(letters))
                if len(calls) == 1:
                    raise RuntimeError("a bug in the DLQ step")
                real_send(letters)

            worker._send_dead_letters = buggy_once  # type: ignore[method-assign]
            with SyncEventPublisher(config.bootstrap_servers, topic=config.topic) as publisher:
                for n in range(5):
                    publisher.publish_failure(
                        installations[0], area="orders", error_code="E", event_id=f"e{n}"
                    )
                publisher._producer.send(config.topic, key=b"bad", value=b"{oops")
            wait_until(lambda: running.records_seen >= 6, 60, "the batch after the bug")
        assert len(calls) >= 2
        assert failures_recorded(store, installations) == 5  # the retry applied nothing twice
        dead = read_topic(config.bootstrap_servers, config.dlq_topic, expected=1)
        assert [r.value for r in dead] == [b"{oops"]
    finally:
        store.close()
