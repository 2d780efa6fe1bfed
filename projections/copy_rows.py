"""New read-model rows written by COPY on PostgreSQL: in binary format where the table's
column types allow it, else (or when a value does not fit its column's binary form) in text
format as before.

Formatting rows for a text COPY was a third of a catch-up's client time (psycopg's text
formatting of every cell, its UUID dumper in Python, the bytes sent); the binary format
costs the client and the server less (a UUID is 16 bytes, a timestamp 8, no parsing of
text on the server). The rows are formatted into a buffer BEFORE the COPY starts, so a
value the binary form refuses (a string in a UUID column, a naive datetime, ...) leaves
the transaction untouched and the same rows go by the text COPY instead: the database
ends up with the same rows either way. JSON cells are the same text in both formats
(`json_text`), sent as the bytes of that text.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from operator import itemgetter
from typing import Any

import psycopg
import sqlalchemy as sa
from psycopg.copy import Copy, Writer
from sqlalchemy.dialects import postgresql


def _json_text() -> Callable[[Any], str]:
    """A JSON cell as COPY sends it: what psycopg's `Json` wrapper would send (json.dumps
    with its defaults, `json.JSONEncoder().encode`), without a wrapper object and a dumper
    call per cell; and with the C encoder that `encode` builds on every call built once
    (with no table of the containers it is inside: a read model's cell holds no cycle)."""
    plain = json.JSONEncoder()
    make = getattr(json.encoder, "c_make_encoder", None)
    if make is None:  # no C accelerator: the standard encoder
        return plain.encode
    encoder = make(
        None,  # no markers: no circular-reference check
        plain.default,
        json.encoder.encode_basestring_ascii,  # ensure_ascii, as json.dumps
        plain.indent,
        plain.key_separator,
        plain.item_separator,
        plain.sort_keys,
        plain.skipkeys,
        plain.allow_nan,
    )
    return lambda value: "".join(encoder(value, 0))


json_text = _json_text()

# PostgreSQL's binary COPY type for each column type the read models use; a table with a
# column of any other type is written by the text COPY.
_BINARY_TYPES: tuple[tuple[type[sa.types.TypeEngine[Any]], str], ...] = (
    (sa.SmallInteger, "int2"),
    (sa.BigInteger, "int8"),
    (sa.Integer, "int4"),
    (sa.Boolean, "bool"),
    (sa.Float, "float8"),
    (sa.Uuid, "uuid"),
    (sa.DateTime, "timestamptz"),
    (sa.JSON, "bytea"),  # the cell's JSON text as bytes: the json type reads them as text
    (sa.String, "text"),  # Text and String (varchar reads the same bytes, length checked)
)


class CopyPlan:
    """How one table's rows are COPYed: its statement, what reads a row's cells in column
    order (at C speed), where its JSON cells are, and its binary COPY types (None: text)."""

    def __init__(self, table: sa.Table) -> None:
        columns = [c.name for c in table.columns]
        names = ", ".join(f'"{c}"' for c in columns)
        self.text_statement = f'COPY "{table.name}" ({names}) FROM STDIN'
        self.binary_statement = f"{self.text_statement} (FORMAT BINARY)"
        self.cells: Callable[[dict[str, Any]], Sequence[Any]] = (
            itemgetter(*columns) if len(columns) > 1 else lambda row: (row[columns[0]],)
        )
        self.json_at = [i for i, c in enumerate(table.columns) if isinstance(c.type, sa.JSON)]
        types = [_binary_type(c.type) for c in table.columns]
        self.binary_types: list[str] | None = None if None in types else types  # type: ignore[assignment]

    def rows(self, rows: Sequence[dict[str, Any]], *, binary: bool) -> list[Sequence[Any]]:
        """The rows' cells in column order, JSON cells as their text (binary: its bytes)."""
        cells, json_at = self.cells, self.json_at
        if not json_at:
            return [cells(row) for row in rows]
        out: list[Sequence[Any]] = []
        for row in rows:
            found = list(cells(row))
            for i in json_at:
                found[i] = json_text(found[i]).encode() if binary else json_text(found[i])
            out.append(found)
        return out


_PLANS: dict[sa.Table, CopyPlan] = {}


def plan_of(table: sa.Table) -> CopyPlan:
    """The table's CopyPlan (built once per table, not per step)."""
    plan = _PLANS.get(table)
    if plan is None:
        plan = _PLANS[table] = CopyPlan(table)
    return plan


def _binary_type(column_type: sa.types.TypeEngine[Any]) -> str | None:
    impl = column_type.impl if isinstance(column_type, sa.TypeDecorator) else column_type
    if isinstance(impl, sa.DateTime) and not impl.timezone:
        return None  # timestamp without time zone: not a type the read models use
    if isinstance(impl, sa.Float) and impl.precision is not None:
        return None  # may be a real (float4)
    if isinstance(impl, postgresql.JSONB | sa.Enum):
        return None  # jsonb's binary form is not its text; an enum is its own type
    for kind, name in _BINARY_TYPES:
        if isinstance(impl, kind):
            return name
    return None


class _Collected(Writer):
    """A COPY's data gathered in memory (nothing sent)."""

    def __init__(self) -> None:
        self.parts: list[bytes] = []

    def write(self, data: Any) -> None:
        self.parts.append(bytes(data))


def binary_data(
    connection: psycopg.Connection[Any], types: list[str], rows: Sequence[Sequence[Any]]
) -> bytes:
    """The rows in PostgreSQL's binary COPY format (signature, rows, trailer), formatted by
    psycopg's binary dumpers for these column types; raises if a value does not fit."""
    collected = _Collected()
    with Copy(connection.cursor(), binary=True, writer=collected) as copy:
        copy.set_types(types)
        for row in rows:
            copy.write_row(row)
    return b"".join(collected.parts)


def copy_rows(
    connection: psycopg.Connection[Any], table: sa.Table, rows: Sequence[dict[str, Any]]
) -> None:
    """Writes new rows into `table` by one COPY (binary when every value fits)."""
    plan = plan_of(table)
    cursor = connection.cursor()
    if plan.binary_types is not None:
        try:
            data = binary_data(connection, plan.binary_types, plan.rows(rows, binary=True))
        except Exception:  # a value the binary form refuses: the text COPY, as before
            data = None
        if data is not None:
            with cursor.copy(plan.binary_statement) as copy:
                copy.write(data)
            return
    with cursor.copy(plan.text_statement) as copy:
        for cells in plan.rows(rows, binary=False):
            copy.write_row(cells)
