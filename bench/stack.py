"""Benchmark: the compose topology (`appstore stack`) at a given scale, on PostgreSQL + Kafka.

In one run, with the processes compose.yaml names (scaled by the options):
  a. Kafka ingest: a backlog of N reports waits on a 6-partition topic when the consumers
     start; their rate from first commit to the last, against raw kafka-python reading the
     same backlog (the ratio);
  b. HTTP: sellers signing up, installing, authorizing, renewing and cancelling (each write
     waits until the read models have it) on T closed-loop threads for S seconds, spread
     over the api processes: answers/s, p50/p99, against GET /healthz on the same threads.

    make bench-stack BENCH_ARGS="--workers 4 --consumers 3"
"""

from __future__ import annotations

import argparse
import os
import tempfile
import threading
import time
import uuid
from pathlib import Path

import httpx
from rich.console import Console
from rich.table import Table

from appstore.bootstrap import build_store
from appstore.processes import migrate
from appstore.settings import Settings
from bench.kafka_traffic import installations, produce, raw_consume
from bench.support import fresh_database, percentile, progress_bar
from consumers.config import WorkerConfig, ensure_topics
from tests import factories as f
from tests.stack_support import SellerJourneys, StackRun, end_offsets, group_behind, timed

console = Console()


def healthz_rate(apis: list[str], threads: int, seconds: float) -> float:
    """GET /healthz answers per second on `threads` closed-loop threads (the raw baseline)."""
    answered = [0] * threads
    stop = time.monotonic() + seconds

    def work(n: int) -> None:
        with httpx.Client(timeout=10) as client:
            while time.monotonic() < stop:
                client.get(f"{apis[answered[n] % len(apis)]}/healthz")
                answered[n] += 1

    workers = [threading.Thread(target=work, args=(n,)) for n in range(threads)]
    for w in workers:
        w.start()
    for w in workers:
        w.join()
    return sum(answered) / seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--api-processes", type=int, default=1)
    parser.add_argument("--workers", type=int, default=4, help="uvicorn workers per api")
    parser.add_argument("--projectors", type=int, default=2)
    parser.add_argument("--consumers", type=int, default=3)
    parser.add_argument("--backlog", type=int, default=20_000, help="reports waiting")
    parser.add_argument("--threads", type=int, default=8, help="seller threads")
    parser.add_argument("--seconds", type=float, default=20.0)
    args = parser.parse_args()
    admin_url = os.environ["APPSTORE_TEST_POSTGRES_URL"]
    kafka = os.environ["APPSTORE_TEST_KAFKA_BOOTSTRAP"]
    url = fresh_database(admin_url, "stack")
    topic, group = f"sync-{uuid.uuid4().hex[:8]}", f"group-{uuid.uuid4().hex[:8]}"
    settings = Settings(database_url=url, fast_password_hashing=True)
    migrate(settings)
    store = build_store(settings)
    with progress_bar(console) as progress:
        ids = installations(store, 50, progress)
        apps = [f.app(store) for _ in range(6)]
        ensure_topics(WorkerConfig(bootstrap_servers=kafka, topic=topic, partitions=6))
        produce(kafka, topic, ids, args.backlog, progress, "backlog of reports")
        raw = raw_consume(kafka, topic, args.backlog, progress)
    folder = Path(tempfile.mkdtemp(prefix="appstore-stack-bench-"))
    stack = StackRun(
        folder, url, kafka,
        "--scale", f"api={args.api_processes}", "--scale", f"projector={args.projectors}",
        "--scale", f"consumer={args.consumers}", "--workers", str(args.workers),
        "--env", f"APPSTORE_SYNC_EVENTS_TOPIC={topic}",
        "--env", f"APPSTORE_CONSUMER_GROUP_ID={group}",
        "--env", "APPSTORE_FAST_PASSWORD_HASHING=true",
    )  # fmt: skip
    marks = end_offsets(kafka, topic)
    stack.start()
    try:
        timed(lambda: group_behind(kafka, topic, group, marks) < args.backlog, 180, "a commit")
        began = time.monotonic()
        timed(lambda: group_behind(kafka, topic, group, marks) == 0, 600, "the backlog", 0.05)
        ingest = args.backlog / (time.monotonic() - began)
        timed(lambda: stack.status()["ready"], 180, "every process ready")
        apis = stack.urls("api")
        baseline = healthz_rate(apis, args.threads, args.seconds / 2)
        sellers = SellerJourneys(apis, apps, threads=args.threads)
        sellers.start()
        time.sleep(args.seconds)
        sellers.stop()
        answers = sellers.requests / args.seconds
    finally:
        if stack.running():
            stack.interrupt()
        store.close()
    shape = (
        f"api {args.api_processes}×{args.workers} workers, {args.projectors} projectors, "
        f"{args.consumers} consumers on 6 partitions"
    )
    table = Table(title=f"The stack at {shape}")
    for column in ("load", "rate", "raw baseline", "ratio", "p50 ms", "p99 ms"):
        table.add_column(column, justify="right")
    table.add_row(
        f"Kafka backlog of {args.backlog:,} → incidents",
        f"{ingest:,.0f} msg/s",
        f"{raw:,.0f} msg/s",
        f"{ingest / raw:.3f}",
        "",
        "",
    )
    latencies = [s * 1000 for s in sellers.latencies] or [0.0]
    table.add_row(
        f"seller writes, {args.threads} threads, {args.seconds:.0f} s",
        f"{answers:,.1f} req/s",
        f"{baseline:,.0f} /healthz/s",
        f"{answers / baseline:.3f}",
        f"{percentile(latencies, 50):.0f}",
        f"{percentile(latencies, 99):.0f}",
    )
    console.print(table)
    console.print(f"not answered: {dict(sellers.failures) or 'none'}; logs in {folder}")


if __name__ == "__main__":
    main()
