"""The JSON text COPY sends for a read model's JSON cell (projections/copy_rows.py, its C
encoder built once) is exactly json.dumps's: what psycopg's `Json` wrapper sends."""

from __future__ import annotations

import json

import pytest

from projections.copy_rows import json_text

VALUES: list[object] = [
    None,
    True,
    0,
    -(2**70),
    1.5,
    0.1 + 0.2,
    float("nan"),
    float("inf"),
    -float("inf"),
    "",
    'tab\t, quote ", backslash \\, newline \n, é, 😀, \x00',
    [],
    {},
    ["orders.read", "orders.write"],
    {"name": "App", "tags": ["a", "é"], "n": 1, "nested": {"x": None, "y": [1.25, False]}},
    {1: "int key", 2.5: "float key", None: "null key", False: "bool key"},
    [[[[]]], {"": {"": ""}}],
]


@pytest.mark.parametrize("value", VALUES, ids=repr)
def test_json_cells_are_json_dumps_text(value: object) -> None:
    assert json_text(value) == json.dumps(value) == json.JSONEncoder().encode(value)


def test_what_json_dumps_refuses_is_refused() -> None:
    with pytest.raises(TypeError):
        json_text({"at": object()})
