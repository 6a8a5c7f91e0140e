"""Round-trip matrix: Python (Pyodide). ``int`` crosses as a signed 64-bit integer; JSON
values (unannotated parameters, ``list``, ``dict``) are Python's own JSON: ints of any size."""

from __future__ import annotations

import math

import pytest

from functions_nb.errors import InvocationError

from .matrix import (
    bool_row,
    bytes_row,
    float_row,
    int_row,
    json_row,
    make_fixture,
    make_tests,
    map_row,
    nonfinite_test,
    same,
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


@pytest.mark.parametrize(("body", "annotation", "want"), [
    ("{1: 'a'}", "dict", "the key 1 (int)"),
    ("[{'x': {None: 1}}]", "list", "the key None (NoneType)"),
    ("'\\udbff\\udfff'", "str", "surrogate code point"),
    ("['a\\ud800']", "list", "surrogate code point"),
    ("2**53 + 1", "float", "9007199254740993, which has no exact float value"),
    ("10**400", "float", "no exact float value"),
    ("{1, 2}", "set", "not JSON-serializable"),
])
def test_results_that_would_change_are_invocation_errors(matrix, body, annotation, want):
    """A result that JSON would change (int dict keys made text, a surrogate pair joined, an int
    rounded to a float) is an InvocationError naming it, never a changed value."""
    name = "res_" + str(abs(hash(body)) % 10**8)
    matrix.fx.deploy(LANGUAGE, f"def {name}() -> {annotation}:\n    return {body}\n", name=name)
    with pytest.raises(InvocationError) as info:
        got = matrix.fx.invoke(name)
        pytest.fail(f"{body} came back as {got!r}")
    assert want in str(info.value)


@pytest.mark.parametrize(("body", "want"), [
    ("[float('nan'), float('-inf'), -0.0]", [math.nan, -math.inf, -0.0]),
    ("(1, (2.5, 'x'))", [1, [2.5, "x"]]),
    ("{'big': 2**100, 'neg': -(2**70)}", {"big": 2**100, "neg": -(2**70)}),
    ("3", 3),
])
def test_results_json_holds_cross_exactly(matrix, body, want):
    name = "ok_" + str(abs(hash(body)) % 10**8)
    matrix.fx.deploy(LANGUAGE, f"def {name}():\n    return {body}\n", name=name)
    got = matrix.fx.invoke(name)
    assert same(got, want), f"{body} came back as {got!r}"


NONFINITE_CELL = 'def nonfinite() -> dict:\n    return {"nan": float("nan"), "inf": float("inf"), "neg": -0.0}\n'

test_nonfinite_floats_in_a_json_result = nonfinite_test(NONFINITE_CELL)
