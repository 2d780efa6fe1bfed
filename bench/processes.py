"""The store's processes a bench starts as they are deployed (`appstore serve`, `appstore
project`): started on a free port, waited for, measured from /proc (CPU, memory) and
/metrics, stopped on exit."""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import httpx

from bench.support import free_port


def command(*arguments: str) -> list[str]:
    """`appstore …` with this interpreter (the venv's entry point)."""
    return [sys.executable, "-c", "from appstore.cli import main; main()", *arguments]


@contextlib.contextmanager
def serving(url: str, log: Path, **env: str) -> Iterator[tuple[subprocess.Popen[bytes], str]]:
    """`appstore serve` on `url` (a free port, its output into `log`), with these extra
    environment variables; yields (the process, its base URL) and stops it on exit."""
    port = free_port()
    environment = {**os.environ, "APPSTORE_DATABASE_URL": url, **env}
    with log.open("wb") as out:  # the child keeps its own copy of the descriptor
        server = subprocess.Popen(
            command("serve", "--port", str(port)),
            env=environment,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    try:
        yield server, f"http://127.0.0.1:{port}"
    finally:
        stop(server)


@contextlib.contextmanager
def projector_process(database_url: str) -> Iterator[tuple[subprocess.Popen[bytes], Path]]:
    """`appstore project` in its own process, as deployed; stopped on exit. Yields its log."""
    env = dict(os.environ, APPSTORE_DATABASE_URL=database_url)
    env["APPSTORE_PROJECTOR_POLL_INTERVAL"] = "0.01"
    log = Path(tempfile.mkdtemp(prefix="bench-projector-")) / "projector.log"
    with log.open("wb") as out:
        process = subprocess.Popen(
            command("project"), env=env, stdout=out, stderr=subprocess.STDOUT
        )
    try:
        yield process, log
    finally:
        stop(process)


def stop(process: subprocess.Popen[bytes]) -> None:
    process.terminate()
    try:
        process.wait(timeout=30)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait(timeout=10)


def wait_healthy(base: str, server: subprocess.Popen[bytes], log: Path, seconds: float) -> None:
    """Until /healthz answers 200; else exits with the server's log."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline and server.poll() is None:
        try:
            if httpx.get(f"{base}/healthz", timeout=2).status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.2)
    raise SystemExit(f"appstore serve did not start:\n{log.read_text()[-4000:]}")


def wait_ready(base: str, server: subprocess.Popen[bytes], log: Path, seconds: float) -> None:
    """Until /readyz says ok with every projection caught up and the log's head still
    (a seeded store has installations the sweeper expires at start); else exits with
    the server's log."""
    deadline = time.monotonic() + seconds
    last = "no answer"
    settled = None
    while time.monotonic() < deadline:
        if server.poll() is not None:
            break
        try:
            ready = httpx.get(f"{base}/readyz", timeout=2).json()
            last = str(ready.get("status"))
            caught_up = all(p["lag"] == 0 for p in ready["projections"].values())
            if last == "ok" and caught_up and ready.get("head") == settled:
                return  # caught up, and the expiry sweep wrote nothing for a second
            settled = ready.get("head") if caught_up else None
            time.sleep(0.8)
        except (httpx.HTTPError, ValueError) as error:
            last = repr(error)
        time.sleep(0.2)
    server.kill()
    raise SystemExit(
        f"the server never became ready ({last}; exit code {server.poll()}):\n"
        + log.read_text()[-4000:]
    )


def scrape(base: str) -> dict[str, float]:
    """Every sample of /metrics as {'name{labels}': value}."""
    found: dict[str, float] = {}
    for line in httpx.get(f"{base}/metrics", timeout=10).text.splitlines():
        if line and not line.startswith("#"):
            key, _, value = line.rpartition(" ")
            found[key] = float(value)
    return found


def cpu_seconds(pid: int) -> float:
    """CPU seconds (user + system) of a process and its children so far (Linux /proc; 0.0
    elsewhere). Robust where latency is not: on a shared machine."""
    total = 0.0
    pending = [pid]
    while pending:
        current = pending.pop()
        try:
            fields = Path(f"/proc/{current}/stat").read_text().rsplit(")", 1)[1].split()
            total += (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
            pending += [
                int(c) for c in Path(f"/proc/{current}/task/{current}/children").read_text().split()
            ]
        except (OSError, ValueError, IndexError):
            continue
    return total


def rss_mb(pid: int) -> tuple[float, float]:
    """(current, peak) resident set of a process in MB, from /proc (Linux)."""
    fields = dict(
        line.split(":", 1) for line in Path(f"/proc/{pid}/status").read_text().splitlines()
    )
    return int(fields["VmRSS"].split()[0]) / 1024, int(fields["VmHWM"].split()[0]) / 1024
