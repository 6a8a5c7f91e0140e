"""The value-kind table (functions_nb/values.py): range edges and refusals, the one
bad-argument message through a wasm function, and the human answer check and LLM output
types using the same bounds."""

from __future__ import annotations

import math

import numpy as np
import pytest

from functions_nb import BadArguments, values
from functions_nb.cascade.llm import kind_type, signature_schema
from functions_nb.storage.tasks import TaskQueue

EDGE_RS = """fn edge(a: i32, b: u64) -> u64 {
    let _ = a;
    b
}
"""
KINDS_RS = """fn kinds(x: f32, flag: bool, s: &str, xs: &[i32], n: u8) -> f64 {
    x as f64 + flag as i32 as f64 + s.len() as f64 + xs.iter().map(|&v| v as f64).sum::<f64>()
        + n as f64
}
"""


# -- the table ---------------------------------------------------------------------------

@pytest.mark.parametrize("kind, lo, hi", [
    ("i32", -(2**31), 2**31 - 1), ("u32", 0, 2**32 - 1),
    ("i64", -(2**63), 2**63 - 1), ("u64", 0, 2**64 - 1)])
def test_integer_kinds_take_their_edges_and_refuse_beyond(kind, lo, hi):
    convert = values.converter(kind)
    assert convert(lo) == lo and convert(hi) == hi
    assert convert(np.int64(0)) == 0  # __index__ types
    for outside in (lo - 1, hi + 1):
        with pytest.raises(values.Refused, match=f"out of range for {kind}: {lo}..{hi}"):
            convert(outside)
    for wrong in (True, np.True_, 1.0, "1", None):
        with pytest.raises(values.Refused, match=rf"expected an integer \({kind}\)$"):
            convert(wrong)
    assert values.answer(kind, str(hi)) == hi and values.answer(kind, float(lo)) == lo
    with pytest.raises(values.Refused, match="out of range"):
        values.answer(kind, hi + 1)
    with pytest.raises(values.Refused):
        values.answer(kind, True)


def test_narrow_bounds_win():
    convert = values.converter("u32", (0, 255), "u8")
    assert convert(255) == 255
    with pytest.raises(values.Refused, match=r"out of range for u8: 0\.\.255"):
        convert(256)


def test_floats_cross_exactly_or_are_refused():
    f64, f32 = values.converter("f64"), values.converter("f32")
    assert f64(2**53) == 2.0**53 and f64(np.float32(0.5)) == 0.5 and math.isnan(f64(math.nan))
    with pytest.raises(values.Refused, match="9007199254740993 has no exact f64 value"):
        f64(2**53 + 1)
    with pytest.raises(values.Refused, match="too large for f64"):
        f64(10**400)
    for wrong in (True, "1.5", None, 1j):
        with pytest.raises(values.Refused, match=r"expected a number \(f64\)"):
            f64(wrong)
    assert f32(values.F32_MAX) == values.F32_MAX and f32(-math.inf) == -math.inf
    assert f32(0.1) == 0.1  # rounded to f32 in the guest, as a literal would be
    with pytest.raises(values.Refused, match="out of range for f32"):
        f32(1e39)
    with pytest.raises(values.Refused, match="out of range for f32"):
        values.answer("f32", "1e39")
    with pytest.raises(values.Refused, match="1e400 is too large for f64"):
        values.answer("f64", "1e400")  # text that would silently read as inf


def test_bool_text_bytes_json_and_arrays():
    assert values.to_bool(np.False_) is False
    for wrong in (0, 1, "true", None):
        with pytest.raises(values.Refused, match="expected true or false"):
            values.to_bool(wrong)
    assert values.answer("bool", " TRUE ") is True
    with pytest.raises(values.Refused, match="not encodable as UTF-8"):
        values.to_utf8("a\ud800b")
    with pytest.raises(values.Refused, match="expected bytes"):
        values.to_bytes("text")
    with pytest.raises(values.Refused, match="not JSON-serializable: Out of range float"):
        values.to_json_text({"x": math.nan})  # JSON has no NaN
    assert values.to_json_text({"a": np.arange(2)}) == '{"a":[0,1]}'
    with pytest.raises(values.Refused, match=r"element 1 = 2147483648: out of range for i32"):
        values.to_array([1, 2**31], "i32[]")  # numpy would wrap it silently
    with pytest.raises(values.Refused, match="element 0 = 9007199254740993: no exact f64"):
        values.to_array([2**53 + 1], "f64[]")
    with pytest.raises(values.Refused, match="int64 array cannot be converted to int32"):
        values.to_array(np.arange(3), "i32[]")
    arr = np.arange(3, dtype="<i4")
    assert values.to_array(arr, "i32[]") is arr  # no copy
    assert values.answer("i32[]", "[1, 2]") == [1, 2]
    with pytest.raises(values.Refused, match="element 0 = 4294967296: out of range for i32"):
        values.answer("i32[]", [2**32])


def test_shown_value_is_cut_at_one_length():
    text = values.shown("x" * 500)
    assert text.startswith("str 'xxx") and text.endswith("...")
    assert len(text) == len("str ") + values.SHOWN_CHARS


# -- the same message through a wasm function ---------------------------------------------

@pytest.fixture
def wasm(fx):
    fx.deploy("rust", EDGE_RS, name="edge")
    fx.deploy("rust", KINDS_RS, name="kinds")
    return fx


def test_wasm_arguments_cross_exactly_or_fail_with_the_one_message(wasm):
    fx = wasm
    assert fx.invoke("edge", -(2**31), 2**64 - 1) == 2**64 - 1  # no wrap on the way back
    assert fx.invoke("edge", np.int32(2**31 - 1), 0) == 0
    assert fx.invoke("kinds", 1.5, True, "ab", [1, 2], 255) == 1.5 + 1 + 2 + 3 + 255
    assert fx.invoke("kinds", 0.0, np.True_, "", np.array([1], "<i4"), 0) == 2.0

    edge, kinds = fx.info("edge").signature, fx.info("kinds").signature
    a, b = edge.params
    x, flag, s, xs, n = kinds.params

    def refused(name, args, param, value, why=""):
        with pytest.raises(BadArguments) as err:
            fx.invoke(name, *args)
        sig = edge if name == "edge" else kinds
        assert str(err.value) == str(values.bad_argument(sig, param.name, param.type, value, why))
        return str(err.value)

    text = refused("edge", (True, 0), a, True)
    assert text == "edge(a: i32, b: u64) -> u64: argument 'a' expects i32, got bool True"
    refused("edge", (2**31, 0), a, 2**31, "out of range for i32: -2147483648..2147483647")
    refused("edge", (0, 2**64), b, 2**64, "out of range for u64: 0..18446744073709551615")
    refused("edge", (0, -1), b, -1, "out of range for u64: 0..18446744073709551615")
    refused("edge", (0, 3.0), b, 3.0)
    refused("kinds", (1e39, True, "", [], 0), x, 1e39,
            "out of range for f32: ±3.4028234663852886e+38")
    refused("kinds", (2**53 + 1, True, "", [], 0), x, 2**53 + 1,
            "9007199254740993 has no exact f32 value")
    refused("kinds", (0.0, 1, "", [], 0), flag, 1)
    refused("kinds", (0.0, True, "a\ud800", [], 0), s, "a\ud800",
            "not encodable as UTF-8: surrogates not allowed at index 1")
    refused("kinds", (0.0, True, "", [1, 2**31], 0), xs, [1, 2**31],
            "element 1 = 2147483648: out of range for i32: -2147483648..2147483647")
    refused("kinds", (0.0, True, "", [], 256), n, 256, "out of range for u8: 0..255")
    long = "y" * 1000
    text = refused("kinds", (0.0, True, "", [], long), n, long)
    assert text.endswith("got str '" + "y" * (values.SHOWN_CHARS - 4) + "...")
    assert fx.invoke("kinds", 0.0, False, "", [], 0) == 0.0  # the function is not to blame


# -- the same bounds for answers: the human tier and the LLM tiers ------------------------

def test_human_answer_check_uses_the_table(wasm):
    fx = wasm
    tasks = TaskQueue(fx.store)
    task = tasks.create(fx.info("edge"), (0, 1), question="q")
    lo, hi = values.INT_RANGES["u64"]
    with pytest.raises(BadArguments, match=r"edge\(a: i32, b: u64\) -> u64: the answer must be an "
                                           rf"integer \(u64\), got int {hi + 1} \(out of range for "
                                           rf"u64: {lo}\.\.{hi}\)"):
        tasks.answer(task.id, "value", hi + 1)
    with pytest.raises(BadArguments, match=r"the answer must be an integer \(u64\), got bool True"):
        tasks.answer(task.id, "value", True)
    tasks.answer(task.id, "value", str(hi))
    assert tasks.get(task.id).answer["value"] == hi


def test_llm_types_use_the_table(wasm):
    from pydantic import TypeAdapter, ValidationError

    schema = signature_schema(wasm.info("edge").signature)
    lo, hi = values.INT_RANGES["u64"]
    assert (schema["result"]["minimum"], schema["result"]["maximum"]) == (lo, hi)
    a = schema["params"]["properties"]["a"]
    assert (a["minimum"], a["maximum"]) == values.INT_RANGES["i32"]
    u64 = TypeAdapter(kind_type("u64"))
    assert u64.validate_python(hi) == hi and u64.validate_json(f'"{hi}"') == hi
    for wrong in (hi + 1, True, 2.5):
        with pytest.raises(ValidationError):
            u64.validate_python(wrong)
    narrow = TypeAdapter(kind_type("u32", (0, 255)))
    with pytest.raises(ValidationError, match="out of range for u32: 0..255"):
        narrow.validate_python(256)
    f32 = TypeAdapter(kind_type("f32"))
    assert f32.json_schema()["maximum"] == values.F32_MAX
    with pytest.raises(ValidationError, match="out of range for f32"):
        f32.validate_json("1e39")
    with pytest.raises(ValidationError, match="has no exact f64 value"):
        TypeAdapter(kind_type("f64")).validate_python(2**53 + 1)
    with pytest.raises(ValidationError, match="out of range for i32"):
        TypeAdapter(kind_type("i32[]")).validate_python([1, 2**31])


def test_bigint_is_an_integer_of_any_size():
    """JavaScript's BigInt: no range, but still only integers (TypeScript ``bigint``)."""
    check = values.converter("bigint")
    assert check(2**200) == 2**200 and check(-(2**200)) == -(2**200)
    for bad in (True, 1.0, "5", None):
        with pytest.raises(values.Refused, match=r"an integer \(bigint\)"):
            check(bad)
    assert values.answer("bigint", "123456789012345678901234567890") == 123456789012345678901234567890
    with pytest.raises(values.Refused):
        values.answer("bigint", 1.5)
