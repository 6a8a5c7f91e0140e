"""Round-trip matrix: Python (Pyodide). ``int`` crosses as a signed 64-bit integer; JSON
values (unannotated parameters, ``list``, ``dict``) are Python's own JSON: ints of any size."""

from __future__ import annotations

from .matrix import (
    bool_row,
    bytes_row,
    float_row,
    int_row,
    json_row,
    make_fixture,
    make_tests,
    map_row,
    str_row,
)

LANGUAGE = "python"


def _id(ty: str) -> str:
    return "def {name}(x: TYPE) -> TYPE:\n    return x\n".replace("TYPE", ty)


ROWS = [
    int_row("int", _id("int"), "int", -(2**63), 2**63 - 1),
    float_row("float", _id("float"), "float", 64),
    bool_row("bool", _id("bool"), "bool"),
    str_row("str", _id("str"), "str", surrogates="either"),
    bytes_row("bytes", _id("bytes"), "bytes"),
    json_row("json", "def {name}(x):\n    return x\n", "Any", surrogates="either"),
    json_row("list", _id("list"), "list", surrogates="either"),
    map_row("dict", _id("dict[str, int]"), "dict[str, int]", -(2**63), 2**63 - 1,
            checked=False),
]

matrix = make_fixture(LANGUAGE)
test_edges, test_generated = make_tests(ROWS)
