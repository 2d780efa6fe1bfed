"""The shape stays: imports follow the layers, form no circle, and no module reads another's
private names (shared/SPEC.md, "Layers"). Parsed from the source, nothing is imported."""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
PACKAGES = ("domain", "application", "projections", "consumers", "api", "web", "appstore")
# What each package may import (besides itself and the outside world).
ALLOWED: dict[str, set[str]] = {
    "domain": set(),
    "application": {"domain"},
    "projections": {"domain", "application"},
    "consumers": {"domain", "application"},
    "api": {"domain", "application", "projections"},
    "web": {"domain", "application", "projections", "api"},
    "appstore": {"domain", "application", "projections", "consumers", "api", "web"},
}
# Library attributes that are public by convention despite the underscore.
PUBLIC_UNDERSCORED = {"_mapping", "_replace", "_asdict", "_fields"}
MAX_LINES = 400

Sources = dict[str, str]  # module name -> source text


def project_sources() -> Sources:
    sources: Sources = {}
    for package in PACKAGES:
        for path in sorted((ROOT / package).rglob("*.py")):
            parts = list(path.relative_to(ROOT).with_suffix("").parts)
            if parts[-1] == "__init__":
                parts.pop()
            sources[".".join(parts)] = path.read_text()
    return sources


def imports(sources: Sources, module: str) -> Iterator[tuple[str, list[str]]]:
    """(imported module, names taken from it) of every import anywhere in `module`."""
    for node in ast.walk(ast.parse(sources[module])):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield alias.name, []
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names = [alias.name for alias in node.names]
            # `from api import accounts` imports the module api.accounts
            submodules = [n for n in names if f"{node.module}.{n}" in sources]
            for name in submodules:
                yield f"{node.module}.{name}", []
            yield node.module, [n for n in names if n not in submodules]


def layer_violations(sources: Sources) -> list[str]:
    wrong = []
    for module in sources:
        package = module.split(".")[0]
        for imported, _ in imports(sources, module):
            target = imported.split(".")[0]
            if target in PACKAGES and target != package and target not in ALLOWED[package]:
                wrong.append(f"{module} imports {imported}")
    return wrong


def circles(sources: Sources) -> list[list[str]]:
    graph = {
        module: {i for i, _ in imports(sources, module) if i in sources and i != module}
        for module in sources
    }
    found: list[list[str]] = []
    state: dict[str, int] = {}  # 1: on the current path, 2: done
    path: list[str] = []

    def visit(module: str) -> None:
        state[module] = 1
        path.append(module)
        for imported in sorted(graph[module]):
            if state.get(imported) == 1:
                found.append([*path[path.index(imported) :], imported])
            elif imported not in state:
                visit(imported)
        path.pop()
        state[module] = 2

    for module in sorted(graph):
        if module not in state:
            visit(module)
    return found


def private_reads(sources: Sources) -> list[str]:
    wrong = []
    for module in sources:
        for imported, names in imports(sources, module):
            wrong += [
                f"{module}: from {imported} import {name}"
                for name in names
                if name.startswith("_") and not name.startswith("__")
            ]
        for node in ast.walk(ast.parse(sources[module])):
            if not isinstance(node, ast.Attribute):
                continue
            name = node.attr
            if not name.startswith("_") or name.startswith("__") or name in PUBLIC_UNDERSCORED:
                continue
            if isinstance(node.value, ast.Name) and node.value.id in ("self", "cls"):
                continue
            wrong.append(f"{module}:{node.lineno} reads .{name}")
    return wrong


SOURCES = project_sources()


def test_every_import_follows_the_layers() -> None:
    assert layer_violations(SOURCES) == []


def test_there_is_no_import_circle() -> None:
    assert circles(SOURCES) == []


def test_no_module_reads_another_modules_private_names() -> None:
    assert private_reads(SOURCES) == []


@pytest.mark.parametrize("module", sorted(SOURCES))
def test_no_module_holds_two_ideas(module: str) -> None:
    lines = len(SOURCES[module].splitlines())
    assert lines <= MAX_LINES, f"{module} has {lines} lines: split it along its ideas"


@pytest.mark.parametrize("path", sorted((ROOT / "bench").glob("*.py")), ids=lambda p: p.name)
def test_no_bench_holds_two_ideas(path: Path) -> None:
    lines = len(path.read_text().splitlines())
    assert lines <= MAX_LINES, f"bench/{path.name} has {lines} lines: split it along its ideas"


def test_the_checks_find_what_they_look_for() -> None:
    planted: Sources = {
        "domain.values": "import application.store\n",
        "application.store": "from domain import values\n",
        "api.routes": "from api.helpers import _secret\nimport application.store as s\ns._get(1)\n",
        "api.helpers": "_secret = 1\n",
    }
    assert layer_violations(planted) == ["domain.values imports application.store"]
    assert circles(planted) == [["application.store", "domain.values", "application.store"]]
    assert private_reads(planted) == [
        "api.routes: from api.helpers import _secret",
        "api.routes:3 reads ._get",
    ]
