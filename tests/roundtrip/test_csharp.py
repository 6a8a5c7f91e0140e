"""Round-trip matrix: C# (Mono). JSON is an ``object`` parameter (lists, dictionaries,
numbers as the host's JSON reader makes them)."""

from __future__ import annotations

from .matrix import (
    NONFINITE,
    array_row,
    bool_row,
    bytes_row,
    check_result,
    float_row,
    int_row,
    json_row,
    make_fixture,
    make_tests,
    map_row,
    nullable,
    set_row,
    str_row,
)

LANGUAGE = "csharp"
I64 = (-(2**63), 2**63 - 1)


def _id(ty: str) -> str:
    return "public static TYPE {name}(TYPE x) {{\n    return x;\n}}\n".replace("TYPE", ty)


INTS = [("sbyte", -(2**7), 2**7 - 1), ("short", -(2**15), 2**15 - 1),
        ("int", -(2**31), 2**31 - 1), ("long", *I64), ("byte", 0, 2**8 - 1),
        ("ushort", 0, 2**16 - 1), ("uint", 0, 2**32 - 1), ("ulong", 0, 2**64 - 1)]

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


def test_nonfinite_floats_in_a_json_result(matrix):
    """NaN, +inf and -0.0 inside a JSON result come back exactly, or the call fails naming
    them (never null, a string or 0.0)."""
    check_result(matrix, "nonfinite", NONFINITE_CELL, NONFINITE)
