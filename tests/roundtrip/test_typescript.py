"""Round-trip matrix: TypeScript (V8)."""

from __future__ import annotations

import math

import numpy as np
import pytest

from functions_nb.errors import BadArguments, InvocationError

from .matrix import (
    NONFINITE,
    array_row,
    bool_row,
    bytes_row,
    enum_row,
    float_row,
    int_row,
    js_numbers,
    json_row,
    make_fixture,
    make_tests,
    map_row,
    nonfinite_test,
    same,
    set_row,
    str_row,
)

LANGUAGE = "typescript"
SAFE = 2**53


def _id(ty: str) -> str:
    return "export function {name}(x: TYPE): TYPE {{\n  return x;\n}}\n".replace("TYPE", ty)


ROWS = [
    float_row("number", _id("number"), "number", 64),
    int_row("bigint", _id("bigint"), "bigint", None, None),
    bool_row("boolean", _id("boolean"), "boolean"),
    str_row("string", _id("string"), "string", surrogates="either"),
    bytes_row("Uint8Array", _id("Uint8Array"), "Uint8Array"),
    array_row("Float64Array", _id("Float64Array"), "Float64Array", "<f8"),
    array_row("Float32Array", _id("Float32Array"), "Float32Array", "<f4"),
    array_row("Int32Array", _id("Int32Array"), "Int32Array", "<i4"),
    array_row("BigInt64Array", _id("BigInt64Array"), "BigInt64Array", "<i8"),
    json_row("json", _id("unknown"), "unknown", ints=(-SAFE, SAFE), numbers=js_numbers,
             surrogates="either"),
    # number | bigint: an int beyond 2**53 arrives as a BigInt, exactly
    json_row("number_or_bigint", _id("number | bigint"), "number | bigint", numbers=js_numbers,
             surrogates="either"),
    json_row("bigint_array", _id("bigint[]"), "bigint[]", numbers=js_numbers,
             surrogates="either"),
    map_row("Map", "export function {name}(x: Map<string, number>): Map<string, number> {{\n"
                   "  if (!(x instanceof Map)) throw new TypeError('expected Map<string, number>');\n"
                   "  return x;\n}}\n", "Map<string, number>", -SAFE, SAFE, checked=False, any_keys=True),
    set_row("Set", "export function {name}(x: Set<number>): Set<number> {{\n"
                   "  if (!(x instanceof Set)) throw new TypeError('expected Set<number>');\n"
                   "  return x;\n}}\n", "Set<number>", -SAFE, SAFE, checked=False),
    enum_row("enum", 'enum Color {{ Red = "Red", Green = "Green", Blue = "Blue" }}\n\n'
                     "export function {name}(x: Color): Color {{\n  return x;\n}}\n",
             "Color", ("Red", "Green", "Blue"), checked=False),
]

matrix = make_fixture(LANGUAGE)
test_edges, test_generated = make_tests(ROWS)


@pytest.mark.parametrize(("expr", "want"), [
    ("NaN", math.nan), ("Infinity", math.inf), ("-Infinity", -math.inf),
    ("[1, NaN, {a: -Infinity}]", [1, math.nan, {"a": -math.inf}]),
    ("new Map([['k', NaN]])", {"k": math.nan}),
])
def test_nonfinite_numbers_in_json_results_cross_exactly(matrix, expr, want):
    """NaN and the infinities inside a JSON result are floats in Python (JSON.stringify alone
    would make them null)."""
    assert_returns(matrix, "nonfinite_", expr, want)


def assert_returns(matrix, prefix: str, expr: str, want) -> None:
    """A function returning the JavaScript ``expr`` as ``any`` gives exactly ``want``."""
    name = prefix + str(abs(hash(expr)) % 10**8)
    matrix.fx.deploy(LANGUAGE, f"export function {name}(): any {{\n  return {expr};\n}}\n",
                     name=name)
    got = matrix.fx.invoke(name)
    assert same(got, want), f"{expr} came back as {got!r}"


def test_undefined_in_an_array_is_none_but_a_function_is_refused(matrix):
    matrix.fx.deploy(LANGUAGE, "export function und(): any {\n  return [undefined, null];\n}\n",
                     name="und")
    assert matrix.fx.invoke("und") == [None, None]
    matrix.fx.deploy(LANGUAGE, "export function fnres(): any {\n  return {f: () => 1};\n}\n",
                     name="fnres")
    got = matrix.fx.invoke("fnres")
    assert got == {}, got


def test_big_int_from_json_parameter_is_refused_naming_it(matrix):
    matrix.name(next(r for r in ROWS if r.id == "json"))
    with pytest.raises(Exception) as info:
        matrix.fx.invoke("id_json", [2**53 + 1])
    assert "9007199254740993" in str(info.value) and not isinstance(info.value, InvocationError)


NONFINITE_CELL = 'export function nonfinite(): Map<string, number> {\n  return new Map([["nan", NaN], ["inf", Infinity], ["neg", -0]]);\n}\n'

test_nonfinite_floats_in_a_json_result = nonfinite_test(NONFINITE_CELL, {"nan": NONFINITE["nan"], "inf": NONFINITE["inf"], "neg": 0})


@pytest.mark.parametrize(("expr", "want"), [
    ("({a: new Float64Array([1.5, -0])})", {"a": [1.5, 0]}),
    ("[new Int32Array([1, -2])]", [[1, -2]]),
    ("{b: new BigInt64Array([2n ** 62n])}", {"b": [2**62]}),
])
def test_typed_arrays_inside_json_results_are_lists(matrix, expr, want):
    """A typed array nested in a JSON result is the list of its items (JSON.stringify alone
    made a dict {"0": ..., "1": ...} of it)."""
    assert_returns(matrix, "typed_", expr, want)


def test_a_plain_array_for_a_typed_array_result(matrix):
    matrix.fx.deploy(LANGUAGE, "export function plain(): Int32Array {\n"
                               "  return [1, 2] as any;\n}\n", name="plain")
    got = matrix.fx.invoke("plain")
    assert got.dtype == np.int32 and got.tolist() == [1, 2]
    matrix.fx.deploy(LANGUAGE, "export function plainbad(): Int32Array {\n"
                               "  return [1.5] as any;\n}\n", name="plainbad")
    with pytest.raises(InvocationError, match="1.5"):
        matrix.fx.invoke("plainbad")


@pytest.mark.parametrize("value", [
    {1: "a", 2.5: "b", "1": "c", None: "e"},
    {False: "x", "false": "y"},
    {-(2**53): 0, "": 1},
    {},
])
def test_map_parameter_keys_keep_their_types(matrix, value):
    """A dict for a Map parameter arrives as a Map whose keys are the dict's keys (numbers stay
    numbers), and comes back as the same dict."""

    matrix.fx.deploy(LANGUAGE, "export function mapkeys(m: Map<any, string>): Map<any, string> {\n"
                               "  if (!(m instanceof Map)) throw new TypeError('not a Map');\n"
                               "  return m;\n}\n", name="mapkeys")
    got = matrix.fx.invoke("mapkeys", value)
    assert same(got, value) and [type(k) for k in got] == [type(k) for k in value], got


def test_map_parameter_key_beyond_2_53_is_refused(matrix):
    matrix.fx.deploy(LANGUAGE, "export function mapnum(m: Map<number, number>): number {\n"
                               "  return m.size;\n}\n", name="mapnum")
    with pytest.raises(BadArguments, match="9007199254740993"):
        matrix.fx.invoke("mapnum", {2**53 + 1: 1})
