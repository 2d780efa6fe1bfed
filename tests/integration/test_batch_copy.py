"""`Batch` writes new rows with COPY on PostgreSQL: every cell arrives as the row said,
JSON cells as psycopg's `Json` sends them (a JSON null stays a JSON null, not SQL NULL)."""

from __future__ import annotations

import json
import uuid

import pytest
import sqlalchemy as sa

from projections.batch import Batch
from projections.db import create_read_engine

pytestmark = pytest.mark.postgres

table = sa.Table(
    "batch_copy_probe",
    sa.MetaData(),
    sa.Column("id", sa.Uuid, primary_key=True),
    sa.Column("doc", sa.JSON, nullable=True),
    sa.Column("name", sa.String(64), nullable=True),
)


def test_copied_json_cells_are_the_text_psycopg_would_send(postgres_url: str) -> None:
    engine = create_read_engine(postgres_url)
    docs: list[object] = [
        {"name": "Tab\there", "tags": ["a", "é"], "n": 1.5, "nested": {"x": None}},
        [1, "two", {"3": True}],
        "a \\ backslash\nand a newline",
        None,
    ]
    ids = [uuid.uuid4() for _ in docs]
    with engine.begin() as conn:
        table.create(conn)
        batch = Batch(conn)
        for key, doc in zip(ids, docs, strict=True):
            batch.add(table, {"id": key, "doc": doc, "name": None})
        batch.flush()
    with engine.connect() as conn:
        rows = conn.execute(
            sa.select(table.c.id, sa.cast(table.c.doc, sa.Text), table.c.name)
        ).all()
    got = {key: (text, name) for key, text, name in rows}
    assert got == {key: (json.dumps(doc), None) for key, doc in zip(ids, docs, strict=True)}
    engine.dispose()
