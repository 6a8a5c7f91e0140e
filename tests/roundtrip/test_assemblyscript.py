"""Round-trip matrix: AssemblyScript (wasm32). ``isize`` is 32-bit; no dynamic JSON value:
lists and maps are typed (``f64[]``, ``Map<string, i64>``)."""

from __future__ import annotations

from hypothesis import strategies as st

from .matrix import (
    I64,
    REFUSED,
    Row,
    array_row,
    bool_row,
    bytes_row,
    float_row,
    int_row,
    make_fixture,
    make_tests,
    map_row,
    nonfinite_test,
    nullable,
    same,
    signed,
    str_row,
    unsigned,
)

LANGUAGE = "assemblyscript"


def _id(ty: str) -> str:
    return "export function {name}(x: TYPE): TYPE {{\n  return x;\n}}\n".replace("TYPE", ty)


INTS = [("i8", *signed(8)), ("i16", *signed(16)), ("i32", *signed(32)),
        ("i64", *I64), ("isize", *signed(32)), ("u8", *unsigned(8)),
        ("u16", *unsigned(16)), ("u32", *unsigned(32)), ("u64", *unsigned(64))]


def _f64_list(v):
    """``f64[]``: a JSON array of numbers (exact floats) comes back as a list of floats."""
    if not isinstance(v, list) or any(isinstance(x, bool) or not isinstance(x, (int, float))
                                      for x in v):
        return REFUSED
    out = []
    for x in v:
        if isinstance(x, float) and x != x or x in (float("inf"), float("-inf")):
            return REFUSED  # JSON cannot carry them
        if isinstance(x, int) and float(x) != x:
            return REFUSED
        out.append(float(x))
    return out


def _str_list(v):
    """``string[]``: a JSON array of text."""
    if not isinstance(v, list) or not all(isinstance(x, str) for x in v):
        return REFUSED
    if any(any("\ud800" <= c <= "\udfff" for c in x) for x in v):
        return REFUSED
    return v


def _i64_list(v):
    """``i64[]``: a JSON array of integers within i64."""
    if not isinstance(v, list) or any(isinstance(x, bool) or not isinstance(x, int)
                                      or not I64[0] <= x <= I64[1] for x in v):
        return REFUSED
    return v


STR_LIST_EDGES = ([], [""], ["a", "é😀", "\x00", '"\\\n'], ["\ud800"], [1], None, ["x"] * 5000)
I64_LIST_EDGES = ([], [0, -1, I64[0], I64[1]], [I64[1] + 1], [I64[0] - 1], [1.5], [True], None,
                  list(range(5000)))

LIST_EDGES = ([], [1.5, -2.0, 1e300, 0.0, -0.0, 5e-324], [1, 2], [2**53 + 1], [float("nan")],
              [True], ["a"], None, [float(i) for i in range(10_000)])

ROWS = [
    *(int_row(ty, _id(ty), ty, lo, hi) for ty, lo, hi in INTS),
    float_row("f32", _id("f32"), "f32", 32),
    float_row("f64", _id("f64"), "f64", 64),
    bool_row("bool", _id("bool"), "bool"),
    str_row("string", _id("string"), "string"),
    bytes_row("Uint8Array", _id("Uint8Array"), "Uint8Array"),
    array_row("Float64Array", _id("Float64Array"), "Float64Array", "<f8"),
    array_row("Float32Array", _id("Float32Array"), "Float32Array", "<f4"),
    array_row("Int32Array", _id("Int32Array"), "Int32Array", "<i4"),
    array_row("Int64Array", _id("Int64Array"), "Int64Array", "<i8"),
    array_row("StaticArray_f64", _id("StaticArray<f64>"), "StaticArray<f64>", "<f8"),
    Row("f64_list", _id("f64[]"), "f64[]", _f64_list, LIST_EDGES,
        st.lists(st.floats(allow_nan=False, allow_infinity=False), max_size=20), same),
    nullable(str_row("string_or_null", _id("string | null"), "string | null")),
    Row("string_list", _id("string[]"), "string[]", _str_list, STR_LIST_EDGES,
        st.lists(st.text(max_size=10), max_size=10), same),
    Row("i64_list", _id("i64[]"), "i64[]", _i64_list, I64_LIST_EDGES,
        st.lists(st.integers(-(2**70), 2**70), max_size=10), same),
    map_row("Map", _id("Map<string, i64>"), "Map<string, i64>", *I64),
]

matrix = make_fixture(LANGUAGE)
test_edges, test_generated = make_tests(ROWS)


NONFINITE_CELL = 'export function nonfinite(): Map<string, f64> {\n  const m = new Map<string, f64>();\n  m.set("nan", NaN);\n  m.set("inf", Infinity);\n  m.set("neg", -0.0);\n  return m;\n}\n'

test_nonfinite_floats_in_a_json_result = nonfinite_test(NONFINITE_CELL)
