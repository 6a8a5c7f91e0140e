"""Round-trip matrix: Go (wasip1). ``int``/``uint`` are 64-bit; JSON is ``encoding/json``
into ``any``."""

from __future__ import annotations

import pytest

from .matrix import (
    I64,
    array_row,
    bool_row,
    bytes_row,
    float_row,
    int_row,
    json_row,
    make_fixture,
    make_tests,
    map_row,
    nonfinite_test,
    signed,
    str_row,
    unsigned,
)

#: 40-50 s on a busy 2-core machine (each refused or failing call costs a fresh Go instance):
#: ``make quick`` leaves it out, ``make test`` runs it.
pytestmark = pytest.mark.slow

LANGUAGE = "go"


def _id(ty: str) -> str:
    return "func {name}(x TYPE) TYPE {{\n\treturn x\n}}\n".replace("TYPE", ty)


INTS = [("int8", *signed(8)), ("int16", *signed(16)),
        ("int32", *signed(32)), ("int64", *I64), ("int", *I64), ("uint8", *unsigned(8)),
        ("uint16", *unsigned(16)), ("uint32", *unsigned(32)), ("uint64", *unsigned(64))]

ROWS = [
    *(int_row(ty, _id(ty), ty, lo, hi) for ty, lo, hi in INTS),
    float_row("float32", _id("float32"), "float32", 32),
    float_row("float64", _id("float64"), "float64", 64),
    bool_row("bool", _id("bool"), "bool"),
    str_row("string", _id("string"), "string"),
    bytes_row("bytes", _id("[]byte"), "[]byte"),
    array_row("float64_slice", _id("[]float64"), "[]float64", "<f8"),
    array_row("float32_slice", _id("[]float32"), "[]float32", "<f4"),
    array_row("int32_slice", _id("[]int32"), "[]int32", "<i4"),
    array_row("int64_slice", _id("[]int64"), "[]int64", "<i8"),
    json_row("json", _id("any"), "any", ints=I64, big_ints="either"),
    map_row("map", _id("map[string]int64"), "map[string]int64", *I64),
]

matrix = make_fixture(LANGUAGE)
test_edges, test_generated = make_tests(ROWS)


NONFINITE_CELL = 'import "math"\n\nfunc nonfinite() map[string]float64 {\n\treturn map[string]float64{"nan": math.NaN(), "inf": math.Inf(1), "neg": math.Copysign(0, -1)}\n}\n'

test_nonfinite_floats_in_a_json_result = nonfinite_test(NONFINITE_CELL)
