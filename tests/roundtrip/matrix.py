"""The round-trip matrix, written once: rows, their expectations, the check, the tests.

A language module lists its :class:`Row`\\ s (one identity cell per row of the README's
calling-convention table that the language has) and calls :func:`make_tests`. Each row says,
for any value, what must come back (:meth:`Row.expect`):

* a value: the call must return it, the same Python type and value (:func:`same`: NaN is NaN,
  -0.0 keeps its sign, numpy dtype and shape kept, ints stay int, not bool);
* :data:`REFUSED`: the call must raise ``BadArguments`` naming the declared type and the value;
* :class:`Either`: the value comes back exactly, or the documented error (``BadArguments``
  going in, ``InvocationError`` coming out) naming it.

Anything else -- a changed value, another type, another exception -- fails, naming language,
row and value. Each row's identity is deployed once per module (lazily, on first use) into
the module's temporary store.
"""

from __future__ import annotations

import math
import os
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass, replace
from typing import Any

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from functions_nb import BreakerConfig, Functions
from functions_nb.errors import BadArguments, CompileError, InvocationError
from functions_nb.languages import get_language, names

from ..exact import same

#: The depth of JSON nesting the README documents (values.MAX_JSON_DEPTH, restated: the
#: matrix is the spec, not a copy of the code).
JSON_DEPTH = 100
#: Examples per generated-values test (per row); ``FNB_MATRIX_EXAMPLES`` for a longer hunt.
EXAMPLES = int(os.environ.get("FNB_MATRIX_EXAMPLES", "40"))
F32_MAX = float.fromhex("0x1.fffffep+127")
_F32_OVERFLOW = float(2**128 - 2**103)  # the smallest magnitude that rounds to inf in f32
NAN, INF = float("nan"), float("inf")


class _Refused:
    def __repr__(self) -> str:
        return "BadArguments"


#: The call must raise ``BadArguments`` naming the declared type and the value.
REFUSED = _Refused()


@dataclass(frozen=True)
class Either:
    """``value`` comes back exactly, or the documented error names it."""

    value: Any


@dataclass(frozen=True)
class Row:
    """One row of the calling-convention table in one language."""

    #: Test id, e.g. ``i8``, ``f64[]``, ``json``.
    id: str
    #: The cell: one identity function called ``{name}`` (braces doubled elsewhere).
    source: str
    #: The parameter type as written (BadArguments messages name it).
    written: str
    #: value -> the expected value, REFUSED or Either(...).
    expect: Callable[[Any], Any]
    edges: tuple[Any, ...]
    strategy: st.SearchStrategy[Any]
    #: got, want -> equal (default :func:`same`).
    compare: Callable[[Any, Any], bool] | None = None
    #: Words an InvocationError about this row may use to name what it refused.
    names: tuple[str, ...] = ()


# -- equality ---------------------------------------------------------------------------------

def same_members(got: Any, want: Any) -> bool:
    """A set result as a JSON array (Rust ``HashSet``): a list of exactly ``want``'s members."""
    return (isinstance(got, list) and len(got) == len(want)
            and all(same(g, w) for g, w in zip(sorted(got), sorted(want), strict=True)))


def show(value: Any, limit: int = 160) -> str:
    """``value`` for a failure message: type and repr, cut."""
    if isinstance(value, np.ndarray):
        text = f"ndarray(dtype={value.dtype}, shape={value.shape}, {np.array2string(value[:8])})"
    else:
        text = f"{type(value).__name__} {value!r}"
    return text if len(text) <= limit else text[:limit - 3] + "..."


# -- rows: integers ---------------------------------------------------------------------------

def _int_edges(lo: int | None, hi: int | None) -> list[Any]:
    out: list[Any] = [0, 1, -1, 2**31 - 1, -(2**31), 2**32 - 1, 2**32, 2**53 - 1, 2**53, 2**53 + 1,
                      -(2**53) - 1, 2**63 - 1, -(2**63), 2**63, -(2**63) - 1, 2**64 - 1, 2**64,
                      2**100, -(2**100), True, False, 1.0, "1", None, np.int64(7), np.uint8(200)]
    for bound in (lo, hi):
        if bound is not None:
            out += [bound, bound - 1, bound + 1]
    return out


def signed(bits: int) -> tuple[int, int]:
    """The range of a signed integer type of ``bits`` bits."""
    return -(2 ** (bits - 1)), 2 ** (bits - 1) - 1


def unsigned(bits: int) -> tuple[int, int]:
    """The range of an unsigned integer type of ``bits`` bits."""
    return 0, 2**bits - 1


I64 = signed(64)


def int_row(id: str, source: str, written: str, lo: int | None, hi: int | None,
            **kw: Any) -> Row:
    """An integer of range lo..hi (None: unbounded, JavaScript's BigInt)."""
    def expect(v: Any) -> Any:
        if isinstance(v, (bool, np.bool_)) or not isinstance(v, (int, np.integer)):
            return REFUSED
        v = int(v)
        if (lo is not None and v < lo) or (hi is not None and v > hi):
            return REFUSED
        return v

    inside = st.integers(min_value=lo, max_value=hi)
    around = st.integers(min_value=None if lo is None else lo - 2**66,
                         max_value=None if hi is None else hi + 2**66)
    strategy = st.one_of(inside, around, st.integers(min_value=-(2**130), max_value=2**130))
    return Row(id, source, written, expect, tuple(_int_edges(lo, hi)), strategy, **kw)


# -- rows: floats -----------------------------------------------------------------------------

FLOAT_EDGES = (0.0, -0.0, 1.0, -1.0, 0.1, -2.5, NAN, INF, -INF, 5e-324, -5e-324,
               2.2250738585072014e-308, 1.7976931348623157e308, -1.7976931348623157e308,
               F32_MAX, -F32_MAX, 2.0**128, 1.401298464324817e-45, 1e-46, 3.0e38, 16777217.0,
               2.0**53, 2.0**53 + 2, 1e300, 0, 1, -1, 2**53, 2**53 + 1, 2**1024, True, False,
               "1.5", None, np.float32(1.5), np.float64(0.1), np.int32(-3))


def float_row(id: str, source: str, written: str, bits: int, **kw: Any) -> Row:
    """A float of ``bits`` (32: rounded to f32 as a literal would be, never to infinity)."""
    def expect(v: Any) -> Any:
        if isinstance(v, (bool, np.bool_)) or isinstance(v, str) or v is None:
            return REFUSED
        if isinstance(v, (int, np.integer)):
            try:
                f = float(int(v))
            except OverflowError:
                return REFUSED
            if f != int(v):
                return REFUSED
            v = f
        v = float(v)
        if bits == 32:
            if math.isfinite(v) and abs(v) >= _F32_OVERFLOW:
                return REFUSED
            return float(np.float32(v))
        return v

    strategy = st.one_of(st.floats(), st.floats(width=32), st.integers(-(2**60), 2**60))
    return Row(id, source, written, expect, FLOAT_EDGES, strategy, **kw)


# -- rows: bool, str, bytes -------------------------------------------------------------------

def bool_row(id: str, source: str, written: str, **kw: Any) -> Row:
    def expect(v: Any) -> Any:
        return bool(v) if isinstance(v, (bool, np.bool_)) else REFUSED

    edges = (True, False, 0, 1, None, "true", 1.0, np.bool_(True), np.bool_(False))
    return Row(id, source, written, expect, edges, st.one_of(st.booleans(), st.integers(0, 1)),
               **kw)


STR_EDGES = ("", "a", "héllo wörld ✓", "😀👍🏽", "\x00", "a\x00b", "\u2028\u2029", "\ufeff",
             '"q" \\ \n\t\r end', "\U0010ffff", "𝄞" * 1000, "x" * 100_000, "\ud800",
             "a\udfffb", "\udbff\udfff", b"x", 1, None, ["a"])


def _lone_surrogate(s: str) -> bool:
    return any(0xD800 <= ord(c) <= 0xDFFF for c in s)


def str_row(id: str, source: str, written: str, surrogates: str = "refused", **kw: Any) -> Row:
    """Text. ``surrogates``: what a lone surrogate (not UTF-8) does: ``refused`` (UTF-8 guests)
    or ``either`` (UTF-16 guests may carry it)."""
    def expect(v: Any) -> Any:
        if not isinstance(v, str):
            return REFUSED
        if _lone_surrogate(v):
            return REFUSED if surrogates == "refused" else Either(v)
        return v

    strategy = st.one_of(st.text(), st.text(st.one_of(st.characters(), st.characters(categories=["Cs"]))),
                         st.text(alphabet="\x00\x01\"\\\u2028é😀", max_size=30))
    return Row(id, source, written, expect, STR_EDGES, strategy, **kw)


BYTES_EDGES = (b"", b"\x00", bytes(range(256)), b"\xff" * 100_000, bytearray(b"ab"),
               memoryview(b"cd"), "ab", [1, 2], None)


def bytes_row(id: str, source: str, written: str, **kw: Any) -> Row:
    def expect(v: Any) -> Any:
        return bytes(v) if isinstance(v, (bytes, bytearray, memoryview)) else REFUSED

    return Row(id, source, written, expect, BYTES_EDGES, st.binary(max_size=2000), **kw)


# -- rows: numpy arrays -----------------------------------------------------------------------

def _fits(items: list[Any], dtype: np.dtype) -> bool:
    """Every item a number of ``dtype`` holds exactly (f32 rounding aside, never to inf)."""
    for x in items:
        if isinstance(x, (bool, np.bool_)) or not isinstance(x, (int, float, np.number)):
            return False
        if dtype.kind == "i":
            info = np.iinfo(dtype)
            if not isinstance(x, (int, np.integer)) or not info.min <= int(x) <= info.max:
                return False
        elif isinstance(x, (int, np.integer)):
            try:
                if float(int(x)) != int(x):
                    return False
            except OverflowError:
                return False
            if dtype.itemsize == 4 and (float(np.float32(float(int(x)))) != int(x)):
                return False
        elif dtype.itemsize == 4 and math.isfinite(x) and abs(x) >= _F32_OVERFLOW:
            return False
    return True


def array_row(id: str, source: str, written: str, dtype: str, **kw: Any) -> Row:
    """A 1-D numpy array of ``dtype`` (lists accepted; safe casts only)."""
    dt = np.dtype(dtype)

    def expect(v: Any) -> Any:
        if isinstance(v, np.ndarray):
            if v.ndim != 1:
                return REFUSED
            if v.dtype == dt:
                return v.copy()
            if v.dtype.kind in "iuf" and np.can_cast(v.dtype, dt, "safe"):
                return v.astype(dt)
            return REFUSED
        if isinstance(v, (list, tuple)):
            if any(isinstance(x, (list, tuple)) for x in v) or not _fits(list(v), dt):
                return REFUSED
            if dt.kind == "i" and any(isinstance(x, float) for x in v):
                return REFUSED
            return np.array(v, dtype=np.float64 if dt.kind == "f" else np.int64).astype(dt)
        return REFUSED

    if dt.kind == "f":
        info = np.finfo(dt)
        special = [0.0, -0.0, NAN, INF, -INF, float(info.max), float(info.min),
                   float(info.smallest_subnormal), 1.5]
        big = np.linspace(-1e6, 1e6, 100_000, dtype=dt)
    else:
        info = np.iinfo(dt)
        special = [0, -1, 1, int(info.max), int(info.min)]
        big = np.arange(100_000, dtype=dt) - 50_000
    other = "float32" if dt == np.dtype("<f8") else "float64"
    edges = (np.array([], dtype=dt), np.array(special, dtype=dt), big, big[::3],
             np.array(special, dtype=dt).astype(">" + dt.str[1:]),
             np.zeros((2, 2), dtype=dt), np.array([1, 2, 3], dtype=np.int32),
             np.array([1, 2, 3], dtype=np.int64), np.array([1.5], dtype=other),
             np.array([True, False]), [1, 2, 3], [1.5, -0.0], [], [2**31], [2**63], [True],
             ["1"], [[1.0]], "1,2", None)
    strategy = st.one_of(hnp.arrays(dt, st.integers(0, 64)), hnp.arrays(
        dt, st.integers(0, 8), elements={"allow_nan": False} if dt.kind == "f" else None))
    return Row(id, source, written, expect, edges, strategy, **kw)


# -- rows: JSON, maps, sets, enums -------------------------------------------------------------

def _nested(depth: int) -> Any:
    """A JSON value with lists and objects ``depth`` levels deep."""
    value: Any = 1
    for i in range(depth):
        value = [value] if i % 2 else {"k": value}
    return value


def depth_of(v: Any) -> int:
    if isinstance(v, (list, tuple)):
        return 1 + max((depth_of(x) for x in v), default=0)
    if isinstance(v, dict):
        return 1 + max((depth_of(x) for x in v.values()), default=0)
    return 0


def _walk(v: Any) -> Iterable[Any]:
    yield v
    if isinstance(v, (list, tuple)):
        for x in v:
            yield from _walk(x)
    elif isinstance(v, dict):
        yield from v.keys()
        for x in v.values():
            yield from _walk(x)


def _tuples_as_lists(v: Any) -> Any:
    """Tuples cross as JSON arrays, so they come back as lists (documented)."""
    if isinstance(v, (list, tuple)):
        return [_tuples_as_lists(x) for x in v]
    if isinstance(v, dict):
        return {k: _tuples_as_lists(x) for k, x in v.items()}
    return v


def _is_json(v: Any) -> bool:
    """Plain JSON: None, bool, int, finite float, str, lists and dicts with str keys."""
    for x in _walk(v):
        if isinstance(x, float) and not math.isfinite(x):
            return False
        if isinstance(x, dict) and any(not isinstance(k, str) for k in x):
            return False
        if x is not None and not isinstance(x, (bool, int, float, str, list, tuple, dict)):
            return False
    return True


def js_numbers(v: Any) -> Any:
    """``v`` as a JavaScript number system gives it back: an integral float of magnitude at
    most 2**53 is an int (one number type; the README documents it), -0.0 is 0."""
    if isinstance(v, float) and v.is_integer() and abs(v) <= 2**53:
        return int(v)
    if isinstance(v, list):
        return [js_numbers(x) for x in v]
    if isinstance(v, dict):
        return {k: js_numbers(x) for k, x in v.items()}
    return v


JSON_EDGES = (None, True, False, 0, -1, 1.5, -0.0, 1.0, 2.0**60, 1e300, 5e-324, 2.2250738585e-313,
              [1e-310, -4.9e-322], "", "é😀\x00",
              [], {}, [1, -(2**53), "a", None, True, 2.5, {"k": [1, 2]}, []],
              {"a": 1, "b": [1.5, "x"], "c": {"d": None, "e": False}, "": ""},
              {"é😀": {"\x00": [[], {}]}}, [2**53 - 1], [2**53 + 1], [-(2**63)], [2**63 - 1],
              [2**64 - 1], [2**64], [2**100], [NAN], {"a": INF}, [-INF], {1: "a"}, {None: 1},
              _nested(JSON_DEPTH), _nested(JSON_DEPTH + 1), ["\ud800"], list(range(10_000)),
              [(1, "a")], b"x")

json_scalars = st.one_of(st.none(), st.booleans(), st.integers(-(2**70), 2**70),
                         st.floats(allow_nan=False, allow_infinity=False), st.text(max_size=20))
json_values = st.recursive(json_scalars, lambda inner: st.one_of(
    st.lists(inner, max_size=5), st.dictionaries(st.text(max_size=10), inner, max_size=5)),
    max_leaves=25)


def json_row(id: str, source: str, written: str, *, ints: tuple[int, int] | None = None,
             big_ints: str = "refused", numbers: Callable[[Any], Any] | None = None,
             surrogates: str = "refused", **kw: Any) -> Row:
    """Any JSON value (lists, dicts with str keys, None, nested up to :data:`JSON_DEPTH`).

    ``ints``: the integer range the language's JSON holds exactly (None: any); an int outside
    it is ``refused`` or ``either`` (``big_ints``). ``numbers``: how the language gives
    numbers back when that is documented (JavaScript: :func:`js_numbers`)."""
    def expect(v: Any) -> Any:
        if not _is_json(v) or depth_of(v) > JSON_DEPTH:
            return REFUSED
        if any(isinstance(x, str) and _lone_surrogate(x) for x in _walk(v)):
            return REFUSED if surrogates == "refused" else Either(v)
        if ints is not None and any(isinstance(x, int) and not isinstance(x, bool)
                                    and not ints[0] <= x <= ints[1] for x in _walk(v)):
            return REFUSED if big_ints == "refused" else Either(v)
        v = _tuples_as_lists(v)
        return numbers(v) if numbers else v

    return Row(id, source, written, expect, JSON_EDGES, json_values, **kw)


MAP_EDGES = ({}, {"a": 1}, {"": 0, "é😀": -1, "\x00": 2**31 - 1, "k" * 1000: -(2**31)},
             {f"k{i}": i for i in range(1000)}, {1: 2}, {"a": "b"}, {"a": 1.5}, {"a": None},
             {"a": 2**53 + 1}, {"a": 2**63 - 1}, [("a", 1)], None)


def map_row(id: str, source: str, written: str, lo: int, hi: int, *, checked: bool = True,
            any_keys: bool = False, **kw: Any) -> Row:
    """A map from text to integers in lo..hi. Keys that are not text are refused; other
    values are refused too, unless the language does not check types at run time
    (``checked=False``: exact or an error). ``any_keys``: the map keeps its keys' types
    (JavaScript's Map: numbers within 2**53, text, None, bools), and a list of pairs is a map."""
    def expect(v: Any) -> Any:
        if v is None:  # a null map (Go's nil map) may cross as itself
            return Either(None)
        if any_keys and isinstance(v, dict):
            if all(k is None or isinstance(k, (bool, str)) or (isinstance(k, (int, float))
                   and abs(k) <= 2**53) for k in v) and not any(
                       isinstance(k, str) and _lone_surrogate(k) for k in v):
                v = {k: x for k, x in v.items()}
                return v if all(isinstance(x, int) and not isinstance(x, bool) and lo <= x <= hi
                                for x in v.values()) else Either(v)
            return REFUSED
        if any_keys and isinstance(v, list) and all(
                isinstance(p, (list, tuple)) and len(p) == 2 and isinstance(p[0], str)
                for p in v):
            return Either(dict(v))
        if not _is_json(v) or (checked and isinstance(v, list)):
            return REFUSED
        if not isinstance(v, dict):
            return REFUSED if checked else Either(_tuples_as_lists(v))
        for k, x in v.items():
            if _lone_surrogate(k):
                return REFUSED
            if isinstance(x, bool) or not isinstance(x, int) or not lo <= x <= hi:
                return Either(v) if x is None or not checked else REFUSED
        return v

    strategy = st.dictionaries(st.text(max_size=12), st.integers(lo, hi), max_size=20)
    return Row(id, source, written, expect, MAP_EDGES, strategy, **kw)


SET_EDGES = (set(), {1}, {0, -1, 2**31 - 1, -(2**31)}, set(range(1000)), frozenset({3, 4}),
             [1, 2], {1.5}, {"a"}, None)


def set_row(id: str, source: str, written: str, lo: int, hi: int, *,
            as_list: bool = False, checked: bool = True, **kw: Any) -> Row:
    """A set of integers in lo..hi; ``as_list``: documented to come back as a JSON array;
    ``checked=False``: members of another type are not refused by the language (either)."""
    def expect(v: Any) -> Any:
        if isinstance(v, (list, tuple)) and _is_json(v):  # a JSON array: its members as a set
            v = set(v) if all(isinstance(x, int) for x in v) else v
        if not isinstance(v, (set, frozenset)):
            return REFUSED if checked else Either(v)
        if any(isinstance(x, bool) or not isinstance(x, int) or not lo <= x <= hi for x in v):
            return REFUSED if checked else Either(set(v))
        return set(v)

    strategy = st.sets(st.integers(lo, hi), max_size=30)
    return Row(id, source, written, expect, SET_EDGES, strategy,
               compare=same_members if as_list else None, **kw)


def enum_row(id: str, source: str, written: str, variants: tuple[str, ...], *,
             checked: bool = True, **kw: Any) -> Row:
    """An enum crossing as its variant's name; another string is refused (by the host or, as
    InvocationError, by the guest: Either); ``checked=False``: the language does not check
    (TypeScript), so any JSON value is exact or an error."""
    def expect(v: Any) -> Any:
        if v in variants and isinstance(v, str):
            return v
        return Either(v) if isinstance(v, str) or not checked else REFUSED

    edges = (*variants, "", "Purple", variants[0].lower() + "x", 0, None)
    strategy = st.one_of(st.sampled_from(variants), st.text(max_size=8))
    return Row(id, source, written, expect, edges, strategy, **kw)


def nullable(row: Row) -> Row:
    """``row`` for a reference type whose null crosses as None (C#'s string, arrays,
    collections)."""
    inner, compare = row.expect, row.compare or same
    return replace(row, expect=lambda v: None if v is None else inner(v),
                   compare=lambda got, want: got is None if want is None else compare(got, want))


# -- the check --------------------------------------------------------------------------------

class Matrix:
    """One language's client on a temporary store; each row's identity deployed once."""

    def __init__(self, language: str, fx: Functions) -> None:
        self.language = language
        self.fx = fx
        self._deployed: dict[str, str | CompileError] = {}

    def name(self, row: Row) -> str:
        name = "id_" + re.sub(r"[^A-Za-z0-9_]", "_", row.id.replace("[]", "_array"))
        if row.id not in self._deployed:
            try:
                self.fx.deploy(self.language, row.source.format(name=name), name=name)
                self._deployed[row.id] = name
            except CompileError as exc:
                self._deployed[row.id] = exc
        done = self._deployed[row.id]
        if isinstance(done, CompileError):
            pytest.fail(f"[{self.language}/{row.id}] the identity cell did not deploy: {done}")
        return done

    def check(self, row: Row, value: Any) -> str | None:
        """None when ``value`` behaved as ``row`` says, else what went wrong."""
        name = self.name(row)
        want = row.expect(value)
        where = f"[{self.language}/{row.id}] {show(value)}"
        try:
            got = self.fx.invoke(name, value)
        except BadArguments as exc:
            if want is REFUSED or isinstance(want, Either):
                return self._names(where, row, value, exc)
            return f"{where}: expected {show(want)}, got BadArguments: {exc}"
        except InvocationError as exc:
            if isinstance(want, Either):
                return self._names(where, row, value, exc)
            return (f"{where}: expected "
                    f"{'BadArguments' if want is REFUSED else show(want)}, got "
                    f"{type(exc).__name__}: {exc}")
        except Exception as exc:  # noqa: BLE001 - any other exception is a finding
            return f"{where}: raised {type(exc).__name__}: {exc}"
        if want is REFUSED:
            return f"{where}: expected BadArguments, got back {show(got)}"
        want = want.value if isinstance(want, Either) else want
        if not (row.compare or same)(got, want):
            return f"{where}: expected {show(want)}, got back {show(got)}"
        return None

    def _names(self, where: str, row: Row, value: Any, exc: Exception) -> str | None:
        """The error's message names the type or the value."""
        text = str(exc)
        words = [row.written, type(value).__name__, *row.names]
        if isinstance(value, (str, int, float)) and not isinstance(value, bool):
            words.append(repr(value)[:20])
        if any(w and w in text for w in words):
            return None
        return f"{where}: {type(exc).__name__} does not name the type or the value: {text}"


#: What a result-side cell (:func:`check_result`) returns: NaN, +inf and -0.0 in a JSON map.
NONFINITE = {"nan": NAN, "inf": INF, "neg": -0.0}


def nonfinite_test(cell: str, want: Any = NONFINITE) -> Callable[..., None]:
    """A module's ``test_nonfinite_floats_in_a_json_result`` for ``cell``, whose function
    ``nonfinite`` returns NaN, +inf and -0.0 inside a JSON kind (``want``: what must come back)."""
    def test_nonfinite_floats_in_a_json_result(matrix: Matrix) -> None:
        """NaN, +inf and -0.0 inside a JSON result come back exactly, or the call fails naming
        them (never null, a string or 0.0)."""
        check_result(matrix, "nonfinite", cell, want)

    return test_nonfinite_floats_in_a_json_result


def check_result(matrix: Matrix, name: str, source: str, want: Any,
                 words: tuple[str, ...] = ("NaN", "nan", "Inf", "inf")) -> None:
    """A function without arguments returning ``want`` in a JSON kind: the call returns it
    exactly, or raises InvocationError naming it (one of ``words``); nothing else."""
    matrix.fx.deploy(matrix.language, source, name=name)
    where = f"[{matrix.language}/result {name}]"
    try:
        got = matrix.fx.invoke(name)
    except InvocationError as exc:
        assert any(w in str(exc) for w in words), \
            f"{where}: InvocationError does not name the value: {exc}"
        return
    assert same(got, want), f"{where}: expected {show(want)}, got back {show(got)}"


def make_fixture(language: str) -> Callable[..., Any]:
    """The module's ``matrix`` fixture: a client on a temporary store (skip when the
    language's toolchain is not usable here)."""
    @pytest.fixture(scope="module")
    def matrix(tmp_path_factory: pytest.TempPathFactory) -> Any:
        if language not in names() or not get_language(language).toolchain().usable:
            pytest.skip(f"{language}: toolchain not usable here")
        fx = Functions(store=str(tmp_path_factory.mktemp(f"roundtrip-{language}") / "store"),
                       breaker=BreakerConfig(failure_threshold=1_000_000))
        yield Matrix(language, fx)
        fx.close()

    return matrix


def make_tests(rows: list[Row]) -> tuple[Callable[..., None], Callable[..., None]]:
    """``test_edges`` (every edge value of a row, all problems listed together) and
    ``test_generated`` (hypothesis), parametrized by row."""
    by_id = pytest.mark.parametrize("row", rows, ids=[r.id for r in rows])

    @by_id
    def test_edges(matrix: Matrix, row: Row) -> None:
        problems = [p for v in row.edges if (p := matrix.check(row, v)) is not None]
        assert not problems, "\n".join(problems)

    @by_id
    @settings(max_examples=EXAMPLES, deadline=None, database=None,
              suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large,
                                     HealthCheck.function_scoped_fixture])
    @given(data=st.data())
    def test_generated(matrix: Matrix, row: Row, data: st.DataObject) -> None:
        value = data.draw(row.strategy, label=row.id)
        problem = matrix.check(row, value)
        assert problem is None, problem

    return test_edges, test_generated


__all__ = ["I64", "NONFINITE", "REFUSED", "Either", "Matrix", "Row", "array_row", "bool_row",
           "bytes_row", "check_result", "enum_row", "float_row", "int_row", "js_numbers",
           "json_row", "make_fixture", "make_tests", "map_row", "nonfinite_test", "nullable",
           "same", "same_members", "set_row", "signed", "str_row", "unsigned"]
