"""Round-trip matrix: C# (Mono). JSON is an ``object`` parameter (lists, dictionaries,
numbers as the host's JSON reader makes them)."""

from __future__ import annotations

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
    nullable,
    set_row,
    signed,
    str_row,
    unsigned,
)

LANGUAGE = "csharp"


def _id(ty: str) -> str:
    return "public static TYPE {name}(TYPE x) {{\n    return x;\n}}\n".replace("TYPE", ty)


INTS = [("sbyte", *signed(8)), ("short", *signed(16)),
        ("int", *signed(32)), ("long", *I64), ("byte", *unsigned(8)),
        ("ushort", *unsigned(16)), ("uint", *unsigned(32)), ("ulong", *unsigned(64))]

ROWS = [
    *(int_row(ty, _id(ty), ty, lo, hi) for ty, lo, hi in INTS),
    float_row("float", _id("float"), "float", 32),
    float_row("double", _id("double"), "double", 64),
    bool_row("bool", _id("bool"), "bool"),
    nullable(str_row("string", _id("string"), "string", surrogates="either")),
    nullable(bytes_row("bytes", _id("byte[]"), "byte[]")),
    nullable(array_row("double_array", _id("double[]"), "double[]", "<f8")),
    nullable(array_row("float_array", _id("float[]"), "float[]", "<f4")),
    nullable(array_row("int_array", _id("int[]"), "int[]", "<i4")),
    nullable(array_row("long_array", _id("long[]"), "long[]", "<i8")),
    json_row("json", _id("object"), "object", ints=(-(2**63), 2**64 - 1), big_ints="either",
             surrogates="either"),
    nullable(map_row("Dictionary", _id("Dictionary<string, long>"), "Dictionary<string, long>", *I64)),
    nullable(set_row("HashSet", _id("HashSet<long>"), "HashSet<long>", *I64, as_list=True)),
]

matrix = make_fixture(LANGUAGE)
test_edges, test_generated = make_tests(ROWS)


NONFINITE_CELL = 'public static Dictionary<string, double> nonfinite() {\n    return new Dictionary<string, double> { { "nan", double.NaN }, { "inf", double.PositiveInfinity }, { "neg", -0.0 } };\n}\n'

test_nonfinite_floats_in_a_json_result = nonfinite_test(NONFINITE_CELL)
