"""The Kafka path's exactly-once without receipts (application/kafka_ingest.py), on both
backends: each partition's progress is saved with the batch, an event_id re-sent at a new
offset is known by its installation, kept installations are read again once changed."""

from __future__ import annotations

from datetime import timedelta
from itertools import count
from uuid import UUID

import pytest

from application import ingest, installations, sync_events
from application.kafka_ingest import KafkaIngest, Record, Refusal
from application.store import Store
from application.sync_events import SyncResult
from consumers.batches import classify
from domain import incident
from domain.claims import SyncEventReceipt
from domain.clock import FixedClock
from domain.incident import SyncEvent
from domain.ingest import PartitionProgress, progress_id
from tests import factories as f

TOPIC = "appstore.sync-events"


def failure(installation_id: UUID, event_id: str, clock: FixedClock, code: str = "E1") -> SyncEvent:
    return SyncEvent(event_id, installation_id, "failure", "orders", clock.now(), code, "boom")


def success(installation_id: UUID, event_id: str, clock: FixedClock) -> SyncEvent:
    return SyncEvent(event_id, installation_id, "success", "orders", clock.now())


def records(*reports: SyncEvent | Refusal, start: int = 0, partition: int = 0) -> list[Record]:
    offsets = count(start)
    return [Record(partition, next(offsets), report) for report in reports]


def counted(store: Store, installation_id: UUID) -> int:
    found = installations.installation(store, installation_id)
    return sum(i.count for i in found.incidents.values())


def kinds(store: Store, since: int) -> list[str]:
    return [type(store.decode(n)).__qualname__ for n in store.notifications(since, 1000)]


@pytest.fixture
def live(store: Store) -> UUID:
    return f.active_installation(store, f.seller(store), f.app(store), "unlimited")


def test_a_batch_stores_one_event_per_report_and_the_progress_not_a_receipt(
    store: Store, clock: FixedClock, live: UUID
) -> None:
    head = store.head()
    results = KafkaIngest(store, TOPIC, classify).apply(
        records(*(failure(live, f"e{n}", clock, code=f"E{n % 2}") for n in range(4)))
    )
    assert [r.duplicate for r in results if isinstance(r, SyncResult)] == [False] * 4
    assert kinds(store, head + 1) == [
        "Installation.IncidentRaised",
        "Installation.IncidentRaised",
        "Installation.IncidentRecurred",
        "Installation.IncidentRecurred",
        "PartitionProgress.Opened",
        "PartitionProgress.Advanced",
    ]
    assert not any("Receipt" in k for k in kinds(store, 1))
    progress = store.load(progress_id(TOPIC, 0), PartitionProgress)
    assert progress is not None and progress.next_offset == 4


def test_a_record_below_the_stored_progress_never_applies_twice(
    store: Store, clock: FixedClock, live: UUID, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The installation remembers only its newest report: the progress alone must say that
    # offsets 0-2 had their effect, for a worker that restarts after the store commit.
    monkeypatch.setattr(incident, "RECENT_REPORTS", 1)
    batch = records(*(failure(live, f"e{n}", clock) for n in range(3)))
    KafkaIngest(store, TOPIC, classify).apply(batch)
    head = store.head()
    again = KafkaIngest(store, TOPIC, classify).apply([*batch, *records(start=3)])
    assert all(isinstance(r, SyncResult) and r.duplicate for r in again)
    assert store.head() == head
    assert counted(store, live) == 3


def test_a_report_re_sent_at_a_new_offset_counts_once(
    store: Store, clock: FixedClock, live: UUID
) -> None:
    ingest_ = KafkaIngest(store, TOPIC, classify)
    report = failure(live, "run-7", clock)
    first = ingest_.apply(records(report, report))  # a producer retry in the same batch
    later = KafkaIngest(store, TOPIC, classify).apply(records(report, start=2, partition=1))
    assert [r.duplicate for r in [*first, *later] if isinstance(r, SyncResult)] == [
        False,
        True,
        True,
    ]
    assert counted(store, live) == 1
    # Remembered through a snapshot too (installations are snapshotted every 100 events).
    ingest_.apply(records(*(failure(live, f"n{n}", clock) for n in range(120)), start=2))
    [result] = KafkaIngest(store, TOPIC, classify).apply(records(report, start=200))
    assert isinstance(result, SyncResult) and result.duplicate


def test_a_new_owner_resumes_after_the_progress_or_at_the_last_batchs_refusals(
    store: Store, clock: FixedClock, live: UUID
) -> None:
    worker = KafkaIngest(store, TOPIC, classify)
    assert worker.resume_offset(0) is None  # never applied: the group's commit says
    worker.apply(records(failure(live, "a", clock), failure(live, "b", clock)))
    assert KafkaIngest(store, TOPIC, classify).resume_offset(0) == 2
    bad = Refusal("invalid_json", "not JSON")
    unknown = failure(UUID(int=7), "c", clock)
    results = worker.apply(records(failure(live, "d", clock), bad, unknown, start=2))
    assert [getattr(r, "reason", None) for r in results] == [
        None,
        "invalid_json",
        "unknown_installation",
    ]
    # The dead letters may not have reached the DLQ: a new owner reads them again...
    restarted = KafkaIngest(store, TOPIC, classify)
    assert restarted.resume_offset(0) == 3
    again = restarted.apply(records(bad, unknown, start=3))
    assert [getattr(r, "reason", None) for r in again] == ["invalid_json", "unknown_installation"]
    # ...but not those of an older batch, sent before the next batch was stored.
    restarted.apply(records(failure(live, "e", clock), start=5))
    older = restarted.apply(records(bad, unknown, start=3))
    assert older[0] is None and isinstance(older[1], SyncResult) and older[1].duplicate
    assert counted(store, live) == 4


def test_a_kept_installation_changed_by_another_writer_is_read_again(
    store: Store, clock: FixedClock, live: UUID
) -> None:
    worker = KafkaIngest(store, TOPIC, classify)
    worker.apply(records(failure(live, "a", clock)))
    seller = installations.installation(store, live).seller_id
    installations.cancel(store, seller, live)
    # A success would change nothing on the kept (live) copy: the store says it is cancelled.
    [result] = worker.apply(records(success(live, "s", clock), start=1))
    assert result == Refusal("installation_cancelled", "installation is cancelled")


def test_an_installation_authorized_after_a_refusal_takes_the_redriven_report(
    store: Store, clock: FixedClock
) -> None:
    app = f.app(store)
    seller = f.seller(store)
    pending = installations.install(
        store, seller, app, "30d", "a@shop.example.com", "+14155550101"
    ).id
    worker = KafkaIngest(store, TOPIC, classify)
    [refused] = worker.apply(records(failure(pending, "a", clock)))
    assert isinstance(refused, Refusal) and refused.reason == "installation_not_active"
    installations.authorize(store, seller, pending)
    [applied] = worker.apply(records(failure(pending, "a", clock), start=1))
    assert isinstance(applied, SyncResult) and not applied.duplicate


def test_a_success_that_changes_nothing_writes_only_the_progress(
    store: Store, clock: FixedClock, live: UUID
) -> None:
    worker = KafkaIngest(store, TOPIC, classify)
    worker.apply(records(success(live, "s1", clock)))
    head = store.head()
    clock.advance(timedelta(seconds=1))
    worker.apply(records(*(success(live, f"s{n}", clock) for n in range(2, 50)), start=1))
    assert kinds(store, head + 1) == ["PartitionProgress.Advanced"]
    assert store.load(SyncEventReceipt.create_id(live, "s2"), SyncEventReceipt) is None


def test_a_skip_moves_the_partitions_progress(store: Store, clock: FixedClock, live: UUID) -> None:
    KafkaIngest(store, TOPIC, classify).apply(records(failure(live, "a", clock)))
    ingest.request_skip(store, "group", TOPIC, 0, 40, "corrupt batch", "ops")
    ingest.record_skip(store, "group", TOPIC, 0, 1, 40, "worker")
    assert KafkaIngest(store, TOPIC, classify).resume_offset(0) == 40


def test_a_bug_on_one_report_refuses_that_report_only(
    store: Store, clock: FixedClock, live: UUID, monkeypatch: pytest.MonkeyPatch
) -> None:
    worker = KafkaIngest(store, TOPIC, classify)
    other = f.active_installation(store, f.seller(store), f.app(store), "unlimited")
    original = type(installations.installation(store, live)).record_sync

    def record_sync(self, sync, now):  # type: ignore[no-untyped-def]
        if sync.event_id == "bad":
            raise RuntimeError("a bug")
        return original(self, sync, now)

    monkeypatch.setattr(type(installations.installation(store, live)), "record_sync", record_sync)
    batch = records(failure(live, "ok", clock), failure(other, "bad", clock))
    with pytest.raises(RuntimeError):
        worker.apply(batch)
    results = [r for item in batch for r in worker.apply([item], isolate=True)]
    assert isinstance(results[0], SyncResult)
    assert isinstance(results[1], Refusal) and results[1].reason == "processing_error"
    assert counted(store, live) == 1
    assert KafkaIngest(store, TOPIC, classify).resume_offset(0) == 1  # the refusal's offset


def test_a_partitions_progress_is_snapshotted_and_loads_the_same(
    store: Store, clock: FixedClock, live: UUID
) -> None:
    worker = KafkaIngest(store, TOPIC, classify)
    for offset in range(0, 110):
        worker.apply(records(success(live, f"s{offset}", clock), start=offset))
    worker.apply(records(Refusal("invalid_json", "x"), start=110))
    assert store.application.snapshots is not None
    assert list(store.application.snapshots.get(progress_id(TOPIC, 0)))
    assert KafkaIngest(store, TOPIC, classify).resume_offset(0) == 110
    [again] = KafkaIngest(store, TOPIC, classify).apply(
        records(success(live, "x", clock), start=110)
    )
    assert again == Refusal("invalid_json", "x")


def test_a_report_applied_from_kafka_and_re_sent_over_http_counts_once(
    store: Store, clock: FixedClock, live: UUID
) -> None:
    report = failure(live, "run-9", clock)
    KafkaIngest(store, TOPIC, classify).apply(records(report))
    assert sync_events.record_sync_event(store, report).duplicate
    assert counted(store, live) == 1
