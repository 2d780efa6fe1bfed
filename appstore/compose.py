"""compose.yaml read as the store's topology: which `appstore` processes run, how many of
each, with which environment, and how each says it is ready.

`appstore stack` runs these as local processes (appstore/stack.py), so compose.yaml is the
one description of the topology; tests/unit/test_compose.py keeps it in step with the
settings class and the CLI. Only services built from this repository (`build:`) are
processes of ours; `postgres` and `kafka` are addresses the stack is given.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

# ${VAR}, ${VAR:-default}, ${VAR-default}, ${VAR:?error}, ${VAR?error}; $$ is a literal $.
_VARIABLE = re.compile(
    r"\$\$|\$\{(?P<name>[A-Za-z_][A-Za-z0-9_]*)(?:(?P<op>:?[-?])(?P<arg>[^}]*))?\}"
)
_URL = re.compile(r"https?://[^\s'\"]+")


class ComposeError(ValueError):
    """compose.yaml cannot be read as a topology (a message for the operator)."""


@dataclass(frozen=True)
class Service:
    """One service of compose.yaml that runs this repository's image."""

    name: str
    command: tuple[str, ...]  # the arguments after `appstore`
    environment: Mapping[str, str]
    replicas: int = 1
    once: bool = False  # a one-shot others wait for (`service_completed_successfully`)
    ready_url: str | None = None  # from its healthcheck: http://127.0.0.1:PORT/readyz
    depends_on: tuple[str, ...] = field(default=())

    def ports(self) -> list[int]:
        """The ports its command listens on (`--port N`, `--metrics-port N`, …)."""
        return [int(value) for option, value in _options(self.command) if _is_port(option)]


def interpolate(value: str, env: Mapping[str, str]) -> str:
    """compose's variable substitution in one value."""

    def replace(match: re.Match[str]) -> str:
        if match.group(0) == "$$":
            return "$"
        name, op, arg = match.group("name"), match.group("op"), match.group("arg") or ""
        current = env.get(name)
        unset = current is None or (current == "" and op is not None and op.startswith(":"))
        if op in ("-", ":-"):
            return arg if unset else str(current)
        if op in ("?", ":?"):
            if unset:
                raise ComposeError(f"{name} must be set: {arg or 'required by compose.yaml'}")
            return str(current)
        return current or ""

    return _VARIABLE.sub(replace, value)


def load(path: Path, env: Mapping[str, str] | None = None) -> list[Service]:
    """The services of compose.yaml built from this repository, one-shots first, each after
    what it depends on."""
    env = os.environ if env is None else env
    try:
        document = yaml.safe_load(path.read_text())
    except (OSError, yaml.YAMLError) as error:
        raise ComposeError(f"cannot read {path}: {error}") from None
    services: dict[str, Any] = (document or {}).get("services") or {}
    completed = {
        dependency
        for spec in services.values()
        for dependency, condition in _depends_on(spec).items()
        if condition == "service_completed_successfully"
    }
    ours = {name: spec for name, spec in services.items() if "build" in (spec or {})}
    found = [_service(name, spec, env, name in completed, set(ours)) for name, spec in ours.items()]
    return _ordered(found)


def _service(
    name: str, spec: dict[str, Any], env: Mapping[str, str], once: bool, ours: set[str]
) -> Service:
    command = [str(part) for part in spec.get("command") or []]
    if not command or command[0] != "appstore":
        raise ComposeError(f"service {name}: command must start with `appstore`, not {command}")
    environment = spec.get("environment") or {}
    if isinstance(environment, list):  # the KEY=VALUE list form
        environment = dict(item.split("=", 1) for item in environment)
    replicas = int(((spec.get("deploy") or {}).get("replicas")) or 1)
    health = (spec.get("healthcheck") or {}).get("test") or []
    urls = _URL.findall(" ".join(str(part) for part in health))
    return Service(
        name=name,
        command=tuple(command[1:]),
        environment={k: interpolate(str(v), env) for k, v in environment.items()},
        replicas=1 if once else replicas,
        once=once,
        ready_url=urls[0] if urls else None,
        depends_on=tuple(d for d in _depends_on(spec) if d in ours),
    )


def _depends_on(spec: dict[str, Any] | None) -> dict[str, str]:
    depends = (spec or {}).get("depends_on") or {}
    if isinstance(depends, list):
        return {name: "service_started" for name in depends}
    return {
        name: (rule or {}).get("condition", "service_started") for name, rule in depends.items()
    }


def _ordered(services: list[Service]) -> list[Service]:
    by_name = {s.name: s for s in services}
    done: list[Service] = []

    def visit(service: Service, path: tuple[str, ...]) -> None:
        if service in done:
            return
        if service.name in path:
            raise ComposeError(f"depends_on forms a circle: {' → '.join((*path, service.name))}")
        for dependency in service.depends_on:
            visit(by_name[dependency], (*path, service.name))
        done.append(service)

    for service in sorted(services, key=lambda s: not s.once):
        visit(service, ())
    return done


def _options(command: tuple[str, ...] | list[str]) -> list[tuple[str, str]]:
    """(option, value) pairs of a command: `--port 8000` and `--port=8000` alike."""
    pairs = []
    for i, part in enumerate(command):
        if part.startswith("--") and "=" in part:
            option, value = part.split("=", 1)
            pairs.append((option, value))
        elif part.startswith("--") and i + 1 < len(command):
            pairs.append((part, command[i + 1]))
    return pairs


def _is_port(option: str) -> bool:
    return option == "--port" or option.endswith("-port")


def _is_host(option: str) -> bool:
    return option == "--host" or option.endswith("-host")


def localized(command: tuple[str, ...], host: str, ports: Mapping[int, int]) -> list[str]:
    """The command with its bind addresses set to `host` and its ports mapped (each replica
    of a service on one machine needs ports of its own)."""
    out = list(command)
    for i, part in enumerate(out):
        if not part.startswith("--"):
            continue
        option, _, inline = part.partition("=")
        if not (_is_port(option) or _is_host(option)):
            continue
        value = inline if inline else (out[i + 1] if i + 1 < len(out) else "")
        new = host if _is_host(option) else str(ports.get(int(value), int(value)))
        if inline:
            out[i] = f"{option}={new}"
        elif i + 1 < len(out):
            out[i + 1] = new
    return out
