"""`appstore dispatch` processes: one SIGKILLed in the middle of a batch, two more take
over, and every delivery arrives (at-least-once: only what was in flight at the kill may
arrive twice). `appstore serve` dispatches in-process unless told not to."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
from collections import Counter
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from application import webhooks
from application.secret_box import SecretBox
from appstore.bootstrap import app_from_environment, build_store
from appstore.settings import Settings, WebhookSettings
from projections.read_side import build_projector
from projections.webhook_deliveries import deliveries
from tests import factories as f
from tests.webhook_receiver import Receiver, until

REPO = Path(__file__).resolve().parents[2]
KEY = "e2e webhook key"
DELIVERIES = 40
BATCH = 8


def _dispatcher(settings: Settings, log: Path) -> subprocess.Popen[Any]:
    env = dict(os.environ)
    env.update(
        APPSTORE_DATABASE_URL=settings.database_url,
        APPSTORE_WEBHOOKS_ALLOW_LOOPBACK="true",
        APPSTORE_WEBHOOKS_SECRET_KEY=KEY,
        APPSTORE_WEBHOOKS_TIMEOUT="2",
        APPSTORE_WEBHOOKS_BATCH_SIZE=str(BATCH),
        APPSTORE_WEBHOOKS_CONCURRENCY="4",
        APPSTORE_WEBHOOKS_FIRST_RETRY="1",
        APPSTORE_WEBHOOKS_POLL_INTERVAL="0.05",
    )
    command = [sys.executable, "-c", "from appstore.cli import main; main()", "dispatch"]
    with log.open("ab") as out:
        return subprocess.Popen(command, cwd=REPO, env=env, stdout=out, stderr=subprocess.STDOUT)


@pytest.mark.slow
def test_a_dispatcher_killed_mid_batch_loses_nothing(settings: Settings, tmp_path: Path) -> None:
    store = build_store(settings)
    projector = build_projector(store, settings.database_url)
    receiver = Receiver().start()
    receiver.delay = 0.2  # a batch takes a while: the kill lands in the middle of one
    stop = threading.Event()
    projecting = threading.Thread(target=projector.run_forever, args=(stop,), daemon=True)
    processes: list[subprocess.Popen[Any]] = []
    log = tmp_path / "dispatch.log"
    try:
        developer = f.developer(store)
        app = f.app(store, developer)
        made = webhooks.subscribe(
            store,
            SecretBox(KEY),
            developer,
            app,
            receiver.url(),
            ["installation.authorized"],
            allow_loopback=True,
        )
        for _ in range(DELIVERIES):
            f.active_installation(store, f.seller(store), app)
        projector.catch_up()
        projecting.start()

        first = _dispatcher(settings, log)
        processes.append(first)
        receiver.wait_for(BATCH + 2, timeout=60)
        first.send_signal(signal.SIGKILL)
        first.wait(timeout=10)
        at_kill = len(receiver.received)
        assert at_kill < DELIVERIES, "the first dispatcher finished before it was killed"

        processes += [_dispatcher(settings, log), _dispatcher(settings, log)]
        until(lambda: len({r.message_id for r in receiver.received}) == DELIVERIES, timeout=90)

        def all_succeeded() -> bool:
            with projector.engine.connect() as conn:
                statuses = conn.execute(
                    sa.select(deliveries.c.status).where(deliveries.c.webhook_id == made.id)
                ).scalars()
                return set(statuses) == {"succeeded"}

        until(all_succeeded, timeout=60)
        counts = Counter(r.message_id for r in receiver.received)
        again = [m for m, n in counts.items() if n > 1]
        assert max(counts.values()) <= 2
        assert len(again) <= BATCH  # only the batch in flight when the first one died
        assert all(r.verifies_with(made.secret) for r in receiver.received)
        for process in processes[1:]:
            process.send_signal(signal.SIGTERM)
            assert process.wait(timeout=30) == 0, log.read_text()[-3000:]
    finally:
        for process in processes:
            if process.poll() is None:
                process.kill()
                process.wait(timeout=10)
        stop.set()
        projecting.join(timeout=10)
        receiver.stop()
        projector.engine.dispose()
        store.close()


@pytest.mark.parametrize("flag", ["true", "false"])
def test_serve_dispatches_unless_told_that_dispatchers_run_elsewhere(
    settings: Settings, monkeypatch: pytest.MonkeyPatch, flag: str
) -> None:
    from starlette.testclient import TestClient

    monkeypatch.setenv("APPSTORE_SERVE_DISPATCH", flag)
    once = Settings(
        database_url=settings.database_url,
        fast_password_hashing=True,
        smtp_url="smtp://127.0.0.1:9",
        webhooks=WebhookSettings(secret_key=KEY),
    )
    with TestClient(app_from_environment(once)):
        names = {t.name for t in threading.enumerate()}
    assert ("dispatcher-webhook" in names) is (flag == "true")
    assert ("dispatcher-email" in names) is (flag == "true")
