"""The store supports Python 3.11 to 3.13 (issue 10 #14): pyproject says so, and every
module of the project compiles on each of those interpreters found on this machine."""

from __future__ import annotations

import shutil
import subprocess
import tomllib
from pathlib import Path

import pytest
from packaging.specifiers import SpecifierSet

ROOT = Path(__file__).resolve().parents[2]
VERSIONS = ("3.11", "3.12", "3.13")
COMPILE_ALL = (
    "import pathlib, sys\n"
    "for path in sys.argv[1:]:\n"
    "    compile(pathlib.Path(path).read_text(), path, 'exec')\n"
)


def test_pyproject_admits_python_3_11_to_3_13() -> None:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    spec = SpecifierSet(project["requires-python"])
    assert all(f"{v}.0" in spec for v in VERSIONS)
    assert "3.10.0" not in spec
    ruff = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["ruff"]
    assert ruff["target-version"] == "py311"  # the oldest supported: no newer syntax slips in


def interpreter(version: str) -> str | None:
    """A working python{version} on this machine (PATH, or pyenv's versions), or None."""
    found = [shutil.which(f"python{version}")]
    found += sorted(str(p) for p in Path.home().glob(f".pyenv/versions/{version}.*/bin/python3"))
    for candidate in filter(None, found):
        runs = subprocess.run([candidate, "-c", "pass"], capture_output=True, timeout=30)
        if runs.returncode == 0:
            return candidate
    return None


@pytest.mark.parametrize("version", VERSIONS)
def test_every_module_compiles_on(version: str) -> None:
    python = interpreter(version)
    if python is None:
        pytest.skip(f"python{version} is not installed here")
    files = [
        str(p)
        for folder in (
            "domain",
            "application",
            "projections",
            "api",
            "consumers",
            "web",
            "appstore",
        )
        for p in sorted((ROOT / folder).rglob("*.py"))
    ]
    done = subprocess.run(
        [python, "-c", COMPILE_ALL, *files], capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr[-2000:]
