"""`/healthz`, `/readyz` and `/metrics` of a process that does not serve the API.

`appstore serve` answers these on its own port (api/ops.py). `appstore project`,
`appstore consume` and `appstore dispatch` have no HTTP app: given `--metrics-port`, each
serves this small server over its background loops (`Loops`, application/loops.py), judged
by the one `ReadinessPolicy` of the settings (APPSTORE_READY_*), as the API's /readyz is:

- `/healthz`: 200 while the process runs (it reads nothing);
- `/readyz`: 200 `{"status": "ok", "ready": true, "loops": {...}}` when every loop is
  ready, else 503 naming the first one that is not (`projector_lagging`,
  `dispatcher-webhook_failing`, `consumer_stalled` …); what the process adds (`details`:
  a consumer's partitions, the projections' positions) is merged into the body;
- `/metrics`: Prometheus text: every loop's `appstore_loop_*` gauges (the families the API
  exports), the process's default registry (counters kept there, e.g. the consumer's) and
  the `collectors` given.

Each answer is computed from memory (what the loops last reported): a probe never waits
for the database.
"""

from __future__ import annotations

import json
import logging
import threading
from collections.abc import Callable, Sequence
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from prometheus_client import CONTENT_TYPE_LATEST, REGISTRY, CollectorRegistry, generate_latest
from prometheus_client.registry import Collector

from api.metrics import LoopCollector
from application.loops import Loops

log = logging.getLogger("appstore")

Details = Callable[[], dict[str, Any]]


def readiness(loops: Loops, details: Details | None = None) -> tuple[int, dict[str, Any]]:
    """(HTTP status, body) of `/readyz`: 503 naming the first loop that is not ready."""
    states = loops.snapshot()
    status = next(
        (f"{name}_{state['status']}" for name, state in states.items() if not state["ready"]),
        "ok",
    )
    body = {**(details() if details else {}), "status": status, "ready": status == "ok"}
    body["loops"] = states
    return (200 if status == "ok" else 503), body


def serve_health(
    loops: Loops,
    host: str,
    port: int,
    *,
    details: Details | None = None,
    collectors: Sequence[Collector] = (),
    name: str = "health",
) -> ThreadingHTTPServer:
    """Serves `/healthz`, `/readyz` and `/metrics` in a daemon thread until `shutdown()`.
    `port` 0 takes a free one (`server_address[1]` says which)."""
    own = CollectorRegistry()
    own.register(LoopCollector(loops))
    for collector in collectors:
        own.register(collector)

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            path = self.path.split("?", 1)[0]
            if path == "/metrics":
                body = generate_latest(REGISTRY) + generate_latest(own)
                self._send(200, body, CONTENT_TYPE_LATEST)
            elif path == "/readyz":
                status, state = readiness(loops, details)
                self._send(status, json.dumps(state).encode(), "application/json")
            elif path == "/healthz":
                self._send(200, b'{"status": "ok"}', "application/json")
            else:
                self._send(404, b'{"status": "not found"}', "application/json")

        def _send(self, status: int, body: bytes, content_type: str) -> None:
            self.send_response(status)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: Any) -> None:
            pass  # probes and scrapes every few seconds would drown the process's own log

    server = ThreadingHTTPServer((host, port), Handler)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, name=name, daemon=True).start()
    where = f"http://{host}:{server.server_address[1]}"
    log.info("%s: /healthz, /readyz and /metrics on %s", name, where)
    return server
