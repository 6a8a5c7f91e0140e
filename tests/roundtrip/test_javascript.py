"""Round-trip matrix: JavaScript (V8). Untyped parameters are JSON values: numbers are
JavaScript numbers (an int beyond 2**53 is refused; an integral float comes back as an int),
text is UTF-16 (surrogate code points refused)."""

from __future__ import annotations

import math

import pytest

from .matrix import js_numbers, json_row, make_fixture, make_tests, same

LANGUAGE = "javascript"
SAFE = 2**53

ROWS = [
    json_row("json", "function {name}(x) {{\n  return x;\n}}\n", "any", ints=(-SAFE, SAFE),
             numbers=js_numbers, surrogates="either"),
    json_row("json_arrow", "const {name} = (x) => x;\n", "any", ints=(-SAFE, SAFE),
             numbers=js_numbers, surrogates="either"),
]

matrix = make_fixture(LANGUAGE)
test_edges, test_generated = make_tests(ROWS)


@pytest.mark.parametrize(("expr", "want"), [
    ("[NaN, Infinity, -Infinity]", [math.nan, math.inf, -math.inf]),
    ("({a: NaN, b: [1, null]})", {"a": math.nan, "b": [1, None]}),
    ("new Set([NaN])", {math.nan}),
    ("2 ** 60", float(2**60)),
    ("[2 ** 60, 10n ** 20n]", [float(2**60), 10**20]),
])
def test_numbers_json_cannot_hold_come_back_exactly(matrix, expr, want):
    name = "num_" + str(abs(hash(expr)) % 10**8)
    matrix.fx.deploy(LANGUAGE, f"function {name}() {{\n  return {expr};\n}}\n", name=name)
    got = matrix.fx.invoke(name)
    if isinstance(want, set):  # NaN != NaN: compare the one member
        assert isinstance(got, set) and len(got) == 1 and math.isnan(next(iter(got)))
    else:
        assert same(got, want), f"{expr} came back as {got!r}"
