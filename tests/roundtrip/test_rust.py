"""Round-trip matrix: Rust (wasm32). ``isize``/``usize`` are 32-bit; JSON is serde_json's
``Value`` (integers within i64 or u64)."""

from __future__ import annotations

from .matrix import (
    I64,
    array_row,
    bool_row,
    bytes_row,
    enum_row,
    float_row,
    int_row,
    json_row,
    make_fixture,
    make_tests,
    map_row,
    nonfinite_test,
    set_row,
    signed,
    str_row,
    unsigned,
)

LANGUAGE = "rust"


def _id(ty: str) -> str:
    return "fn {name}(x: TYPE) -> TYPE {{\n    x\n}}\n".replace("TYPE", ty)


INTS = [("i8", *signed(8)), ("i16", *signed(16)), ("i32", *signed(32)),
        ("i64", *I64), ("isize", *signed(32)), ("u8", *unsigned(8)),
        ("u16", *unsigned(16)), ("u32", *unsigned(32)), ("u64", *unsigned(64)),
        ("usize", *unsigned(32))]

ROWS = [
    *(int_row(ty, _id(ty), ty, lo, hi) for ty, lo, hi in INTS),
    float_row("f32", _id("f32"), "f32", 32),
    float_row("f64", _id("f64"), "f64", 64),
    bool_row("bool", _id("bool"), "bool"),
    str_row("String", _id("String"), "String"),
    str_row("str_ref", "fn {name}(x: &str) -> String {{\n    x.to_string()\n}}\n", "&str"),
    bytes_row("Vec_u8", _id("Vec<u8>"), "Vec<u8>"),
    array_row("Vec_f64", _id("Vec<f64>"), "Vec<f64>", "<f8"),
    array_row("Vec_f32", _id("Vec<f32>"), "Vec<f32>", "<f4"),
    array_row("Vec_i32", _id("Vec<i32>"), "Vec<i32>", "<i4"),
    array_row("Vec_i64", _id("Vec<i64>"), "Vec<i64>", "<i8"),
    json_row("json", _id("serde_json::Value"), "serde_json::Value",
             ints=(-(2**63), 2**64 - 1), big_ints="either"),
    map_row("HashMap", "use std::collections::HashMap;\n\n"
            "fn {name}(x: HashMap<String, i64>) -> HashMap<String, i64> {{\n    x\n}}\n",
            "HashMap<String, i64>", *I64),
    set_row("BTreeSet", "use std::collections::BTreeSet;\n\n"
            "fn {name}(x: BTreeSet<i64>) -> BTreeSet<i64> {{\n    x\n}}\n",
            "BTreeSet<i64>", *I64, as_list=True),
    set_row("HashSet", "use std::collections::HashSet;\n\n"
            "fn {name}(x: HashSet<i64>) -> HashSet<i64> {{\n    x\n}}\n",
            "HashSet<i64>", *I64, as_list=True),
    enum_row("enum", "enum Color {{\n    Red,\n    Green,\n    Blue,\n}}\n\n"
                     "fn {name}(x: Color) -> Color {{\n    x\n}}\n",
             "Color", ("Red", "Green", "Blue")),
]

matrix = make_fixture(LANGUAGE)
test_edges, test_generated = make_tests(ROWS)


NONFINITE_CELL = 'use std::collections::HashMap;\n\nfn nonfinite() -> HashMap<String, f64> {\n    let mut m = HashMap::new();\n    m.insert("nan".to_string(), f64::NAN);\n    m.insert("inf".to_string(), f64::INFINITY);\n    m.insert("neg".to_string(), -0.0);\n    m\n}\n'

test_nonfinite_floats_in_a_json_result = nonfinite_test(NONFINITE_CELL)
