"""Kafka traffic for the benches: connector reports produced to a topic, and the raw
kafka-python consume rate they are judged against (bench/ingest.py, bench/stack.py)."""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Callable
from datetime import UTC, datetime

import psycopg
from kafka.consumer import KafkaConsumer
from kafka.consumer.fetcher import ConsumerRecord
from kafka.producer import KafkaProducer
from kafka.structs import TopicPartition
from rich.progress import Progress

from application.store import Store
from consumers.batches import parsed
from domain.incident import SyncEvent
from tests import factories as f

AREAS = ("orders", "inventory", "fulfillment", "products")


def installations(store: Store, count: int, progress: Progress) -> list[uuid.UUID]:
    task = progress.add_task("setup: active installations", total=count, rate="")
    app_id = f.app(store)
    ids = []
    for _ in range(count):
        ids.append(f.active_installation(store, f.seller(store), app_id, duration="unlimited"))
        progress.advance(task)
    return ids


def report(n: int, installation_id: uuid.UUID, success_share: float = 0.0) -> bytes:
    """A failure report (areas and error codes vary so incidents both group and open), or a
    success for `success_share` of them."""
    success = (n * 7919) % 1000 < success_share * 1000  # spread evenly, the same every run
    return json.dumps(
        {
            "event_id": f"bench-{n}-{uuid.uuid4().hex[:6]}",
            "installation_id": str(installation_id),
            "kind": "success" if success else "failure",
            "area": AREAS[n % len(AREAS)],
            "error_code": f"E{n % 7}",
            "message": "order 12345 references an unknown SKU",
            "object_ids": [f"o-{n}"],
            "occurred_at": datetime.now(UTC).isoformat(),
        }
    ).encode()


def produce(
    bootstrap: str,
    topic: str,
    ids: list[uuid.UUID],
    count: int,
    progress: Progress,
    label: str,
    rate: float | None = None,
    success_share: float = 0.0,
) -> float:
    """Sends `count` reports (as fast as possible, or paced at `rate`/s); returns seconds."""
    producer = KafkaProducer(bootstrap_servers=bootstrap, acks="all", linger_ms=5)
    task = progress.add_task(label, total=count, rate="")
    start = time.perf_counter()
    for n in range(count):
        if rate is not None:
            delay = start + n / rate - time.perf_counter()
            if delay > 0:
                time.sleep(delay)
        installation_id = ids[n % len(ids)]
        producer.send(
            topic,
            key=str(installation_id).encode(),
            value=report(n, installation_id, success_share),
        )
        if n % 500 == 0:
            progress.update(
                task, completed=n, rate=f"{n / max(time.perf_counter() - start, 1e-9):,.0f}/s"
            )
    producer.flush(timeout=120)
    elapsed = time.perf_counter() - start
    progress.update(task, completed=count, rate=f"{count / elapsed:,.0f}/s")
    producer.close(timeout=10)
    return elapsed


def raw_consume(
    bootstrap: str,
    topic: str,
    count: int,
    progress: Progress,
    label: str = "a. raw kafka-python consume",
    work: Callable[[list[ConsumerRecord]], object] | None = None,
    commit: bool = False,
) -> float:
    """kafka-python alone: poll every record of the topic from the start; returns msg/s.
    With `work`, each polled batch is also handed to it (parsing only, or a hand-written
    store); with `commit`, the offsets of each poll are then committed, as the worker does.

    Timed like the worker (b): from the moment the first poll hands records over to the
    moment the last record is in hand, so neither rate includes connecting, the metadata
    round trips or the first fetch's wait."""
    consumer = KafkaConsumer(
        bootstrap_servers=bootstrap,
        enable_auto_commit=False,
        max_poll_records=500,
        # A fetch asking only for partitions read to their end waits this long for new
        # records, and the next fetch (the other partitions' rest) waits for it: at the
        # default 500 ms, runs over the same backlog gave 45k or 190k msg/s by whether one
        # such wait fell inside. Kept short, the baseline is kafka-python at its best.
        fetch_max_wait_ms=10,
        group_id=f"bench-raw-{uuid.uuid4().hex[:8]}" if commit else None,
    )
    partitions = None
    while not partitions:
        partitions = consumer.partitions_for_topic(topic)
    tps = [TopicPartition(topic, p) for p in sorted(partitions)]
    consumer.assign(tps)
    consumer.seek_to_beginning(*tps)
    task = progress.add_task(label, total=count, rate="")
    got, start = 0, None
    deadline = time.monotonic() + 120
    while got < count and time.monotonic() < deadline:
        polled = consumer.poll(timeout_ms=500, max_records=500)
        for records in polled.values():
            start = start if start is not None else time.perf_counter()
            got += len(records)
            if work is not None:
                work(records)
        if commit and polled:
            consumer.commit()
        if start is not None:
            rate = got / max(time.perf_counter() - start, 1e-9)
            progress.update(task, completed=got, rate=f"{rate:,.0f}/s")
    elapsed = time.perf_counter() - (start if start is not None else time.perf_counter())
    consumer.close()
    if got < count:
        raise SystemExit(f"raw consume read only {got} of {count} records")
    return count / max(elapsed, 1e-9)


class HandWrittenStore:
    """What a consumer without event sourcing would do with a polled batch: parse and
    validate each report, then one row per report into a plain table, one transaction per
    batch (COPY). The baseline the worker's event-sourced store is weighed against."""

    def __init__(self, database_url: str) -> None:
        self.conn = psycopg.connect(database_url)
        self.conn.execute(
            "CREATE TABLE IF NOT EXISTS bench_raw_reports (partition int, kafka_offset bigint,"
            " installation_id uuid, event_id text, kind text, area text, error_code text,"
            " message text, object_ids text[], occurred_at timestamptz,"
            " PRIMARY KEY (partition, kafka_offset))"
        )
        self.conn.commit()

    def __call__(self, records: list[ConsumerRecord]) -> None:
        rows = []
        for item in parsed(records):
            report = item.report
            if isinstance(report, SyncEvent):
                rows.append(
                    (
                        item.partition,
                        item.offset,
                        report.installation_id,
                        report.event_id,
                        report.kind,
                        report.area,
                        report.error_code,
                        report.message,
                        list(report.object_ids),
                        report.occurred_at,
                    )
                )
        with (
            self.conn.cursor() as cursor,
            cursor.copy(
                "COPY bench_raw_reports (partition, kafka_offset, installation_id, event_id,"
                " kind, area, error_code, message, object_ids, occurred_at) FROM STDIN"
            ) as copy,
        ):
            for row in rows:
                copy.write_row(row)
        self.conn.commit()

    def close(self) -> None:
        self.conn.close()
