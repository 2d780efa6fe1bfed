"""Benchmark: connector sync events from a Kafka topic to stored incidents, on PostgreSQL.

In one run, over the same N messages on the same broker:
  a. the raw kafka-python consume rate (poll only, no parsing, no store), and the floor of
     any worker that checks its input: the same consume with each report parsed and
     validated (`consumers.batches.parsed`, the worker's first step), no store;
  b. the worker's rate from topic to stored incidents (parse, validate, one transaction per
     batch through `KafkaIngest.apply` with each partition's progress, commit offsets),
     and the ratio b / a;
  c. end-to-end latency at a steady produce rate below capacity: produce → incident stored,
     and produce → incident visible in the incidents read model (projections.incidents).

    scripts/with-services.sh .venv/bin/python bench/ingest.py          # throw-away PG + Kafka
    python bench/ingest.py --database-url postgresql://... --bootstrap 127.0.0.1:9092 [-n 20000]

Every report is a failure by default (the worst case: each one is an event); with
`--success-share 0.8` that share of them are successes (a connector's runs mostly work),
which resolve the incidents of their area or, with nothing to resolve, change nothing.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import queue
import statistics
import threading
import time
import uuid

from rich.console import Console
from rich.progress import Progress

from application.store import Store
from appstore.bootstrap import build_store
from appstore.collector import fewer_collections
from appstore.settings import Settings
from bench.kafka_traffic import HandWrittenStore, installations, produce, raw_consume
from bench.processes import projector_process
from bench.support import Row, fresh_database, percentile, progress_bar, rows_table
from consumers.batches import parsed
from consumers.config import AGGREGATE_CACHE, WorkerConfig, ensure_topics
from consumers.worker import BatchOutcome, SyncEventWorker
from projections.read_side import build_projector

console = Console(width=150)


class WorkerRun:
    """The worker in a thread, with every committed batch handed to `on_batch`."""

    def __init__(self, store: Store, config: WorkerConfig) -> None:
        self.batches: queue.Queue[BatchOutcome] = queue.Queue()
        self.worker = SyncEventWorker(store, config, on_batch=self.batches.put)
        self.thread = threading.Thread(target=self.worker.run, name="bench-worker", daemon=True)

    def __enter__(self) -> WorkerRun:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.worker.stop()
        self.thread.join(timeout=60)


def worker_throughput(
    store: Store, config: WorkerConfig, count: int, progress: Progress
) -> tuple[float, float]:
    """The worker over the backlog; returns (msg/s from the first batch handed over by poll
    to the last commit, join s) — timed like `raw_consume`, from the first records in hand."""
    task = progress.add_task("b. worker: topic → stored incidents", total=count, rate="")
    started = time.time()
    first: float | None = None
    done = 0
    with fewer_collections(), WorkerRun(store, config) as run:  # as `appstore consume` runs
        while done < count:
            outcome = run.batches.get(timeout=120)
            first = first if first is not None else outcome.started_at
            done += outcome.applied
            if len(outcome.dead_letters):
                raise SystemExit(f"unexpected dead letters: {outcome.dead_letters[:3]}")
            last = outcome.committed_at
            progress.update(task, completed=done, rate=f"{done / max(last - first, 1e-9):,.0f}/s")
    assert first is not None
    return count / (last - first), first - started


def latency(
    store: Store,
    database_url: str,
    config: WorkerConfig,
    ids: list[uuid.UUID],
    count: int,
    rate: float,
    progress: Progress,
    read_model: bool = True,
) -> tuple[list[float], list[float] | None]:
    """Paced produce with the worker and the incidents projection running.

    Returns latencies (ms) produce → stored, and produce → visible in the read model.
    """
    projector = None
    stack = contextlib.ExitStack()
    if read_model:
        projector = build_projector(store, database_url, names=["incidents"])
        process, log = stack.enter_context(projector_process(database_url))
        head = projector.head()
        deadline = time.monotonic() + 120
        while projector.positions()["incidents"] < head:
            if time.monotonic() > deadline or process.poll() is not None:
                stack.close()
                raise SystemExit(f"the projector did not catch up with run b:\n{log.read_text()}")
            time.sleep(0.1)
    stored: list[float] = []
    visible: list[float] = []
    task = progress.add_task("c. paced latency run", total=count, rate="")
    producer = threading.Thread(
        target=produce,
        args=(
            config.bootstrap_servers,
            config.topic,
            ids,
            count,
            progress,
            "   producing (paced)",
            rate,
        ),
        daemon=True,
    )
    with stack, WorkerRun(store, config) as run:
        producer.start()
        done = 0
        while done < count:
            outcome = run.batches.get(timeout=120)
            produced = [record.timestamp / 1000 for record, _ in outcome.stored]
            stored += [(outcome.committed_at - t) * 1000 for t in produced]
            positions = [r.position for _, r in outcome.stored if r.position is not None]
            if projector is not None and positions:
                deadline = time.monotonic() + 30
                while projector.positions()["incidents"] < max(positions):
                    if time.monotonic() > deadline:
                        raise SystemExit("the incidents projection did not catch up in 30 s")
                    time.sleep(0.005)
                seen = time.time()
                visible += [(seen - t) * 1000 for t in produced]
            done += len(outcome.stored)
            if os.environ.get("BENCH_DEBUG"):
                console.log(
                    f"batch {len(outcome.stored)} took "
                    f"{outcome.committed_at - outcome.started_at:.3f}s, "
                    f"max lag {max(stored[-len(produced) :], default=0):.0f} ms"
                )
            progress.update(task, completed=done, rate=f"p50 {statistics.median(stored):,.0f} ms")
        producer.join(timeout=60)
    return stored, (visible if projector is not None else None)


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("--database-url", default=os.environ.get("APPSTORE_TEST_POSTGRES_URL"))
    p.add_argument("--bootstrap", default=os.environ.get("APPSTORE_TEST_KAFKA_BOOTSTRAP"))
    p.add_argument("-n", "--messages", type=int, default=20_000)
    p.add_argument("--installations", type=int, default=200)
    p.add_argument("--partitions", type=int, default=4)
    p.add_argument("--batch-size", type=int, default=500)
    p.add_argument(
        "--success-share", type=float, default=0.0, help="share of successes (default: none)"
    )
    p.add_argument("--latency-messages", type=int, default=2_000)
    p.add_argument("--latency-rate", type=float, default=150.0, help="messages/s in run c")
    p.add_argument(
        "--no-read-model", action="store_true", help="c without the incidents projection"
    )
    p.add_argument(
        "--aggregate-cache",
        type=int,
        default=AGGREGATE_CACHE,
        help="aggregates the worker's store keeps cached (0: off; default: as `appstore consume`)",
    )
    return p


def run(args: argparse.Namespace) -> list[Row]:
    if not args.database_url or not args.bootstrap:
        raise SystemExit(
            "needs --database-url (PostgreSQL) and --bootstrap (Kafka), or run it "
            "under scripts/with-services.sh"
        )

    database_url = fresh_database(args.database_url)
    settings = Settings(database_url=database_url, fast_password_hashing=True)
    store = build_store(settings, aggregate_cache=args.aggregate_cache)
    topic = f"bench.sync-events-{uuid.uuid4().hex[:8]}"
    config = WorkerConfig(
        bootstrap_servers=args.bootstrap,
        topic=topic,
        group_id=f"bench-{uuid.uuid4().hex[:8]}",
        partitions=args.partitions,
        batch_size=args.batch_size,
    )
    latency_config = WorkerConfig(
        bootstrap_servers=args.bootstrap,
        topic=f"{topic}-latency",
        group_id=f"bench-latency-{uuid.uuid4().hex[:8]}",
        partitions=args.partitions,
        batch_size=args.batch_size,
    )
    ensure_topics(config)
    ensure_topics(latency_config)
    console.print(
        f"[bold]ingest benchmark[/]: {args.messages:,} messages, {args.installations} "
        f"installations, {args.partitions} partitions, batches of {args.batch_size}, PostgreSQL, "
        f"aggregate cache {args.aggregate_cache or 'off'}"
    )
    with progress_bar(console) as progress:
        ids = installations(store, args.installations, progress)
        produce_s = produce(
            args.bootstrap,
            topic,
            ids,
            args.messages,
            progress,
            "produce backlog",
            success_share=args.success_share,
        )
        raw_rate = raw_consume(args.bootstrap, topic, args.messages, progress)
        parse_rate = raw_consume(
            args.bootstrap, topic, args.messages, progress, "   consume + parse only", parsed
        )
        hand_written = HandWrittenStore(database_url)
        try:
            hand_rate = raw_consume(
                args.bootstrap,
                topic,
                args.messages,
                progress,
                "   hand-written consumer (parse, COPY, commit)",
                hand_written,
                commit=True,
            )
        finally:
            hand_written.close()
        worker_rate, join_s = worker_throughput(store, config, args.messages, progress)
        stored, visible = latency(
            store,
            database_url,
            latency_config,
            ids,
            args.latency_messages,
            args.latency_rate,
            progress,
            read_model=not args.no_read_model,
        )
    store.close()

    ratio = worker_rate / raw_rate
    mix = f", {args.success_share:.0%} successes" if args.success_share else ""
    rows = [
        Row(
            "ingest",
            f"worker: topic → stored incidents ({args.messages:,} msgs{mix})",
            f"{worker_rate:,.0f} msg/s",
            f"raw consume {raw_rate:,.0f} msg/s",
            ratio,
            "≥ 0.5 of raw",
            ratio >= 0.5,
        ),
        Row(
            "ingest",
            "  the floor: consume + parse and validate each report (the worker's first step)",
            f"{parse_rate:,.0f} msg/s",
            f"raw consume {raw_rate:,.0f} msg/s",
            parse_rate / raw_rate,
        ),
        Row(
            "ingest",
            "  the worker vs a hand-written consumer (parse, a row per report by COPY, "
            "a transaction per batch, commit offsets; no event sourcing)",
            f"{worker_rate:,.0f} msg/s",
            f"hand-written {hand_rate:,.0f} msg/s",
            worker_rate / hand_rate,
        ),
        Row(
            "ingest",
            f"  produce (acks=all); group join before first batch {join_s:.1f} s",
            f"{args.messages / produce_s:,.0f} msg/s",
        ),
        Row(
            "ingest",
            f"produce → stored p50 / p99 at {args.latency_rate:,.0f} msg/s",
            f"{percentile(stored, 50):,.0f} / {percentile(stored, 99):,.0f} ms",
        ),
    ]
    if visible is not None:
        rows.append(
            Row(
                "ingest",
                "produce → visible in the read model p50 / p99",
                f"{percentile(visible, 50):,.0f} / {percentile(visible, 99):,.0f} ms",
                goal="p99 < 250 ms (produce → read model)",
                met=percentile(visible, 99) < 250,
            )
        )
    return rows


def main() -> None:
    console.print(rows_table(run(parser().parse_args()), "sync events → incidents"))


if __name__ == "__main__":
    main()
