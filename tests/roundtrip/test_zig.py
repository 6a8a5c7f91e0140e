"""Round-trip matrix: Zig (wasm32-freestanding). ``usize`` is 32-bit; no bytes row (Zig has
no distinct byte-string type: ``[]const u8`` is text); JSON is ``std.json.Value``."""

from __future__ import annotations

from .matrix import (
    NONFINITE,
    array_row,
    bool_row,
    check_result,
    enum_row,
    float_row,
    int_row,
    json_row,
    make_fixture,
    make_tests,
    map_row,
    str_row,
)

LANGUAGE = "zig"
I64 = (-(2**63), 2**63 - 1)


def _id(ty: str) -> str:
    return "fn {name}(x: TYPE) TYPE {{\n    return x;\n}}\n".replace("TYPE", ty)


INTS = [("i8", -(2**7), 2**7 - 1), ("i16", -(2**15), 2**15 - 1), ("i32", -(2**31), 2**31 - 1),
        ("i64", *I64), ("u1", 0, 1), ("u8", 0, 2**8 - 1), ("u16", 0, 2**16 - 1),
        ("u32", 0, 2**32 - 1), ("u64", 0, 2**64 - 1), ("usize", 0, 2**32 - 1)]
STD = 'const std = @import("std");\n\n'

ROWS = [
    *(int_row(ty, _id(ty), ty, lo, hi) for ty, lo, hi in INTS),
    float_row("f32", _id("f32"), "f32", 32),
    float_row("f64", _id("f64"), "f64", 64),
    bool_row("bool", _id("bool"), "bool"),
    str_row("str", _id("[]const u8"), "[]const u8"),
    array_row("f64_slice", _id("[]const f64"), "[]const f64", "<f8"),
    array_row("f32_slice", _id("[]f32"), "[]f32", "<f4"),
    array_row("i32_slice", _id("[]const i32"), "[]const i32", "<i4"),
    array_row("i64_slice", _id("[]i64"), "[]i64", "<i8"),
    json_row("json", STD + _id("std.json.Value"), "std.json.Value", ints=I64,
             big_ints="either"),
    map_row("StringHashMap", STD + _id("std.StringHashMap(i64)"), "std.StringHashMap(i64)",
            *I64),
    enum_row("enum", "const Color = enum {{ red, green, blue }};\n\n" + _id("Color"), "Color",
             ("red", "green", "blue")),
]

matrix = make_fixture(LANGUAGE)
test_edges, test_generated = make_tests(ROWS)


NONFINITE_CELL = 'const std = @import("std");\n\nconst R = struct { nan: f64, inf: f64, neg: f64 };\n\nfn nonfinite() R {\n    return .{ .nan = std.math.nan(f64), .inf = std.math.inf(f64), .neg = -0.0 };\n}\n'


def test_nonfinite_floats_in_a_json_result(matrix):
    """NaN, +inf and -0.0 inside a JSON result come back exactly, or the call fails naming
    them (never null, a string or 0.0)."""
    check_result(matrix, "nonfinite", NONFINITE_CELL, NONFINITE)
