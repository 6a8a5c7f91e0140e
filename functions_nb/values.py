"""The value kinds of the calling convention: one table, its checks, one bad-argument message.

Every boundary a value crosses uses this module: the runtimes' argument encoders (a Python
value into a guest), the human tier's answer check and the LLM tiers' output types. A value
crosses exactly or is refused with a message naming it; nothing is silently changed
(no bool for an integer, no wrapped integer, no rounded-away digits of an integer passed as
a float, no float overflowing to infinity).

Two checks, one table:

* :func:`converter` (arguments from Python code, strict): integers are ``int`` or
  ``__index__`` types (numpy integers), never bool or float; floats are anything with an
  exact float value (an int beyond 2**53 that a float cannot hold is refused); ``f32``
  rounds to the nearest f32 as a literal in the guest would, but refuses a finite value that
  would become infinite; bools are ``True``/``False`` (or numpy's), never 0/1.
* :func:`answer` (values given as JSON or typed text by a person or a model): as above,
  and text is read (``"42"`` is 42 for an integer kind, ``"true"`` for bool), an integral
  float is an integer (``3.0`` -> 3); the JSON form is returned.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Callable
from typing import Any, NamedTuple

from .errors import BadArguments

#: Longest ``repr`` of a refused value shown in a message (longer ones end with "...").
SHOWN_CHARS = 100
#: Deepest nesting of a JSON value (lists and objects inside each other) that crosses a
#: boundary; guests' parsers stop earlier or later (serde_json at 128), Python's at ~1000.
MAX_JSON_DEPTH = 100
#: Longest JSON text of one value, in characters.
MAX_JSON_CHARS = 64 * 1024 * 1024


class ValueKind(NamedTuple):
    """One kind of the calling convention."""

    name: str
    #: What a value of the kind is, for messages ("an integer (i32)").
    expected: str
    #: Integer range (integer kinds) or the finite range (f32).
    lo: int | float | None = None
    hi: int | float | None = None
    #: numpy dtype of an array kind (little-endian, as wasm memory and the hosts use).
    dtype: str | None = None
    #: Element kind of an array kind.
    element: str | None = None


#: Largest finite f32 and the smallest magnitude that rounds to an infinite f32.
F32_MAX = float.fromhex("0x1.fffffep+127")
_F32_OVERFLOW = float(2**128 - 2**103)


#: Integer kinds and their ranges (a parameter's narrower ``Param.bounds`` win).
INT_RANGES: dict[str, tuple[int, int]] = {
    "i32": (-(2**31), 2**31 - 1), "u32": (0, 2**32 - 1),
    "i64": (-(2**63), 2**63 - 1), "u64": (0, 2**64 - 1)}

#: The kinds, by name.
KINDS: dict[str, ValueKind] = {k.name: k for k in (
    *(ValueKind(name, f"an integer ({name})", lo, hi) for name, (lo, hi) in INT_RANGES.items()),
    ValueKind("bigint", "an integer (bigint)"),
    ValueKind("f32", "a number (f32)", -F32_MAX, F32_MAX),
    ValueKind("f64", "a number (f64)"),
    ValueKind("bool", "true or false"),
    ValueKind("str", "text"),
    ValueKind("bytes", "bytes"),
    ValueKind("json", "a JSON value"),
    ValueKind("unit", "nothing (the function returns nothing)"),
    ValueKind("f64[]", "a list of numbers (f64[])", dtype="<f8", element="f64"),
    ValueKind("f32[]", "a list of numbers (f32[])", dtype="<f4", element="f32"),
    ValueKind("i32[]", "a list of integers (i32[])", dtype="<i4", element="i32"),
    ValueKind("i64[]", "a list of integers (i64[])", dtype="<i8", element="i64"),
)}
#: Array kinds and their numpy dtypes.
ARRAY_DTYPES: dict[str, str] = {k.name: k.dtype for k in KINDS.values() if k.dtype}


def kind_of_dtype(dtype: str) -> str:
    """The array kind whose items are numpy ``dtype`` (``"<f8"`` -> ``"f64[]"``)."""
    return next(name for name, dt in ARRAY_DTYPES.items() if dt == dtype)


class Refused(ValueError):
    """A value that does not fit a kind: what was expected, and why not (may be empty)."""

    def __init__(self, expected: str, why: str = "") -> None:
        super().__init__(f"expected {expected}" + (f" ({why})" if why else ""))
        self.expected = expected
        self.why = why


def kind(name: str) -> ValueKind:
    """The kind called ``name``; JSON for names this version does not know."""
    return KINDS.get(name, KINDS["json"])


def int_range(name: str, bounds: tuple[int, int] | None = None) -> tuple[int, int]:
    """The range of integer kind ``name``, or ``bounds`` (a narrower source type, e.g. u8)."""
    return bounds or INT_RANGES[name]


def shown(value: Any) -> str:
    """``value`` in a message: its type and its ``repr``, cut at :data:`SHOWN_CHARS`."""
    try:
        text = repr(value)
    except RecursionError:
        text = "(nested too deeply to show)"
    if len(text) > SHOWN_CHARS:
        text = text[:SHOWN_CHARS - 3] + "..."
    return f"{type(value).__name__} {text}"


def bad_argument(sig: Any, pname: str, ptype: str, value: Any, why: str = "") -> BadArguments:
    """THE bad-argument error: ``<signature>: argument 'x' expects <type>, got <value> (why)``."""
    return BadArguments(f"{sig}: argument {pname!r} expects {ptype}, got {shown(value)}"
                        + (f" ({why})" if why else ""))


def bad_answer(sig: Any, value: Any, refused: Refused) -> BadArguments:
    """A refused answer (human tier): ``<signature>: the answer must be <expected>, got ...``."""
    where = f"{sig}: " if sig else ""
    return BadArguments(f"{where}the answer must be {refused.expected}, got {shown(value)}"
                        + (f" ({refused.why})" if refused.why else ""))


# -- strict checks (arguments from Python) ------------------------------------------------

def _is_bool(value: Any) -> bool:
    t = type(value)
    return t is bool or (t.__module__ == "numpy" and t.__name__ in ("bool", "bool_"))


def to_int(value: Any, lo: int, hi: int, label: str) -> int:
    """An integer in ``lo..hi``: ``int`` or an ``__index__`` type (numpy integers); bool,
    float and everything else refused. ``label`` names the type in the message."""
    if type(value) is not int:
        if _is_bool(value) or not hasattr(value, "__index__"):
            raise Refused(f"an integer ({label})")
        value = value.__index__()
    if not lo <= value <= hi:
        raise Refused(f"an integer ({label})", f"out of range for {label}: {lo}..{hi}")
    return value


def to_float(value: Any, name: str = "f64") -> float:
    """A float that holds ``value`` exactly (NaN and infinities included); for ``f32`` also
    one that stays finite when rounded to f32."""
    if type(value) is not float:
        if _is_bool(value):
            raise Refused(KINDS[name].expected)
        if hasattr(value, "__index__"):
            exact = value.__index__()
            try:
                value = float(exact)
            except OverflowError:
                raise Refused(KINDS[name].expected, f"too large for {name}") from None
            if value != exact:
                raise Refused(KINDS[name].expected,
                              f"{exact} has no exact {name} value")
        elif hasattr(value, "__float__") and not isinstance(value, (str, bytes, complex)):
            try:
                converted = float(value)
            except (TypeError, ValueError, OverflowError):
                raise Refused(KINDS[name].expected) from None
            if converted == converted and converted != value:
                raise Refused(KINDS[name].expected, f"not exactly representable as {name}")
            value = converted
        else:
            raise Refused(KINDS[name].expected)
    if name == "f32" and _F32_OVERFLOW <= abs(value) < math.inf:
        raise Refused(KINDS[name].expected, f"out of range for f32: ±{F32_MAX!r}")
    return value


def to_bool(value: Any) -> bool:
    """``True``/``False`` (or numpy's bool); 0 and 1 are not bools."""
    if value is True or value is False:
        return value
    if _is_bool(value):
        return bool(value)
    raise Refused(KINDS["bool"].expected)


def to_str(value: Any) -> str:
    if not isinstance(value, str):
        raise Refused(KINDS["str"].expected)
    return value


def to_utf8(value: Any) -> bytes:
    """Text as UTF-8 (a lone surrogate, which UTF-8 cannot hold, is refused)."""
    try:
        return to_str(value).encode("utf-8")
    except UnicodeEncodeError as exc:
        raise Refused(KINDS["str"].expected,
                      f"not encodable as UTF-8: {exc.reason} at index {exc.start}") from None


_SURROGATE = re.compile("[\ud800-\udfff]")
#: JSON text (ASCII, as json.dumps writes it) that may hold a surrogate code point.
_ESCAPED_SURROGATE = re.compile(r"\\ud[89a-f]", re.I)
_SURROGATE_WHY = ("holds a surrogate code point{where} (not Unicode text): a guest's UTF-16 "
                  "strings cannot keep it apart from half of a character (two of them arrive "
                  "as one)")


def _surrogate_in(value: Any) -> str | None:
    """The first str in a JSON value (keys included) holding a surrogate code point."""
    if isinstance(value, str):
        return value if _SURROGATE.search(value) else None
    items = [*value.keys(), *value.values()] if isinstance(value, dict) else \
        value if isinstance(value, (list, tuple)) else ()
    for item in items:
        found = _surrogate_in(item)
        if found is not None:
            return found
    return None


def _surrogate_refused(sig: Any, param: Any, value: Any, text: str) -> BadArguments:
    found = _SURROGATE.search(text)
    where = f" at index {found.start()}" if found and text is value else ""
    return bad_argument(sig, param.name, param.type, value, _SURROGATE_WHY.format(where=where))


def unicode_argument(text: str, sig: Any, param: Any) -> str:
    """``text`` (a checked ``str`` argument) for a guest whose strings are UTF-16 or that a
    UTF-16 host carries (V8, Pyodide): a surrogate code point is :func:`bad_argument`, since a
    lone one and a pair written as two code points would not come back as they were."""
    if not text.isascii() and _SURROGATE.search(text):
        raise _surrogate_refused(sig, param, text, text)
    return text


def to_bytes(value: Any) -> bytes:
    if not isinstance(value, (bytes, bytearray, memoryview)):
        raise Refused(KINDS["bytes"].expected)
    return bytes(value)


def json_default(value: Any) -> Any:
    """``json.dumps`` fallback: numpy arrays and scalars, sets."""
    if hasattr(value, "tolist"):
        return value.tolist()
    if hasattr(value, "item"):
        return value.item()
    if isinstance(value, (set, frozenset)):
        return list(value)
    raise TypeError(f"{type(value).__name__} is not JSON-serializable")


def to_json_text(value: Any, allow_nan: bool = False) -> str:
    """Compact JSON text of ``value``, at most :data:`MAX_JSON_DEPTH` levels deep and
    :data:`MAX_JSON_CHARS` long; NaN and infinities (which JSON cannot hold) refused unless
    ``allow_nan``."""
    try:
        text = json.dumps(value, separators=(",", ":"), allow_nan=allow_nan, default=json_default)
    except RecursionError:
        raise Refused(KINDS["json"].expected, _TOO_DEEP) from None
    except (TypeError, ValueError) as exc:
        raise Refused(KINDS["json"].expected, f"not JSON-serializable: {exc}") from None
    if len(text) > MAX_JSON_CHARS:
        raise Refused(KINDS["json"].expected,
                      f"{len(text)} characters of JSON, at most {MAX_JSON_CHARS} are accepted")
    if _ESCAPED_SURROGATE.search(text):  # only then can a str hold a surrogate code point
        bad = _surrogate_in(value)
        if bad is not None:
            raise Refused(KINDS["json"].expected, f"the text {bad[:40]!r} " + _SURROGATE_WHY.format(
                where="") + "; UTF-8 guests cannot hold one at all")
    if "{" in text:  # only then can a dict key have been turned into text
        bad = _key_not_text(value)
        if bad:
            key = bad[0]
            raise Refused(KINDS["json"].expected,
                          f"the dict key {key!r} is {type(key).__name__}, not str: JSON object "
                          f"keys are text, so it would arrive as {json.dumps({key: 0})[1:-4]}; "
                          "convert the keys with str() first")
    if (text.count("[") + text.count("{") > MAX_JSON_DEPTH  # only then can it be too deep
            and json_depth(text, MAX_JSON_DEPTH) > MAX_JSON_DEPTH):
        raise Refused(KINDS["json"].expected, _TOO_DEEP)
    return text


def _key_not_text(value: Any, depth: int = 0) -> tuple[Any, ...]:
    """``(key,)``: the first dict key in ``value`` that is not a str (json.dumps would
    silently make it one); ``()`` when there is none."""
    if depth <= MAX_JSON_DEPTH:
        if isinstance(value, dict):
            for k, v in value.items():
                if type(k) is not str:
                    return (k,)
                if isinstance(v, (dict, list, tuple)):
                    found = _key_not_text(v, depth + 1)
                    if found:
                        return found
        elif isinstance(value, (list, tuple)):
            for v in value:
                if isinstance(v, (dict, list, tuple)):
                    found = _key_not_text(v, depth + 1)
                    if found:
                        return found
    return ()


_TOO_DEEP = f"nested more than {MAX_JSON_DEPTH} levels deep"
_JSON_STRINGS = re.compile(r'"[^"\\]*(?:\\.[^"\\]*)*"')
_NOT_BRACKETS = re.compile(r"[^\[\]{}]+")
_SQUARE = str.maketrans("{}", "[]")


def json_depth(text: str, limit: int | None = None) -> int:
    """How deeply lists and objects nest in the JSON ``text`` (0 for a scalar); counting
    stops past ``limit``. Each round removes the innermost pairs (string operations only)."""
    brackets = _NOT_BRACKETS.sub("", _JSON_STRINGS.sub("", text)).translate(_SQUARE)
    depth = 0
    while brackets and (limit is None or depth <= limit):
        inner = brackets.replace("[]", "")
        if inner == brackets:  # not JSON made by json.dumps
            break
        brackets = inner
        depth += 1
    return depth


def to_array(value: Any, name: str) -> Any:
    """A 1-D contiguous numpy array of array kind ``name`` from a numpy array (converted only
    when numpy calls the cast safe) or a sequence of numbers (each must fit the element kind
    exactly, f32 rounding aside). No copy when the array already fits and is contiguous."""
    import numpy as np

    spec = KINDS[name]
    dtype = np.dtype(spec.dtype)
    if isinstance(value, np.ndarray):
        arr = value
        if arr.dtype != dtype:
            if arr.dtype.kind not in "iuf" or not np.can_cast(arr.dtype, dtype, "safe"):
                raise Refused(spec.expected, f"a {arr.dtype} array cannot be converted to "
                                             f"{dtype.name} without losing values; convert it "
                                             "with .astype()")
            arr = arr.astype(dtype)
    elif isinstance(value, (list, tuple, range)):
        try:
            arr = np.asarray(value)
        except ValueError as exc:
            raise Refused(spec.expected, str(exc)) from None
        if arr.size and (arr.dtype.kind not in "iuf" or
                         not np.can_cast(arr.dtype, dtype, "same_kind")):
            raise Refused(spec.expected, f"expected numbers that fit {dtype.name}")
        if arr.ndim == 1 and arr.size:
            _check_elements(arr, spec, dtype)
        arr = arr.astype(dtype)
    else:
        raise Refused(spec.expected, "pass a 1-D numpy array or a list of numbers")
    if arr.ndim != 1:
        raise Refused(spec.expected, f"expected a 1-D array, got {arr.ndim} dimensions")
    return np.ascontiguousarray(arr)


def _check_elements(arr: Any, spec: ValueKind, dtype: Any) -> None:
    """Elements of a list that would not convert exactly (out of range, too large for f32)."""
    import numpy as np

    if dtype.kind in "iu":
        lo, hi = INT_RANGES[spec.element or ""]
        bad = (arr < lo) | (arr > hi)
        why = f"out of range for {spec.element}: {lo}..{hi}"
    elif arr.dtype.kind in "iu":  # integers into a float array: exact values only
        with np.errstate(over="ignore"):
            bad = arr.astype(dtype).astype(arr.dtype) != arr
        why = f"no exact {spec.element} value"
    elif dtype.itemsize == 4:
        bad = np.isfinite(arr) & (np.abs(arr) >= _F32_OVERFLOW)
        why = f"out of range for f32: ±{F32_MAX!r}"
    else:
        return
    if bad.any():
        i = int(np.argmax(bad))
        raise Refused(spec.expected, f"element {i} = {arr[i].item()!r}: {why}")


def converter(name: str, bounds: tuple[int, int] | None = None,
              label: str | None = None) -> Callable[[Any], Any]:
    """The strict check of kind ``name`` (raises :class:`Refused`): ints, floats, bools as
    Python values, ``str`` as str, ``bytes`` as bytes, arrays as numpy arrays, JSON as text."""
    if name in INT_RANGES:
        lo, hi = int_range(name, bounds)
        text = label or name
        return lambda value: (value if type(value) is int and lo <= value <= hi
                              else to_int(value, lo, hi, text))
    if name == "bigint":  # any size (JavaScript's BigInt)
        return lambda value: value if type(value) is int else to_int(value, -math.inf, math.inf,
                                                                      label or name)
    if name in ("f32", "f64"):
        return lambda value: to_float(value, name)
    if name in ARRAY_DTYPES:
        return lambda value: to_array(value, name)
    return {"bool": to_bool, "str": to_str, "bytes": to_bytes}.get(name, to_json_text)


def argument(sig: Any, param: Any) -> Callable[[Any], Any]:
    """The strict check of one parameter (a ``models.Param``), raising :func:`bad_argument`."""
    check = converter(param.kind, param.bounds, param.type)

    def convert(value: Any) -> Any:
        try:
            return check(value)
        except Refused as exc:
            raise bad_argument(sig, param.name, param.type, value, exc.why) from None

    return convert


def int_argument(value: Any, lo: int, hi: int, sig: Any, pname: str, ptype: str) -> int:
    """An integer argument in ``lo..hi``, or :func:`bad_argument`."""
    try:
        return to_int(value, lo, hi, ptype)
    except Refused as exc:
        raise bad_argument(sig, pname, ptype, value, exc.why) from None


# -- lenient checks (answers given as JSON or typed text) -----------------------------------

def answer(name: str, value: Any, bounds: tuple[int, int] | None = None) -> Any:
    """The JSON form of a result of kind ``name`` given by a person or a model, or
    :class:`Refused`. Text is read (``"42"``, ``"2.5"``, ``"true"``, a JSON list for an
    array kind); an integral float is an integer; everything else as :func:`converter`."""
    spec = kind(name)
    if name == "unit":
        if value is not None:
            raise Refused("empty (the function returns nothing): approve or reject instead")
        return None
    if name in INT_RANGES or name == "bigint":
        lo, hi = int_range(name, bounds) if name in INT_RANGES else (-math.inf, math.inf)
        if isinstance(value, str):
            try:
                value = int(value.strip())
            except ValueError:
                raise Refused(spec.expected) from None
        elif isinstance(value, float) and value.is_integer():
            value = int(value)
        return to_int(value, lo, hi, name)
    if name in ("f32", "f64"):
        if isinstance(value, str):
            text = value.strip()
            try:
                value = float(text)
            except ValueError:
                raise Refused(spec.expected) from None
            if math.isinf(value) and "inf" not in text.lower():
                raise Refused(spec.expected, f"{text} is too large for {name}")
        return to_float(value, name)
    if name == "bool":
        if isinstance(value, str) and value.strip().lower() in ("true", "false"):
            return value.strip().lower() == "true"
        return to_bool(value)
    if name in ("str", "bytes"):
        if _is_bool(value) or not isinstance(value, (str, int, float)):
            raise Refused(spec.expected)
        return value if isinstance(value, str) else json.dumps(value)
    if name in ARRAY_DTYPES:
        if isinstance(value, str):
            try:
                value = json.loads(value)
            except json.JSONDecodeError:
                raise Refused(f"a JSON list of numbers ({name})") from None
        if not isinstance(value, list) or any(_is_bool(v) or not isinstance(v, (int, float))
                                              for v in value):
            raise Refused(spec.expected)
        element = spec.element or "f64"
        out = []
        for i, v in enumerate(value):
            try:
                out.append(answer(element, v))
            except Refused as exc:
                raise Refused(spec.expected, f"element {i} = {v!r}: {exc.why or exc.expected}") \
                    from None
        return out
    if value is None:
        return None
    return json.loads(to_json_text(value, allow_nan=True))  # json: any JSON value


__all__ = ["ARRAY_DTYPES", "F32_MAX", "INT_RANGES", "KINDS", "Refused", "ValueKind", "answer",
           "argument", "bad_answer", "bad_argument", "converter", "int_argument", "int_range",
           "json_default", "json_depth", "kind", "kind_of_dtype", "shown", "to_array", "to_bool",
           "to_bytes", "to_float", "to_int", "to_json_text", "to_str", "to_utf8",
           "unicode_argument"]
