"""Round-trip matrix: Zig (wasm32-freestanding). ``usize`` is 32-bit; no bytes row (Zig has
no distinct byte-string type: ``[]const u8`` is text); JSON is ``std.json.Value``."""

from __future__ import annotations

from .matrix import (
    I64,
    array_row,
    bool_row,
    enum_row,
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

LANGUAGE = "zig"


def _id(ty: str) -> str:
    return "fn {name}(x: TYPE) TYPE {{\n    return x;\n}}\n".replace("TYPE", ty)


INTS = [("i8", *signed(8)), ("i16", *signed(16)), ("i32", *signed(32)),
        ("i64", *I64), ("u1", *unsigned(1)), ("u8", *unsigned(8)), ("u16", *unsigned(16)),
        ("u32", *unsigned(32)), ("u64", *unsigned(64)), ("usize", *unsigned(32))]
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

test_nonfinite_floats_in_a_json_result = nonfinite_test(NONFINITE_CELL)
