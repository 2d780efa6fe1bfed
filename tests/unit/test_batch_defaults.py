"""A new row in a projection's `Batch` starts from its own table's column defaults."""

from __future__ import annotations

from typing import cast

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from projections.batch import Batch


def test_new_rows_take_their_own_tables_defaults_when_another_table_has_its_name() -> None:
    # A read model rebuilt with other columns (a new definition, a test's own twin) is a new
    # Table object with the same name; the defaults of the first must not be reused.
    old = sa.Table(
        "twin",
        sa.MetaData(),
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("count", sa.Integer, default=1),
    )
    new = sa.Table(
        "twin",
        sa.MetaData(),
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("label", sa.String, default="none"),
    )
    no_database = cast(Connection, None)  # adding a row reads nothing
    assert Batch(no_database).add(old, {"id": 1}) == {"id": 1, "count": 1}
    assert Batch(no_database).add(new, {"id": 2}) == {"id": 2, "label": "none"}
