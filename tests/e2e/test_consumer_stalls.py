"""A batch the consumer cannot decode, on a real broker and PostgreSQL: it stalls only its own
partition, visibly (one log line, /readyz 503 naming it, metrics, lag), until an operator
skips it (`appstore consume --skip-to`, recorded in the audit history) or it reads again.

The undecodable batch is a real snappy batch from librdkafka, read by a consumer whose
kafka-python finds no snappy library: the deployment mistake that froze ingest before."""

from __future__ import annotations

import logging
import os
import signal
import socket
import subprocess
import sys
import warnings
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import kafka.codec
import pytest

from application import ingest
from application.store import Store
from appstore.settings import Settings
from consumers.config import WorkerConfig
from consumers.health import ConsumerHealth
from consumers.skips import skip_to
from domain.ingest import offsets_id
from tests.consumer_support import (
    LibrdkafkaProducer,
    consumer_settings,
    create_topic,
    failures_recorded,
    kafka_bootstrap,
    live_installations,
    new_store,
    report,
    running_worker,
    unique_topic,
    wait_until,
)

__all__ = ["kafka_bootstrap"]  # the fixture, imported for pytest

pytestmark = [pytest.mark.kafka, pytest.mark.postgres]

REPO = Path(__file__).resolve().parent.parent


@pytest.fixture
def topic(kafka_bootstrap: str) -> str:
    name = unique_topic("sync")
    create_topic(kafka_bootstrap, name, partitions=2)
    return name


@pytest.fixture
def settings(postgres_url: str, kafka_bootstrap: str, topic: str) -> Settings:
    return consumer_settings(postgres_url, kafka_bootstrap, topic)


@pytest.fixture
def pg_store(settings: Settings) -> Iterator[Store]:
    store = new_store(settings)
    yield store
    store.close()


@pytest.fixture
def config(kafka_bootstrap: str, topic: str) -> WorkerConfig:
    return WorkerConfig(
        bootstrap_servers=kafka_bootstrap,
        topic=topic,
        group_id=unique_topic("group"),
        partitions=2,
        stall_retry_s=0.3,  # retried many times during a test: still one log line
        skip_check_s=0.3,
        lag_interval_s=0.3,
    )


@pytest.fixture
def without_snappy(monkeypatch: pytest.MonkeyPatch) -> None:
    """kafka-python as deployed without its snappy library."""
    monkeypatch.setattr(kafka.codec, "snappy", None)


def _publish_stalling_partition(bootstrap: str, topic: str, installations: list[Any]) -> None:
    """Partition 0: a snappy batch of 3 (offsets 0-2), then 2 plain reports (3, 4).
    Partition 1: 3 plain reports."""
    snappy = LibrdkafkaProducer(bootstrap, compression_type="snappy", linger_ms=200)
    for n in range(3):
        snappy.produce(topic, report(installations[0], event_id=f"s{n}"), b"a", partition=0)
    snappy.flush()
    plain = LibrdkafkaProducer(bootstrap)
    for n in range(2):
        plain.produce(topic, report(installations[1], event_id=f"p{n}"), b"b", partition=0)
    for n in range(3):
        plain.produce(topic, report(installations[2], event_id=f"q{n}"), b"c", partition=1)
    plain.flush()


def _api(settings: Settings, store: Store, health: ConsumerHealth) -> Any:
    from appstore.bootstrap import create_app

    with warnings.catch_warnings():  # starlette's notice about httpx, as in test_api.py
        warnings.simplefilter("ignore")
        from starlette.testclient import TestClient

    app = create_app(settings, store=store, run_projections=False, consumer_health=health)
    return app, TestClient(app)


@pytest.mark.usefixtures("without_snappy")
def test_an_undecodable_batch_stalls_only_its_partition_visibly_until_an_operator_skips_it(
    settings: Settings,
    pg_store: Store,
    config: WorkerConfig,
    caplog: pytest.LogCaptureFixture,
) -> None:
    installations = live_installations(pg_store, 3)
    _publish_stalling_partition(config.bootstrap_servers, config.topic, installations)
    stalled_name = f"{config.topic}-0"
    health = ConsumerHealth()
    app, client = _api(settings, pg_store, health)
    caplog.set_level(logging.INFO, logger="appstore.consumer")
    try:
        with running_worker(pg_store, config, health) as running:
            # The other partition flows.
            wait_until(
                lambda: failures_recorded(pg_store, [installations[2]]) == 3, 30, "partition 1"
            )
            wait_until(lambda: health.snapshot()["stalled"], 30, "the stall reported")
            # Not frozen (kafka-python alone would spin inside poll from now on): news on
            # the other partition still applies.
            later = LibrdkafkaProducer(config.bootstrap_servers)
            later.produce(config.topic, report(installations[2], event_id="q9"), b"c", partition=1)
            later.flush()
            wait_until(
                lambda: failures_recorded(pg_store, [installations[2]]) == 4, 30, "news on 1"
            )
            stall = health.snapshot()["partitions"][stalled_name]["stalled"]
            assert (stall["offset"], stall["next_offset"]) == (0, 3)
            assert "snappy" in stall["detail"]
            assert "--skip-to 0:3" in stall["skip_command"]
            # Visible without logs: /readyz 503 naming the partition, metrics, lag.
            ready = client.get("/readyz")
            assert ready.status_code == 503
            assert ready.json()["status"] == "consumer_stalled"
            assert ready.json()["consumer"]["stalled"] == [stalled_name]
            wait_until(
                lambda: health.snapshot()["partitions"][stalled_name]["lag"] == 5, 30, "lag 5"
            )
            metrics = client.get("/metrics").text
            assert "appstore_consumer_stalled_partitions 1.0" in metrics
            assert (
                f'appstore_consumer_lag_messages{{partition="0",topic="{config.topic}"}} 5.0'
                in metrics
            )
            assert (
                f'appstore_consumer_lag_messages{{partition="1",topic="{config.topic}"}} 0.0'
                in metrics
            )
            # Retried every 0.3 s (stall_retry_s) meanwhile: still one log line.
            retried = running.records_seen
            _wait_retries(health, seconds=1.5)
            assert running.records_seen == retried  # nothing of partition 0 got through
            stalled_lines = [r for r in caplog.records if "stalled at offset" in r.getMessage()]
            assert len(stalled_lines) == 1, [r.getMessage() for r in stalled_lines]
            assert "--skip-to 0:3" in stalled_lines[0].getMessage()

            # The operator's way out, while the worker runs: it carries the skip out.
            outcome = skip_to(
                pg_store,
                config.bootstrap_servers,
                config.topic,
                config.group_id,
                0,
                3,
                "snappy batch from connector A; A re-sends",
                requested_by="ops@store",
                wait_s=30,
            )
            assert outcome.applied_by is not None and "appstore-consumer" in outcome.applied_by
            assert outcome.from_offset == 0
            wait_until(
                lambda: failures_recorded(pg_store, [installations[1]]) == 2,
                30,
                "partition 0 after the skip",
            )
            wait_until(lambda: client.get("/readyz").status_code == 200, 30, "ready again")
            assert not health.snapshot()["stalled"]
    finally:
        app.state.projector.engine.dispose()
    assert failures_recorded(pg_store, [installations[0]]) == 0  # the skipped batch
    assert failures_recorded(pg_store, installations) == 6
    offsets = ingest.consumer_offsets(pg_store, config.group_id, config.topic)
    assert offsets is not None
    assert not offsets.pending and offsets.skipped == 3
    history = [type(e).__qualname__ for e in pg_store.application.events.get(offsets.id)]
    assert history == [
        "ConsumerOffsets.Opened",
        "ConsumerOffsets.SkipRequested",
        "ConsumerOffsets.Skipped",
    ]
    requested, skipped = list(pg_store.application.events.get(offsets.id))[1:]
    assert requested.reason == "snappy batch from connector A; A re-sends"  # type: ignore[attr-defined]
    assert requested.requested_by == "ops@store"  # type: ignore[attr-defined]
    assert (skipped.from_offset, skipped.to_offset) == (0, 3)  # type: ignore[attr-defined]


def _wait_retries(health: ConsumerHealth, seconds: float) -> None:
    """Waits `seconds` (bounded) while the stalled partition is retried."""
    import time

    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        assert health.snapshot()["stalled"], "the stall went away by itself"
        time.sleep(0.1)


def test_a_stalled_partition_reads_again_once_its_codec_is_available(
    pg_store: Store, config: WorkerConfig, monkeypatch: pytest.MonkeyPatch
) -> None:
    installations = live_installations(pg_store, 3)
    real_snappy = kafka.codec.snappy
    monkeypatch.setattr(kafka.codec, "snappy", None)
    _publish_stalling_partition(config.bootstrap_servers, config.topic, installations)
    health = ConsumerHealth()
    with running_worker(pg_store, config, health):
        wait_until(lambda: health.snapshot()["stalled"], 30, "the stall reported")
        monkeypatch.setattr(kafka.codec, "snappy", real_snappy)  # e.g. a transient fault gone
        wait_until(lambda: failures_recorded(pg_store, installations) == 8, 30, "every report")
        assert not health.snapshot()["stalled"]
        assert health.snapshot()["status"] == "ok"


def _cli(settings: Settings, *args: str, timeout: float = 90) -> subprocess.CompletedProcess[str]:
    """`appstore …` in a subprocess with these settings."""
    env = dict(os.environ)
    env.update(
        APPSTORE_DATABASE_URL=settings.database_url,
        APPSTORE_KAFKA_BOOTSTRAP_SERVERS=settings.kafka_bootstrap_servers or "",
        APPSTORE_SYNC_EVENTS_TOPIC=settings.sync_events_topic,
        APPSTORE_FAST_PASSWORD_HASHING="true",
        COLUMNS="300",  # rich tables at full width
    )
    command = [sys.executable, "-c", "from appstore.cli import main; main()", *args]
    return subprocess.run(
        command, cwd=REPO, env=env, capture_output=True, text=True, timeout=timeout
    )


def test_appstore_consume_skip_to_moves_an_idle_group_on_and_records_it(
    settings: Settings, pg_store: Store, config: WorkerConfig
) -> None:
    [installation_id] = live_installations(pg_store, 1)
    producer = LibrdkafkaProducer(config.bootstrap_servers)
    for n in range(5):
        producer.produce(config.topic, report(installation_id, event_id=f"r{n}"), partition=0)
    producer.flush()

    no_reason = _cli(settings, "consume", "--skip-to", "0:3")
    assert no_reason.returncode == 2 and "--reason" in no_reason.stderr
    past_the_end = _cli(settings, "consume", "--skip-to", "0:99", "--reason", "typo")
    assert past_the_end.returncode == 2, past_the_end.stderr
    assert "past the end" in past_the_end.stderr
    no_such_partition = _cli(settings, "consume", "--skip-to", "7:1", "--reason", "typo")
    assert no_such_partition.returncode == 2 and "no partition 7" in no_such_partition.stderr

    done = _cli(settings, "consume", "--skip-to", "0:3", "--reason", "corrupt batch, resent")
    assert done.returncode == 0, done.stderr
    assert "now reads from 3" in done.stderr and "3 messages given up" in done.stderr

    # The group (`appstore consume`'s own) starts after the skip: only offsets 3 and 4 apply.
    group = settings.consumer.group_id
    with running_worker(pg_store, replace(config, group_id=group)) as running:
        wait_until(lambda: running.applied == 2, 30, "the 2 reports after the skip")
    assert failures_recorded(pg_store, [installation_id]) == 2
    events = list(pg_store.application.events.get(offsets_id(group, config.topic)))
    assert [type(e).__qualname__ for e in events][1:] == [
        "ConsumerOffsets.SkipRequested",
        "ConsumerOffsets.Skipped",
    ]
    assert events[1].reason == "corrupt batch, resent"  # type: ignore[attr-defined]
    assert "appstore consume --skip-to" in events[2].applied_by  # type: ignore[attr-defined]
    shown = _cli(settings, "audit", "show", str(events[0].originator_id))
    assert shown.returncode == 0 and "Skipped" in shown.stdout


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_appstore_consume_serves_its_readiness_lag_and_metrics(
    settings: Settings, pg_store: Store, config: WorkerConfig, tmp_path: Path
) -> None:
    import httpx

    installations = live_installations(pg_store, 2)
    producer = LibrdkafkaProducer(config.bootstrap_servers, compression_type="zstd")
    for n in range(6):
        producer.produce(config.topic, report(installations[n % 2]), partition=n % 2)
    producer.flush()
    port = _free_port()
    env = dict(os.environ)
    env.update(
        APPSTORE_DATABASE_URL=settings.database_url,
        APPSTORE_KAFKA_BOOTSTRAP_SERVERS=config.bootstrap_servers,
        APPSTORE_SYNC_EVENTS_TOPIC=config.topic,
        APPSTORE_FAST_PASSWORD_HASHING="true",
    )
    command = [sys.executable, "-c", "from appstore.cli import main; main()", "consume"]
    command += ["--metrics-port", str(port), "--metrics-host", "127.0.0.1"]
    log = tmp_path / "consume.log"
    with log.open("wb") as out:
        process = subprocess.Popen(command, cwd=REPO, env=env, stdout=out, stderr=out)
    base = f"http://127.0.0.1:{port}"

    def ready_and_caught_up() -> Any:
        try:
            answer = httpx.get(f"{base}/readyz", timeout=2)
        except httpx.HTTPError:
            return None
        body = answer.json()
        lags = [p["lag"] for p in body["partitions"].values()]
        return answer.status_code == 200 and len(lags) == 2 and lags == [0, 0] and body

    try:
        body = wait_until(ready_and_caught_up, 60, "/readyz ok with no lag", 0.3)
        assert body["status"] == "ok" and body["stalled"] == []
        assert {p["committed"] for p in body["partitions"].values()} == {3}
        metrics = httpx.get(f"{base}/metrics", timeout=5).text
        assert (
            f'appstore_consumer_lag_messages{{partition="0",topic="{config.topic}"}} 0.0' in metrics
        )
        assert "appstore_consumer_stalled_partitions 0.0" in metrics
        assert 'appstore_sync_events_total{outcome="applied"} 6.0' in metrics
        assert httpx.get(f"{base}/healthz", timeout=5).status_code == 200
    finally:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=10)
    assert process.returncode == 0, log.read_text()[-3000:]
    assert failures_recorded(pg_store, installations) == 6


def test_readiness_fails_while_the_consumer_does_not_run(settings: Settings) -> None:
    health = ConsumerHealth()  # never started, or its thread died
    assert health.snapshot()["status"] == "stopped"
    store = new_store(settings)
    app, client = _api(settings, store, health)
    try:
        with client:
            answer = client.get("/readyz")
        assert answer.status_code == 503
        assert answer.json()["status"] == "consumer_stopped"
        health.started("t", "g")
        assert client.get("/readyz").status_code == 200
        assert "appstore_consumer_up 1.0" in client.get("/metrics").text
    finally:
        app.state.projector.engine.dispose()
        store.close()


def test_appstore_serve_runs_the_consumer_and_shows_its_lag_on_readyz(
    settings: Settings, pg_store: Store, config: WorkerConfig, tmp_path: Path
) -> None:
    """The issue's setup: `appstore serve` with Kafka, a librdkafka producer using snappy."""
    import httpx

    installations = live_installations(pg_store, 5)
    producer = LibrdkafkaProducer(config.bootstrap_servers, compression_type="snappy")
    for installation_id in installations:
        producer.produce(config.topic, report(installation_id), str(installation_id).encode())
    producer.flush()
    port = _free_port()
    env = dict(os.environ)
    env.update(
        APPSTORE_DATABASE_URL=settings.database_url,
        APPSTORE_KAFKA_BOOTSTRAP_SERVERS=config.bootstrap_servers,
        APPSTORE_SYNC_EVENTS_TOPIC=config.topic,
        APPSTORE_FAST_PASSWORD_HASHING="true",
        APPSTORE_SERVE_WORKERS="1",
    )
    command = [sys.executable, "-c", "from appstore.cli import main; main()", "serve"]
    log = tmp_path / "serve.log"
    with log.open("wb") as out:
        process = subprocess.Popen(
            [*command, "--port", str(port)], cwd=REPO, env=env, stdout=out, stderr=out
        )

    def consumer_caught_up() -> Any:
        try:
            answer = httpx.get(f"http://127.0.0.1:{port}/readyz", timeout=2)
        except httpx.HTTPError:
            return None
        consumer = answer.json().get("consumer") or {}
        lags = [p["lag"] for p in consumer.get("partitions", {}).values()]
        return answer.status_code == 200 and lags == [0, 0] and consumer

    try:
        wait_until(consumer_caught_up, 60, "serve's consumer caught up on /readyz", 0.3)
        metrics = httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=5).text
        assert 'appstore_sync_events_total{outcome="applied"} 5.0' in metrics
        assert "appstore_consumer_stalled_partitions 0.0" in metrics
    finally:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=10)
    assert failures_recorded(pg_store, installations) == 5, log.read_text()[-3000:]
