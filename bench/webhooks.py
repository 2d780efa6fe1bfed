"""Benchmark: webhook deliveries/s to a local receiver vs raw httpx POSTs, and the latency
from an event being stored to its delivery arriving.

The receiver is a separate process (uvicorn, a bare ASGI app) on 127.0.0.1 that records
each POST's `webhook-id` and arrival time. In the same run:

- baseline: N bodies POSTed with a pooled `httpx.Client` from as many threads as the
  dispatcher's concurrency: the HTTP cost alone;
- deliveries/s: N stored events (installations authorized, one subscription) turned into
  deliveries by the projector and sent by the dispatcher (claim events, signing, the SSRF
  guard, outcome events), both running as `appstore serve` runs them: ratio = deliveries/s
  over raw POSTs/s (goal ≥ 0.5);
- latency: events appended one by one at --rate per second while the projector and the
  dispatcher run with serve's default poll intervals; event stored → POST arrived;
- at scale: N more events, then `appstore project` and `appstore dispatch` as processes
  of their own: deliveries/s from the first arrival to the last.

    python -m bench.webhooks [--deliveries 2000] [--latency-events 300] [--rate 50]
                             [--database-url postgresql://...]

Default database: a fresh one on APPSTORE_TEST_POSTGRES_URL when set (`make
bench-webhooks`), else a fresh SQLite file.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import httpx
import sqlalchemy as sa
from rich.console import Console

from application import webhooks
from appstore.bootstrap import build_store
from appstore.outbound import build_dispatchers, secret_box
from appstore.settings import Settings, WebhookSettings
from bench.processes import command
from bench.support import Row, free_port, fresh_database, percentile, progress_bar, rows_table
from domain.webhook import message_id
from projections.read_side import build_projector
from projections.runner import Projector
from projections.webhook_deliveries import deliveries
from tests import factories as f

console = Console(width=140)
GOAL = 0.5

RECEIVER = """
import sys, time, json, uvicorn
seen = {}
async def app(scope, receive, send):
    if scope["type"] != "http":
        return
    more = True
    while more:
        message = await receive()
        more = message.get("more_body", False)
    headers = dict(scope["headers"])
    if scope["method"] == "POST":
        seen[headers.get(b"webhook-id", b"").decode()] = time.time()
        body = b"ok"
    elif scope["path"] == "/count":  # cheap to poll while deliveries arrive
        body = str(sum(1 for k in seen if k.startswith("msg_"))).encode()
    else:
        body = json.dumps(seen).encode()
    await send({"type": "http.response.start", "status": 200,
                "headers": [(b"content-type", b"application/json")]})
    await send({"type": "http.response.body", "body": body})
uvicorn.run(app, host="127.0.0.1", port=int(sys.argv[1]), log_level="warning",
            access_log=False, lifespan="off")
"""


class ReceiverProcess:
    def __init__(self) -> None:
        self.port = free_port()
        self.process = subprocess.Popen([sys.executable, "-c", RECEIVER, str(self.port)])
        deadline = time.monotonic() + 20
        while True:
            try:
                self.seen()
                return
            except OSError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.1)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/hooks"

    def seen(self) -> dict[str, float]:
        with urllib.request.urlopen(self.url, timeout=10) as answer:
            found: dict[str, float] = json.load(answer)
            return found

    def count(self) -> int:
        with urllib.request.urlopen(f"http://127.0.0.1:{self.port}/count", timeout=10) as answer:
            return int(answer.read())

    def wait_for(self, ids: set[str], timeout: float) -> dict[str, float]:
        """Every one of `ids` (and nothing else is delivered meanwhile)."""
        deadline = time.monotonic() + timeout
        while True:
            if self.count() >= len(ids):
                seen = self.seen()
                if ids <= seen.keys():
                    return seen
            if time.monotonic() > deadline:
                raise TimeoutError(f"{len(ids - self.seen().keys())} deliveries missing")
            time.sleep(0.02)

    def stop(self) -> None:
        self.process.terminate()
        self.process.wait(timeout=10)


def raw_posts(url: str, count: int, concurrency: int) -> float:
    """POSTs/s of `count` 300-byte bodies with a pooled client from `concurrency` threads."""
    client = httpx.Client(timeout=10, limits=httpx.Limits(max_connections=concurrency * 4))
    body = json.dumps({"id": "msg_x", "type": "installation.authorized", "data": "x" * 250})

    def post(i: int) -> None:
        client.post(url, content=body, headers={"webhook-id": f"raw-{i}"}).raise_for_status()

    with ThreadPoolExecutor(concurrency) as pool:
        list(pool.map(post, range(20)))  # warm up the connections
        started = time.perf_counter()
        list(pool.map(post, range(20, 20 + count)))
        elapsed = time.perf_counter() - started
    client.close()
    return count / elapsed


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("--deliveries", type=int, default=2000)
    p.add_argument("--latency-events", type=int, default=300)
    p.add_argument("--rate", type=float, default=50.0, help="events/s in the latency run")
    p.add_argument("--database-url", default=None, help="default: a fresh SQLite file")
    return p


def run(args: argparse.Namespace) -> list[Row]:

    url = args.database_url
    if url is None and os.environ.get("APPSTORE_TEST_POSTGRES_URL"):  # make bench-webhooks
        url = fresh_database(os.environ["APPSTORE_TEST_POSTGRES_URL"], "bench_webhooks")
    url = url or f"sqlite:///{tempfile.mkdtemp(prefix='bench-webhooks-')}/w.db"
    settings = Settings(
        database_url=url,
        fast_password_hashing=True,
        webhooks=WebhookSettings(allow_loopback=True, secret_key="bench"),
    )
    store = build_store(settings)
    projector = build_projector(store, url)
    receiver = ReceiverProcess()
    concurrency = settings.webhooks.concurrency
    stop = threading.Event()
    threads: list[threading.Thread] = []
    try:
        console.print(f"[bold]raw httpx[/bold]: {args.deliveries} POSTs, {concurrency} threads")
        raw_rate = raw_posts(receiver.url, args.deliveries, concurrency)

        developer = f.developer(store)
        app = f.app(store, developer)
        webhooks.subscribe(
            store, secret_box(settings), developer, app, receiver.url,
            ["installation.authorized"], allow_loopback=True,
        )  # fmt: skip
        installs = []
        with progress_bar(console) as bar:
            task = bar.add_task("events", total=args.deliveries, rate="")
            for _ in range(args.deliveries):
                installs.append(f.active_installation(store, f.seller(store), app))
                bar.advance(task)
        projector.catch_up()
        by_installation = messages_by_installation(projector)
        expected = {by_installation[str(i)] for i in installs}

        threads.append(threading.Thread(target=projector.run_forever, args=(stop, 0.05)))
        threads += [
            threading.Thread(target=d.run, args=(stop, settings.webhooks.poll_interval))
            for d in build_dispatchers(store, projector.engine, settings)
        ]
        started = time.perf_counter()
        for thread in threads:
            thread.start()
        receiver.wait_for(expected, timeout=600)
        delivered_rate = args.deliveries / (time.perf_counter() - started)

        # Latency: events one by one at a steady rate while everything runs.
        appended: dict[str, float] = {}
        with progress_bar(console) as bar:
            task = bar.add_task("latency run", total=args.latency_events, rate="")
            for _ in range(args.latency_events):
                due = time.perf_counter() + 1 / args.rate
                installation = f.active_installation(store, f.seller(store), app)
                appended[str(installation)] = time.time()
                bar.advance(task)
                time.sleep(max(0.0, due - time.perf_counter()))
        projector.catch_up()
        by_installation = messages_by_installation(projector)
        ids = {by_installation[i]: at for i, at in appended.items()}
        seen = receiver.wait_for(set(ids), timeout=120)
        latencies = [(seen[m] - at) * 1000 for m, at in ids.items()]
        stop.set()
        for thread in threads:
            thread.join(timeout=30)

        # At scale: `appstore project` and `appstore dispatch` as processes of their own.
        installs = []
        with progress_bar(console) as bar:
            task = bar.add_task("events (processes)", total=args.deliveries, rate="")
            for _ in range(args.deliveries):
                installs.append(f.active_installation(store, f.seller(store), app))
                bar.advance(task)
        scale_rate = processes_rate(url, receiver, store, projector, installs)
    finally:
        stop.set()
        for thread in threads:
            thread.join(timeout=30)
        receiver.stop()
        projector.engine.dispose()
        store.close()

    ratio = delivered_rate / raw_rate
    engine = url.split(":")[0].split("+")[0]
    return [
        Row(
            "webhooks",
            f"deliveries, projector + dispatcher threads ({args.deliveries:,}, {engine})",
            f"{delivered_rate:,.0f}/s",
            f"httpx POSTs {raw_rate:,.0f}/s ({concurrency} threads)",
            ratio,
            f"≥ {GOAL} of raw",
            ratio >= GOAL,
        ),
        Row(
            "webhooks",
            "  `appstore project` + `appstore dispatch` processes",
            f"{scale_rate:,.0f}/s",
            f"httpx POSTs {raw_rate:,.0f}/s",
            scale_rate / raw_rate,
        ),
        Row(
            "webhooks",
            f"event stored → delivered p50 / p99 at {args.rate:.0f} events/s",
            f"{percentile(latencies, 50):.0f} / {percentile(latencies, 99):.0f} ms",
        ),
    ]


def main() -> None:
    console.print(rows_table(run(parser().parse_args()), "webhook deliveries vs raw POSTs"))


def processes_rate(
    url: str, receiver: ReceiverProcess, store: Any, projector: Projector, installs: list[Any]
) -> float:
    """Deliveries/s (first to last arrival) with the projector and the dispatcher each in
    its own `appstore` process, as at scale."""
    env = dict(os.environ)
    env.update(
        APPSTORE_DATABASE_URL=url,
        APPSTORE_WEBHOOKS_ALLOW_LOOPBACK="true",
        APPSTORE_WEBHOOKS_SECRET_KEY="bench",
    )
    started = [
        subprocess.Popen(command(name), env=env, stderr=subprocess.DEVNULL)
        for name in ("project", "dispatch")
    ]
    try:
        deadline = time.monotonic() + 600
        while True:
            by_installation = messages_by_installation(projector)
            if all(str(i) in by_installation for i in installs):
                break
            if time.monotonic() > deadline:
                raise TimeoutError("the projector process did not catch up")
            time.sleep(0.1)
        expected = {by_installation[str(i)] for i in installs}
        seen = receiver.wait_for(expected, timeout=600)
    finally:
        for process in started:
            process.terminate()
            process.wait(timeout=30)
    arrivals = sorted(seen[m] for m in expected)
    return (len(arrivals) - 1) / max(arrivals[-1] - arrivals[0], 1e-9)


def messages_by_installation(projector: Projector) -> dict[str, str]:
    """installation id → the webhook-id of its installation.authorized delivery."""
    with projector.engine.connect() as conn:
        rows = conn.execute(sa.select(deliveries.c.id, deliveries.c.payload)).all()
    return {row.payload["installation_id"]: message_id(row.id) for row in rows}


if __name__ == "__main__":
    main()
