"""The stack's supervisor on stand-in processes: restarts after an exit, SIGKILL after the
grace period, a dead process's children go with it, a failing one-shot stops the start,
readiness and lag from /readyz; and `appstore stack` refuses what cannot work."""

from __future__ import annotations

import os
import signal
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from appstore.cli import cli
from appstore.compose import Service
from appstore.stack import Stack, StackError
from tests.stack_support import timed

# Stands in for `python -m appstore`: what it does is named by its first argument.
PROCESS = r"""
import http.server, json, os, signal, subprocess, sys, time
role = sys.argv[1]
if role == "polite":
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
elif role == "stubborn":
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
elif role == "failing":
    print("the schema cannot be created", flush=True)
    sys.exit(3)
elif role == "parent":
    child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(120)"])
    open(sys.argv[2], "w").write(str(child.pid))
elif role in ("serve", "dispatch"):
    answers = {
        "serve": {"status": "ok", "projections": {"catalog": {"position": 5, "lag": 2}}},
        "dispatch": {"status": "ok", "loops": {"dispatcher-webhook": {"lag": 7}, "other": {"lag": None}}},
    }
    class Ready(http.server.BaseHTTPRequestHandler):
        def do_GET(self):
            body = json.dumps(answers[role])
            self.send_response(200)
            self.end_headers()
            self.wfile.write(body.encode())
    http.server.HTTPServer(("127.0.0.1", int(sys.argv[3])), Ready).serve_forever()
time.sleep(120)
"""


@pytest.fixture
def make_stack(tmp_path: Path) -> Iterator[Callable[..., Stack]]:
    script = tmp_path / "process.py"
    script.write_text(PROCESS)
    made: list[Stack] = []

    def make(*services: Service, **options: Any) -> Stack:
        options.setdefault("restart_delay", 0.2)
        stack = Stack(
            services,
            database_url="postgresql://unused",
            kafka="",
            logs=tmp_path / "logs",
            launcher=[sys.executable, str(script)],
            on_event=lambda line: None,
            **options,
        )
        made.append(stack)
        return stack

    yield make
    for stack in made:
        stack.grace = 0
        stack.stop()


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return Path(f"/proc/{pid}/stat").read_text().split()[2] != "Z"


def test_a_process_that_dies_is_restarted_after_the_delay(make_stack: Callable[..., Stack]) -> None:
    stack = make_stack(Service("worker", ("polite",), {}, replicas=2))
    stack.start()
    first = stack.replicas[1]
    pid = first.pid
    assert pid is not None
    os.kill(pid, signal.SIGKILL)

    def restarted() -> bool:
        stack.supervise()
        return first.pid != pid and first.alive()

    timed(restarted, 10, "the restart")
    assert (first.restarts, first.last_exit) == (1, -signal.SIGKILL)
    assert stack.replicas[0].restarts == 0
    assert first.log.read_text().count("--- appstore stack") == 2
    assert stack.status()["processes"][1]["restarts"] == 1


def test_stop_sends_sigterm_then_sigkill_after_the_grace_period(
    make_stack: Callable[..., Stack],
) -> None:
    stack = make_stack(
        Service("polite", ("polite",), {}), Service("stubborn", ("stubborn",), {}), grace=1.0
    )
    stack.start()
    time.sleep(0.5)  # both have installed their SIGTERM handlers
    began = time.monotonic()
    exits = stack.stop()
    assert exits == {"polite-1": 0, "stubborn-1": -signal.SIGKILL}
    assert 1.0 <= time.monotonic() - began < 5


def test_the_children_of_a_killed_process_go_with_it(
    make_stack: Callable[..., Stack], tmp_path: Path
) -> None:
    child_file = tmp_path / "child.pid"
    stack = make_stack(Service("api", ("parent", str(child_file)), {}), restart_delay=30)
    stack.start()
    timed(child_file.exists, 10, "the child started")
    child = int(child_file.read_text())
    leader = stack.replicas[0].pid
    assert leader is not None
    os.kill(leader, signal.SIGKILL)  # as uvicorn's manager dying would leave its workers
    timed(lambda: stack.supervise() or not alive(child), 10, "the orphaned child killed")


def test_a_failing_one_shot_stops_the_start_with_its_log(make_stack: Callable[..., Stack]) -> None:
    stack = make_stack(
        Service("migrate", ("failing",), {}, once=True), Service("worker", ("polite",), {})
    )
    with pytest.raises(StackError, match="migrate-1 failed \\(exit 3\\)") as failure:
        stack.start()
    assert "the schema cannot be created" in str(failure.value)
    assert stack.replicas[0].process is None  # nothing else started


def test_readiness_and_lag_come_from_each_replica_s_own_port(
    make_stack: Callable[..., Stack],
) -> None:
    service = Service(
        "api",
        ("serve", "--port", "8000"),
        {},
        replicas=2,
        ready_url="http://127.0.0.1:8000/readyz",
    )
    ports = {1: _free_port(), 2: _free_port()}
    stack = make_stack(service, port_for=lambda name, replica, port: ports[replica])
    assert [r.ready_url for r in stack.replicas] == [
        f"http://127.0.0.1:{ports[n]}/readyz" for n in (1, 2)
    ]
    stack.start()
    timed(lambda: stack.supervise() or stack.ready(), 15, "both replicas ready")
    assert [(r.health, r.lag) for r in stack.replicas] == [("ready", 2), ("ready", 2)]
    assert stack.projections() == {"catalog": 2}


def test_a_dispatcher_s_lag_is_what_its_loops_report(make_stack: Callable[..., Stack]) -> None:
    port = _free_port()
    service = Service(
        "dispatcher",
        ("dispatch", "--metrics-port", "9109"),
        {},
        ready_url="http://127.0.0.1:9109/readyz",
    )
    stack = make_stack(service, port_for=lambda name, replica, p: port)
    stack.start()
    timed(lambda: stack.supervise() or stack.ready(), 15, "the dispatcher ready")
    (replica,) = stack.replicas
    assert (replica.health, replica.lag) == ("ready", 7)  # deliveries due, nobody claiming


def test_replicas_of_different_services_never_share_a_port() -> None:
    consumer = Service("consumer", ("consume", "--metrics-port", "9108"), {}, replicas=3)
    dispatcher = Service("dispatcher", ("dispatch", "--metrics-port", "9109"), {}, replicas=2)
    stack = Stack(
        [consumer, dispatcher], database_url="postgresql://h/db", kafka="", logs=Path("unused")
    )
    ports = {r.name: r.argv[-1] for r in stack.replicas}
    assert ports == {
        "consumer-1": "9108",
        "consumer-2": "9109",
        "consumer-3": "9110",
        "dispatcher-1": "9111",  # 9109 and 9110 are the consumers'
        "dispatcher-2": "9112",
    }


def test_each_process_gets_compose_env_with_local_addresses(
    make_stack: Callable[..., Stack],
) -> None:
    compose_env = {
        "APPSTORE_DATABASE_URL": "postgresql://appstore@postgres:5432/appstore",
        "APPSTORE_KAFKA_BOOTSTRAP_SERVERS": "kafka:9092",
        "APPSTORE_SERVE_WORKERS": "4",
    }
    api_env = {**compose_env, "APPSTORE_KAFKA_BOOTSTRAP_SERVERS": ""}
    stack = Stack(
        [Service("consumer", ("polite",), compose_env), Service("api", ("polite",), api_env)],
        database_url="postgresql://local/db",
        kafka="127.0.0.1:9",
        logs=Path("unused"),
        env={"APPSTORE_SERVE_WORKERS": "1"},
    )
    consumer, api = (r.env for r in stack.replicas)
    assert (
        consumer["APPSTORE_DATABASE_URL"] == api["APPSTORE_DATABASE_URL"] == "postgresql://local/db"
    )
    assert consumer["APPSTORE_KAFKA_BOOTSTRAP_SERVERS"] == "127.0.0.1:9"
    assert api["APPSTORE_KAFKA_BOOTSTRAP_SERVERS"] == ""  # the api stays off Kafka
    assert api["APPSTORE_SERVE_WORKERS"] == "1"


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--database-url", "sqlite:///x.db"], "needs PostgreSQL"),
        (["--database-url", "postgresql://h/db"], "need Kafka"),
        (
            ["--database-url", "postgresql://h/db", "--kafka", "k:1", "--scale", "nope=2"],
            "no service",
        ),
        (["--database-url", "postgresql://h/db", "--scale", "api"], "NAME=VALUE"),
    ],
)
def test_appstore_stack_refuses_what_cannot_work(
    args: list[str], message: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(Path(__file__).resolve().parent.parent.parent)
    monkeypatch.delenv("APPSTORE_DATABASE_URL", raising=False)
    monkeypatch.delenv("APPSTORE_KAFKA_BOOTSTRAP_SERVERS", raising=False)
    result = CliRunner().invoke(cli, ["stack", *args])
    assert result.exit_code == 2
    assert message in " ".join(result.output.split())


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])
