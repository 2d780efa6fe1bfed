"""`appstore stack`: the topology of compose.yaml as local processes, supervised.

Each service built from this repository runs as `python -m appstore <its command>` with
compose.yaml's environment, the local PostgreSQL and Kafka in place of compose's network
addresses, and ports of its own per replica. One-shots (`migrate`) run first and must
succeed; the others are restarted like compose's `restart: unless-stopped` when they exit
(after `restart_delay`, longer while they keep failing fast). Each process is the leader of
a process group of its own, so a stop reaches its children (uvicorn workers) too: SIGTERM,
then SIGKILL after `grace` seconds. Readiness is the service's compose healthcheck URL.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import httpx

from appstore.compose import Service, localized

LAUNCHER = (sys.executable, "-m", "appstore")
PROBE_TIMEOUT = 1.0
FAST_FAILURE = 10.0  # an exit this soon after a start doubles the next restart delay
MAX_RESTART_DELAY = 60.0
DATABASE_VARIABLE = "APPSTORE_DATABASE_URL"
KAFKA_VARIABLE = "APPSTORE_KAFKA_BOOTSTRAP_SERVERS"

PortFor = Callable[[str, int, int], int]  # (service, replica, compose's port) -> local port


class StackError(RuntimeError):
    """The stack cannot start (a one-shot failed, a port is taken): a message for the operator."""


def next_port(service: str, replica: int, port: int) -> int:
    """Replica N of a service listens on compose's port + N - 1 (api-1 8000, api-2 8001)."""
    return port + replica - 1


def _untaken(port: int, taken: set[int]) -> int:
    """`port`, or the next one up no other process of the stack has (in compose each
    container has ports of its own; here consumer-2 would otherwise meet dispatcher-1)."""
    while port in taken:
        port += 1
    taken.add(port)
    return port


@dataclass
class Replica:
    """One process of a service, as the supervisor sees it."""

    service: Service
    index: int
    argv: list[str]
    env: dict[str, str]
    log: Path
    ready_url: str | None
    process: subprocess.Popen[bytes] | None = None
    started_at: float = 0.0
    restarts: int = 0
    restart_delay: float = 0.0
    restart_at: float | None = None
    last_exit: int | None = None
    health: str = "starting"
    lag: int | None = None
    body: dict[str, Any] = field(default_factory=dict)

    @property
    def name(self) -> str:
        return f"{self.service.name}-{self.index}"

    @property
    def pid(self) -> int | None:
        return self.process.pid if self.process is not None else None

    def alive(self) -> bool:
        return self.process is not None and self.process.poll() is None


class Stack:
    """Starts, supervises and stops the processes of a topology."""

    def __init__(
        self,
        services: Sequence[Service],
        *,
        database_url: str,
        kafka: str,
        logs: Path,
        host: str = "127.0.0.1",
        port_for: PortFor = next_port,
        env: Mapping[str, str] | None = None,
        restart_delay: float = 3.0,
        grace: float = 10.0,
        launcher: Sequence[str] = LAUNCHER,
        on_event: Callable[[str], None] = print,
    ) -> None:
        self.services = list(services)
        self.logs = logs
        self.restart_delay, self.grace = restart_delay, grace
        self.launcher = list(launcher)
        self.on_event = on_event
        self.stopping = False
        self.replicas: list[Replica] = []
        self._once: list[Replica] = []
        self._probes = ThreadPoolExecutor(max_workers=8, thread_name_prefix="stack-probe")
        logs.mkdir(parents=True, exist_ok=True)
        taken: set[int] = set()
        for service in self.services:
            base = {**os.environ, **service.environment, "PYTHONUNBUFFERED": "1"}
            base[DATABASE_VARIABLE] = database_url
            if service.environment.get(KAFKA_VARIABLE):  # "" keeps a process off Kafka
                base[KAFKA_VARIABLE] = kafka
            base.update(env or {})
            for index in range(1, service.replicas + 1):
                ports = {
                    p: _untaken(port_for(service.name, index, p), taken) for p in service.ports()
                }
                replica = Replica(
                    service=service,
                    index=index,
                    argv=[*self.launcher, *localized(service.command, host, ports)],
                    env=dict(base),
                    log=logs / f"{service.name}-{index}.log",
                    ready_url=_local_url(service.ready_url, host, ports),
                )
                (self._once if service.once else self.replicas).append(replica)

    # --- starting ---------------------------------------------------------------------
    def start(self) -> None:
        """Runs the one-shots in order (each must exit 0), then starts every other process."""
        for replica in self._once:
            self._spawn(replica)
            assert replica.process is not None
            code = replica.last_exit = replica.process.wait()
            if code != 0:
                raise StackError(
                    f"{replica.name} failed (exit {code}); its log ends:\n{_tail(replica.log)}"
                )
            replica.health = "done"
            self.on_event(f"{replica.name} done")
        for replica in self.replicas:
            self._spawn(replica)

    def _spawn(self, replica: Replica) -> None:
        with replica.log.open("ab") as out:
            stamp = datetime.now(UTC).isoformat(timespec="seconds")
            out.write(f"--- appstore stack {stamp}: {' '.join(replica.argv)}\n".encode())
            out.flush()
            replica.process = subprocess.Popen(
                replica.argv,
                env=replica.env,
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,  # its own group: Ctrl-C reaches the stack, not it
            )
        replica.started_at = time.monotonic()
        replica.restart_at = None
        replica.health = "starting"
        self.on_event(f"{replica.name} started, pid {replica.pid}")

    # --- supervising ------------------------------------------------------------------
    def supervise(self) -> None:
        """One pass: notice exits, restart what is due, probe readiness."""
        now = time.monotonic()
        for replica in self.replicas:
            process = replica.process
            if process is not None and process.poll() is not None and replica.restart_at is None:
                replica.last_exit = process.returncode
                _kill_group(process.pid, signal.SIGKILL)  # orphaned workers go with it
                if self.stopping:
                    continue
                fast = now - replica.started_at < FAST_FAILURE
                replica.restart_delay = (
                    min(max(replica.restart_delay * 2, self.restart_delay), MAX_RESTART_DELAY)
                    if fast and replica.restarts
                    else self.restart_delay
                )
                replica.restart_at = now + replica.restart_delay
                replica.health = "exited"
                self.on_event(
                    f"{replica.name} (pid {process.pid}) exited with {process.returncode}; "
                    f"restarting in {replica.restart_delay:.0f} s (log: {replica.log})"
                )
            elif replica.restart_at is not None and now >= replica.restart_at and not self.stopping:
                replica.restarts += 1
                self._spawn(replica)
        self._probe()

    def _probe(self) -> None:
        live = [r for r in self.replicas if r.alive()]
        for replica, (health, lag, body) in zip(live, self._probes.map(_probe, live), strict=True):
            if health != replica.health:
                self.on_event(f"{replica.name} {health}")
            replica.health, replica.lag, replica.body = health, lag, body

    def ready(self) -> bool:
        """Every process is up and, where it has a readiness URL, answers 200."""
        return all(r.alive() and r.health in ("ready", "running") for r in self.replicas)

    def projections(self) -> dict[str, int]:
        """Each read model's lag behind the log, as an api process last reported it."""
        for replica in self.replicas:
            if replica.alive() and "projections" in replica.body:
                return {n: p["lag"] for n, p in replica.body["projections"].items()}
        return {}

    # --- stopping ---------------------------------------------------------------------
    def stop(self) -> dict[str, int | None]:
        """SIGTERM to every process, SIGKILL to the groups still there after the grace period;
        the exit code of each (negative: the signal that ended it)."""
        self.stopping = True
        running = [r for r in self.replicas if r.alive()]
        for replica in running:
            assert replica.process is not None
            _signal(replica.process, signal.SIGTERM)
        deadline = time.monotonic() + self.grace
        while any(r.alive() for r in running) and time.monotonic() < deadline:
            time.sleep(0.1)
        for replica in running:
            assert replica.process is not None
            if replica.alive():
                self.on_event(f"{replica.name} ignored SIGTERM for {self.grace:.0f} s: SIGKILL")
            _kill_group(replica.process.pid, signal.SIGKILL)
            replica.process.wait(timeout=30)
            replica.last_exit = replica.process.returncode
            replica.health = "stopped"
        self._probes.shutdown(wait=False, cancel_futures=True)
        return {r.name: r.last_exit for r in running}

    # --- reporting --------------------------------------------------------------------
    def status(self) -> dict[str, Any]:
        """The state of every process (what status.json holds)."""
        return {
            "time": datetime.now(UTC).isoformat(timespec="seconds"),
            "ready": self.ready(),
            "projections": self.projections(),
            "processes": [_row(r) for r in [*self._once, *self.replicas]],
        }

    def write_status(self, path: Path) -> None:
        """status.json, replaced atomically (scripts and tests read it while it changes)."""
        path.parent.mkdir(parents=True, exist_ok=True)
        scratch = path.with_suffix(".tmp")
        scratch.write_text(json.dumps(self.status(), indent=1))
        os.replace(scratch, path)


def _row(replica: Replica) -> dict[str, Any]:
    return {
        "name": replica.name,
        "service": replica.service.name,
        "pid": replica.pid,
        "alive": replica.alive(),
        "health": replica.health,
        "lag": replica.lag,
        "restarts": replica.restarts,
        "last_exit": replica.last_exit,
        "ready_url": replica.ready_url,
        "command": replica.argv[len(LAUNCHER) :],
        "log": str(replica.log),
    }


def _probe(replica: Replica) -> tuple[str, int | None, dict[str, Any]]:
    """(health, lag, /readyz body) of a running process."""
    if replica.ready_url is None:
        return "running", None, {}
    try:
        answer = httpx.get(replica.ready_url, timeout=PROBE_TIMEOUT)
        body = answer.json()
    except (httpx.HTTPError, ValueError):
        return "starting", None, {}
    health = "ready" if answer.status_code == 200 else f"not ready: {body.get('status', '?')}"
    return health, _lag(body), body


def _lag(body: dict[str, Any]) -> int | None:
    """What the process has not yet processed: events (api, projector: the furthest-behind
    read model), messages (consumer: its partitions), else what its loops report (dispatcher:
    deliveries due that nobody has claimed)."""
    if "projections" in body:
        return max((p["lag"] for p in body["projections"].values()), default=0)
    if "partitions" in body:
        return sum(p["lag"] or 0 for p in body["partitions"].values())
    lags = [loop["lag"] for loop in (body.get("loops") or {}).values() if loop["lag"] is not None]
    return max(lags) if lags else None


def _local_url(url: str | None, host: str, ports: Mapping[int, int]) -> str | None:
    if url is None:
        return None
    parts = urlsplit(url)
    port = ports.get(parts.port or 80, parts.port or 80)
    where = "127.0.0.1" if host in ("0.0.0.0", "") else host
    return urlunsplit(parts._replace(netloc=f"{where}:{port}"))


def _signal(process: subprocess.Popen[bytes], signum: signal.Signals) -> None:
    with contextlib.suppress(ProcessLookupError):
        process.send_signal(signum)


def _kill_group(pgid: int, signum: signal.Signals) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pgid, signum)


def _tail(path: Path, lines: int = 30) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return "(no log)"
