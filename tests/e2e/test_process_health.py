"""`appstore project` and `appstore dispatch` with `--metrics-port` answer /healthz, /readyz
and /metrics as `appstore consume` does (one health server, appstore/health_server.py), and
stop cleanly on SIGTERM."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
from pathlib import Path
from typing import Any

import httpx
import pytest

from appstore.bootstrap import build_store
from appstore.settings import Settings
from tests import factories as f
from tests.stack_support import REPO, timed


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _start(settings: Settings, log: Path, *command: str) -> tuple[subprocess.Popen[Any], str]:
    port = _free_port()
    env = {**os.environ, "APPSTORE_DATABASE_URL": settings.database_url}
    env["APPSTORE_WEBHOOKS_SECRET_KEY"] = "process health key"
    argv = [sys.executable, "-m", "appstore", *command, "--metrics-port", str(port)]
    argv += ["--metrics-host", "127.0.0.1"]
    with log.open("ab") as out:
        process = subprocess.Popen(argv, cwd=REPO, env=env, stdout=out, stderr=subprocess.STDOUT)
    return process, f"http://127.0.0.1:{port}"


def _ready(base: str) -> dict[str, Any] | None:
    try:
        answer = httpx.get(f"{base}/readyz", timeout=2)
    except httpx.HTTPError:
        return None
    return dict(answer.json()) if answer.status_code == 200 else None


@pytest.mark.parametrize(
    ("command", "loop"), [("project", "projector"), ("dispatch", "dispatcher-webhook")]
)
def test_a_process_without_the_api_serves_its_health_on_its_metrics_port(
    settings: Settings, tmp_path: Path, command: str, loop: str
) -> None:
    store = build_store(settings)
    f.active_installation(store, f.seller(store), f.app(store))  # events to project
    log = tmp_path / f"{command}.log"
    process, base = _start(settings, log, command)
    try:
        body: dict[str, Any] = {}

        def ready() -> bool:
            body.update(_ready(base) or {})
            return bool(body)

        timed(ready, 60, f"{command}'s /readyz 200")
        assert (body["status"], body["ready"]) == ("ok", True)
        assert body["loops"][loop]["alive"]
        if command == "project":
            timed(lambda: (_ready(base) or {}).get("head") == store.head(), 30, "at the head")
            projections = (_ready(base) or {})["projections"]
            assert projections and all(p["lag"] == 0 for p in projections.values())
        metrics = httpx.get(f"{base}/metrics", timeout=5).text
        assert f'appstore_loop_up{{loop="{loop}"}} 1.0' in metrics
        assert f'appstore_loop_ready{{loop="{loop}"}} 1.0' in metrics
        assert httpx.get(f"{base}/healthz", timeout=5).json() == {"status": "ok"}
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=30) == 0, log.read_text()[-3000:]
        with pytest.raises(httpx.ConnectError):
            httpx.get(f"{base}/healthz", timeout=2)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait(timeout=10)
        store.close()
