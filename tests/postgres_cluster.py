"""A PostgreSQL cluster of a test's own, which it may stop, start again and reconfigure
(scripts/postgres.sh), as tests/kafka_broker.py is for Kafka. The shared cluster of
`make test` must never be stopped: other tests run on it."""

from __future__ import annotations

import shutil
import subprocess
import uuid
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import psycopg

POSTGRES_SH = Path(__file__).resolve().parent.parent / "scripts" / "postgres.sh"


def can_run_postgres() -> bool:
    """Whether this machine has the PostgreSQL server binaries scripts/postgres.sh runs."""
    return bool(list(Path("/usr/lib/postgresql").glob("*/bin/initdb"))) or bool(
        shutil.which("initdb")
    )


class PrivatePostgres:
    """`start()` creates and runs the cluster; `stop()` / `resume()` take it away and back
    (same port, same data); `close()` stops it for good."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self.url = ""

    def _run(self, command: str, timeout: float = 120) -> str:
        done = subprocess.run(
            ["bash", str(POSTGRES_SH), command, str(self.directory)],
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )
        if done.returncode != 0:
            raise RuntimeError(f"postgres.sh {command} failed: {done.stderr[-2000:]}")
        return done.stdout.strip().splitlines()[-1] if done.stdout.strip() else ""

    def start(self) -> str:
        self.url = self._run("start")
        return self.url

    def stop(self) -> None:
        self._run("stop")

    def resume(self) -> None:
        self._run("resume")

    def close(self) -> None:
        self._run("stop")

    def new_database(self, owner: str | None = None) -> str:
        """The URL of a new, empty database (owned by `owner` when given; the URL then
        logs in as that role)."""
        name = f"t_{uuid.uuid4().hex[:12]}"
        self.sql(f'CREATE DATABASE "{name}"' + (f' OWNER "{owner}"' if owner else ""))
        parts = urlsplit(self.url)
        netloc = parts.netloc if owner is None else f"{owner}@{parts.hostname}:{parts.port}"
        return urlunsplit(parts._replace(path=f"/{name}", netloc=netloc))

    def sql(self, statement: str, database: str | None = None) -> list[tuple[object, ...]]:
        """Runs one statement as the superuser (autocommit), in `database` if given (else
        the cluster's first); the rows it returns."""
        url = self.url
        if database is not None:
            url = urlunsplit(urlsplit(url)._replace(path=f"/{database}"))
        with psycopg.connect(url, autocommit=True, connect_timeout=10) as conn:
            cursor = conn.execute(statement)  # type: ignore[arg-type]
            return list(cursor.fetchall()) if cursor.description else []
