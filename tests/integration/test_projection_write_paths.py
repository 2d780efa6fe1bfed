"""The projector's fast paths on PostgreSQL build exactly the rows of the plain ones: new
rows by binary COPY (projections/copy_rows.py) against the text COPY, over a history with
many kinds of events, every column of every read-model table compared as PostgreSQL prints
it (timestamps with their zone, JSON text as stored, floats, NULLs, text)."""

from __future__ import annotations

import random
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pytest
import sqlalchemy as sa

import projections.copy_rows as copy_rows
from appstore.bootstrap import build_store
from appstore.settings import Settings
from domain.clock import FixedClock
from projections.batch import Batch
from projections.read_side import build_projector
from projections.runner import Projector
from tests.histories import OPS, World

pytestmark = pytest.mark.postgres


def printed(projector: Projector) -> dict[str, list[str]]:
    """Every row of every read-model table as PostgreSQL prints it, sorted."""
    out: dict[str, list[str]] = {}
    with projector.engine.connect() as conn:
        for projection in projector.projections.values():
            for table in projection.tables:
                rows = conn.exec_driver_sql(f'SELECT t::text FROM "{table.name}" t').scalars()
                out[table.name] = sorted(rows)
    return out


@pytest.fixture
def spied(monkeypatch: pytest.MonkeyPatch) -> Iterator[dict[str, int]]:
    """Counts the binary formattings that succeeded and those refused."""
    counts = {"binary": 0, "refused": 0}
    real = copy_rows.binary_data

    def counting(*args: Any) -> bytes:
        try:
            data = real(*args)
        except Exception:
            counts["refused"] += 1
            raise
        counts["binary"] += 1
        return data

    monkeypatch.setattr(copy_rows, "binary_data", counting)
    yield counts


def rebuilt(projector: Projector) -> dict[str, list[str]]:
    for name in projector.projections:
        projector.reset(name)
    projector.catch_up()
    return printed(projector)


def test_binary_copy_builds_the_rows_the_text_copy_builds(
    postgres_url: str, spied: dict[str, int], monkeypatch: pytest.MonkeyPatch
) -> None:
    clock = FixedClock()
    store = build_store(
        Settings(database_url=postgres_url, fast_password_hashing=True), clock=clock
    )
    world = World(store, clock)
    pick = random.Random(11)
    for op in sorted(set(OPS)):  # every command at least once, then a random history
        world.apply(op, pick.randrange(1 << 16))
    for _ in range(400):
        world.apply(pick.choice(OPS), pick.randrange(1 << 16))
    projector = build_projector(store, postgres_url, batch_size=37)
    try:
        fast = rebuilt(projector)
        assert spied["binary"] > 0 and spied["refused"] == 0

        def refused(*_: Any) -> bytes:
            raise TypeError("plain path")

        monkeypatch.setattr(copy_rows, "binary_data", refused)
        plain = rebuilt(projector)
        assert fast == plain
        filled = [name for name, rows in plain.items() if rows]
        assert len(filled) >= 12, filled  # most tables have rows to compare
        kinds = {n.topic for n in store.notifications(1, 1_000_000)}
        assert len(kinds) >= 20, kinds
    finally:
        projector.engine.dispose()
        store.close()


probe = sa.Table(
    "copy_rows_probe",
    sa.MetaData(),
    sa.Column("id", sa.Uuid, primary_key=True),
    sa.Column("label", sa.String(64), nullable=True),
    sa.Column("note", sa.Text, nullable=True),
    sa.Column("doc", sa.JSON, nullable=True),
    sa.Column("at", sa.DateTime(timezone=True), nullable=True),
    sa.Column("small", sa.SmallInteger, nullable=True),
    sa.Column("count", sa.Integer, nullable=True),
    sa.Column("big", sa.BigInteger, nullable=True),
    sa.Column("score", sa.Float, nullable=True),
    sa.Column("flag", sa.Boolean, nullable=True),
)


def _cells(n: int) -> list[dict[str, Any]]:
    paris = timezone(timedelta(hours=1))
    return [
        {
            "id": uuid.UUID(int=n),
            "label": "tab\there, back\\slash, new\nline, cr\r, é, \\N",
            "note": "",
            "doc": {"a": [1, 2.5, None, "x\ty"], "b": {"c": "\\"}},
            "at": datetime(2026, 3, 29, 1, 30, 0, 123456, tzinfo=UTC),
            "small": -32768,
            "count": 2**31 - 1,
            "big": -(2**63),
            "score": 0.1 + 0.2,
            "flag": True,
        },
        {
            "id": uuid.UUID(int=n + 1),
            "label": None,
            "note": None,
            "doc": None,  # a JSON null, not SQL NULL
            "at": datetime(1999, 12, 31, 23, 59, 59, tzinfo=paris),
            "small": None,
            "count": None,
            "big": None,
            "score": None,
            "flag": None,
        },
        {
            "id": uuid.UUID(int=n + 2),
            "label": "x",
            "note": "long " * 500,
            "doc": "a string",
            "at": None,
            "small": 0,
            "count": 7,  # an int in a float column below
            "big": 2**63 - 1,
            "score": 3,
            "flag": False,
        },
    ]


def test_each_column_type_is_written_alike_both_ways(
    postgres_url: str, spied: dict[str, int], monkeypatch: pytest.MonkeyPatch
) -> None:
    engine = sa.create_engine(postgres_url.replace("postgresql://", "postgresql+psycopg://"))
    try:
        with engine.begin() as conn:
            probe.create(conn)
            batch = Batch(conn)
            for row in _cells(0):
                batch.add(probe, row)
            batch.flush()
        assert spied == {"binary": 1, "refused": 0}
        monkeypatch.setattr(copy_rows, "binary_data", lambda *_: 1 / 0)
        with engine.begin() as conn:
            batch = Batch(conn)
            for row in _cells(100):
                batch.add(probe, row)
            batch.flush()
            conn.exec_driver_sql("SET LOCAL TimeZone = 'UTC'")
            rows = conn.exec_driver_sql("SELECT id, t::text FROM copy_rows_probe t").all()
        # "(id,rest)": the rest of the binary row n prints as that of the text row 100 + n
        by_id = {key.int: text.split(",", 1)[1] for key, text in rows}
        assert len(by_id) == 6
        for n in range(3):
            assert by_id[n] == by_id[100 + n]
        assert by_id[1].startswith(',,null,"1999-12-31 22:59:59+00"')  # JSON null, UTC
    finally:
        engine.dispose()
