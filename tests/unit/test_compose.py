"""compose.yaml in step with the code: every APPSTORE_* variable it sets is a setting, every
command it runs is a command of the CLI (with options it has), every package is in the
image, and `appstore stack` reads from it the topology the file describes."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

import pytest
import typer

from appstore.cli import cli
from appstore.compose import ComposeError, Service, interpolate, load, localized
from appstore.settings import environment_variables

REPO = Path(__file__).resolve().parent.parent.parent
COMPOSE = REPO / "compose.yaml"
ENV = {"APPSTORE_SECRET_KEY": "test-key"}


def unknown_variables(path: Path) -> list[str]:
    """APPSTORE_* variables the file sets that no setting reads."""
    known = {variable for variable, _, _ in environment_variables()}
    return sorted(
        f"{service.name}: {name}"
        for service in load(path, ENV)
        for name in service.environment
        if name.startswith("APPSTORE_") and name not in known
    )


def unknown_commands(path: Path) -> list[str]:
    """Service commands the CLI would refuse: no such command, or an option it lacks."""
    # typer's click (typer 0.29 ships its own): its group's commands, each parsing options.
    commands = getattr(typer.main.get_command(cli), "commands", {})
    problems = []
    for service in load(path, ENV):
        name, *args = service.command
        command = commands.get(name)
        if command is None:
            problems.append(f"{service.name}: no command `appstore {name}`")
            continue
        try:
            command.make_context(name, list(args))  # parses the options, runs nothing
        except Exception as error:  # click's UsageError: no such option, a bad value
            problems.append(f"{service.name}: `appstore {' '.join(service.command)}`: {error}")
    return problems


def test_every_appstore_variable_compose_sets_is_a_setting() -> None:
    assert unknown_variables(COMPOSE) == []


def test_every_service_command_is_a_real_cli_command_with_real_options() -> None:
    assert unknown_commands(COMPOSE) == []


def test_the_checks_catch_a_variable_and_commands_the_code_does_not_have(tmp_path: Path) -> None:
    planted = COMPOSE.read_text()
    planted = planted.replace("APPSTORE_SERVE_WORKERS:", "APPSTORE_SERVE_WORKRES:")
    planted = planted.replace('["appstore", "project",', '["appstore", "projector",')
    planted = planted.replace('"dispatch", "--metrics-port"', '"dispatch", "--metric-port"')
    path = tmp_path / "compose.yaml"
    path.write_text(planted)
    assert unknown_variables(path) == ["api: APPSTORE_SERVE_WORKRES"]
    problems = unknown_commands(path)
    assert [p.split(":")[0] for p in problems] == ["projector", "dispatcher"]
    assert "no command `appstore projector`" in problems[0]
    assert "--metric-port" in problems[1]


def test_the_stack_reads_the_topology_compose_describes() -> None:
    services = {s.name: s for s in load(COMPOSE, ENV)}
    # One-shot first.
    assert list(services) == ["migrate", "api", "projector", "consumer", "dispatcher"]
    assert services["migrate"].once and services["migrate"].command == ("migrate",)
    api = services["api"]
    assert (api.replicas, api.command[0]) == (1, "serve")
    assert api.environment["APPSTORE_SERVE_WORKERS"] == "4"
    assert api.environment["APPSTORE_SERVE_PROJECTIONS"] == "false"
    assert api.environment["APPSTORE_KAFKA_BOOTSTRAP_SERVERS"] == ""  # no consumer inside
    projector = services["projector"]
    assert (projector.replicas, projector.command) == (2, ("project", "--metrics-port", "9105"))
    assert services["consumer"].replicas == 3
    assert services["api"].ready_url == "http://127.0.0.1:8000/readyz"
    assert services["consumer"].ready_url == "http://127.0.0.1:9108/readyz"
    assert services["projector"].ready_url == "http://127.0.0.1:9105/readyz"
    dispatcher = services["dispatcher"]
    assert (dispatcher.replicas, dispatcher.command) == (2, ("dispatch", "--metrics-port", "9109"))
    assert dispatcher.ready_url == "http://127.0.0.1:9109/readyz"
    assert api.environment["APPSTORE_SERVE_DISPATCH"] == "false"  # dispatchers run apart
    assert all(s.environment["APPSTORE_SECRET_KEY"] == "test-key" for s in services.values())


def test_every_long_running_service_is_checked_on_its_readyz() -> None:
    running = [s for s in load(COMPOSE, ENV) if not s.once]
    assert running and all(
        s.ready_url is not None and s.ready_url.endswith("/readyz") for s in running
    ), [(s.name, s.ready_url) for s in running]


def test_each_healthcheck_asks_the_port_its_command_listens_on() -> None:
    for service in load(COMPOSE, ENV):
        if service.ready_url is not None:
            port = int(re.findall(r":(\d+)/", service.ready_url)[0])
            assert port in service.ports(), service.name


def test_compose_refuses_to_run_without_a_secret_key_for_the_pages() -> None:
    with pytest.raises(ComposeError, match="APPSTORE_SECRET_KEY"):
        load(COMPOSE, {})


def test_the_image_holds_every_package_the_project_installs() -> None:
    packages = tomllib.loads((REPO / "pyproject.toml").read_text())["tool"]["setuptools"]
    copied = re.findall(r"^COPY (\w+) \1$", (REPO / "Dockerfile").read_text(), re.MULTILINE)
    assert set(packages["packages"]) <= set(copied)


@pytest.mark.parametrize(
    ("value", "env", "expected"),
    [
        ("${A}", {"A": "1"}, "1"),
        ("${A}", {}, ""),
        ("${A:-d}", {"A": ""}, "d"),
        ("${A-d}", {"A": ""}, ""),
        ("${A:-d}", {}, "d"),
        ("x-${A:-d}-$${B}", {"A": "a"}, "x-a-${B}"),
        ("${A:?needed}", {"A": "v"}, "v"),
    ],
)
def test_interpolation_follows_compose(value: str, env: dict[str, str], expected: str) -> None:
    assert interpolate(value, env) == expected


def test_a_required_variable_missing_names_itself() -> None:
    with pytest.raises(ComposeError, match="TOKEN must be set: give one"):
        interpolate("${TOKEN:?give one}", {"TOKEN": ""})


def test_local_processes_bind_the_local_host_and_ports_of_their_own() -> None:
    command = ("serve", "--host", "0.0.0.0", "--port", "8000")
    assert localized(command, "127.0.0.1", {8000: 8001}) == [
        "serve", "--host", "127.0.0.1", "--port", "8001",
    ]  # fmt: skip
    assert localized(("consume", "--metrics-port=9108"), "127.0.0.1", {9108: 9110}) == [
        "consume",
        "--metrics-port=9110",
    ]
    assert Service("consumer", ("consume", "--metrics-port", "9108"), {}).ports() == [9108]


def test_a_circle_of_depends_on_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "compose.yaml"
    path.write_text(
        "services:\n"
        "  a: {build: ., command: [appstore, serve], depends_on: [b]}\n"
        "  b: {build: ., command: [appstore, project], depends_on: [a]}\n"
    )
    with pytest.raises(ComposeError, match="circle"):
        load(path, {})
