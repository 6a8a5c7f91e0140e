"""Plain data passed between modules: signatures, artifacts, deployed versions, executions.

Value records are ``NamedTuple``s or small ``__slots__`` classes on :class:`Record`, not
dataclasses: every short-lived process (a script's one call, ``func invoke``) imports this
module, and ``dataclasses`` (with ``inspect``) plus the code it generates per class cost more
than the rest of the invoke path together.
"""

from __future__ import annotations

import re
from typing import Any, NamedTuple

from .errors import BadArguments

NAME_RE = re.compile(r"[A-Za-z][A-Za-z0-9_]{0,63}")

#: Value kinds a parameter or result can have at the host boundary.
SCALAR_KINDS = ("i32", "u32", "i64", "u64", "f32", "f64", "bool")
MARSHALLED_KINDS = ("str", "bytes", "json")
#: 1-D numeric arrays: numpy in and out, copied into guest memory (WASM languages).
ARRAY_KINDS = ("f64[]", "f32[]", "i32[]", "i64[]")


def check_name(name: str) -> str:
    """Validate a function name (``[A-Za-z][A-Za-z0-9_]{0,63}``)."""
    if not isinstance(name, str) or not NAME_RE.fullmatch(name):
        shown = repr(name) if len(repr(name)) <= 80 else repr(name)[:77] + "..."
        raise BadArguments(
            f"invalid function name {shown}: use a letter, then letters, digits or '_' (at most 64)")
    return name


#: A version as written in a target: ASCII digits only (``str.isdigit`` also accepts ``²``
#: and ``١``), at most 9 of them.
VERSION_RE = re.compile(r"[0-9]{1,9}")


def parse_target(target: str) -> tuple[str, int | None]:
    """``"add"`` -> ("add", None); ``"add@3"`` -> ("add", 3)."""
    if not isinstance(target, str):
        raise BadArguments(f"a function is named by text, NAME or NAME@VERSION; got "
                           f"{type(target).__name__}")
    name, sep, ver = target.partition("@")
    check_name(name)
    if not sep:
        return name, None
    if not VERSION_RE.fullmatch(ver) or int(ver) < 1:
        shown = ver if len(ver) <= 20 else ver[:17] + "..."
        raise BadArguments(f"invalid version {shown!r} in {name}@...: expected NAME@N with N a "
                           "whole number >= 1 written in the digits 0-9")
    return name, int(ver)


class Record:
    """Equality, hash and repr from ``__slots__`` (the fields, in order) for value classes."""

    __slots__: tuple[str, ...] = ()

    def _values(self) -> tuple[Any, ...]:
        return tuple(getattr(self, f) for f in self.__slots__ if not f.startswith("_"))

    def __eq__(self, other: object) -> bool:
        return type(other) is type(self) and self._values() == other._values()  # type: ignore[attr-defined]

    def __hash__(self) -> int:
        return hash(self._values())

    def __repr__(self) -> str:
        fields = ", ".join(f"{f}={getattr(self, f)!r}" for f in self.__slots__
                           if not f.startswith("_"))
        return f"{type(self).__name__}({fields})"

    def as_dict(self) -> dict[str, Any]:
        """The fields as a dict (nested records and parameters as dicts too)."""
        return {f: _plain_value(getattr(self, f)) for f in self.__slots__ if not f.startswith("_")}


def _plain_value(value: Any) -> Any:
    if isinstance(value, Record):
        return value.as_dict()
    if isinstance(value, Param):
        return value._asdict()
    if isinstance(value, tuple):
        return tuple(_plain_value(v) for v in value)
    return value


class Param(NamedTuple):
    """One parameter: its name, its host kind and the type as written in the source."""

    name: str
    kind: str
    type: str
    #: Range for narrow integer types, e.g. (0, 255) for u8 (a variadic's: its element's).
    bounds: tuple[int, int] | None = None
    #: The parameter may be omitted (a default value or an optional parameter in the source);
    #: the guest applies its own default.
    has_default: bool = False
    #: The last parameter takes the rest of the positional arguments (Go ``...T``): ``kind``
    #: is the slice's kind, ``element`` the kind each argument is checked as.
    variadic: bool = False
    element: str = ""


class Signature(Record):
    """Parameters and result of a function, as seen from Python (treat as immutable).

    ``result`` is a kind or ``"unit"``; ``fallible``: the function returns an error union /
    Result (errors become InvocationError); ``wants_allocator``: it takes an allocator first
    (Zig), which the host does not pass."""

    __slots__ = ("name", "params", "result", "result_type", "fallible", "wants_allocator",
                 "_required", "_plain")

    def __init__(self, name: str, params: tuple[Param, ...], result: str,
                 result_type: str = "()", fallible: bool = False,
                 wants_allocator: bool = False) -> None:
        self.name = name
        self.params = tuple(params)
        self.result = result
        self.result_type = result_type
        self.fallible = fallible
        self.wants_allocator = wants_allocator
        n = len(self.params)
        while n and self.params[n - 1].has_default:
            n -= 1
        self._required = n
        # no defaults and no variadic: positional arguments pass through as given
        self._plain = n == len(self.params) and not (self.params and self.params[-1].variadic)

    def __reduce__(self) -> tuple[Any, ...]:
        return (Signature, (self.name, self.params, self.result, self.result_type,
                            self.fallible, self.wants_allocator))

    def __str__(self) -> str:
        params = ", ".join(f"{p.name}: {p.type}" for p in self.params)
        return f"{self.name}({params}) -> {self.result_type}"

    def to_dict(self) -> dict[str, Any]:
        return self.as_dict()

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Signature:
        params = tuple(
            Param(p["name"], p["kind"], p["type"], tuple(p["bounds"]) if p.get("bounds") else None,
                  bool(p.get("has_default", False)), p.get("variadic", False),
                  p.get("element", ""))
            for p in data["params"])
        return cls(data["name"], params, data["result"], data.get("result_type", "()"),
                   data.get("fallible", False), data.get("wants_allocator", False))

    @property
    def required(self) -> int:
        """How many leading parameters must be given (the rest have defaults)."""
        return self._required

    def check_arity(self, args: tuple) -> None:
        """Every parameter given, or only trailing ones with defaults omitted."""
        n, total = len(args), len(self.params)
        if self.required <= n <= total:
            return
        s = "s" * (total != 1)
        if self.required == total:
            raise BadArguments(f"{self} takes {total} argument{s}, got {n}")
        raise BadArguments(f"{self} takes {self.required} to {total} argument{s}, got {n}")

    def bind(self, args: tuple, kwargs: dict[str, Any] | None = None) -> tuple:
        """The positional arguments for a call with ``args`` and keyword ``kwargs`` (mapped by
        parameter name). Omitted trailing parameters with defaults are left out (the guest
        applies its own default); a variadic parameter gets the rest of ``args`` as a list,
        each checked as its element kind. Unknown, duplicate or missing names are refused
        with :class:`BadArguments` naming the signature."""
        if not kwargs:
            if self._plain:
                return args
        else:
            args = self._place(args, kwargs)
        params = self.params
        if params and params[-1].variadic:
            last = len(params) - 1
            if len(args) < last:
                self.check_arity(args)
            rest = args[last:]
            if kwargs and params[last].name in kwargs:  # by name: a list of the elements
                rest = tuple(_as_list(self, params[last], rest[0]))
            return (*args[:last], self._elements(params[last], rest))
        self.check_arity(args)
        return args

    def _place(self, args: tuple, kwargs: dict[str, Any]) -> tuple:
        """Keyword arguments put in their parameters' positions."""
        names = [p.name for p in self.params]
        slots: list[Any] = list(args[:len(names)]) + [_MISSING] * (len(names) - len(args))
        for key, value in kwargs.items():
            if key not in names:
                known = ", ".join(names) or "no parameters"
                raise BadArguments(f"{self}: no parameter named {key!r} (parameters: {known})")
            i = names.index(key)
            if slots[i] is not _MISSING:
                raise BadArguments(f"{self}: argument {key!r} is given by position and by name")
            slots[i] = value
        missing = [names[i] for i, v in enumerate(slots)
                   if v is _MISSING and not self.params[i].has_default
                   and not self.params[i].variadic]
        if missing:
            raise BadArguments(f"{self}: missing argument{'s' * (len(missing) > 1)} "
                               f"{', '.join(map(repr, missing))}")
        while slots and slots[-1] is _MISSING:
            slots.pop()
        if _MISSING in slots:
            gap = names[slots.index(_MISSING)]
            raise BadArguments(f"{self}: {gap!r} must be given too when a later argument is "
                               "given by name (its default cannot be applied by position)")
        return (*slots, *args[len(names):])

    def _elements(self, param: Param, rest: tuple) -> list[Any] | bytes:
        """The rest of the arguments as the variadic's list (``bytes`` for a variadic of
        bytes, Go ``...byte``), each checked as its element."""
        from .values import Refused, bad_argument, converter

        written = _element_type(param.type)
        check = converter(param.element, param.bounds, written)
        for i, value in enumerate(rest):
            try:
                check(value)
            except Refused as exc:
                raise bad_argument(self, f"{param.name}[{i}]", written, value, exc.why) from None
        return bytes(rest) if param.kind == "bytes" else list(rest)


_MISSING = object()


def _element_type(written: str) -> str:
    """A variadic's element type as the source writes it: Go ``...int`` -> ``int``, C#
    ``params int[]`` -> ``int``."""
    if written.startswith("..."):
        return written[3:]
    return written.removeprefix("params ").removesuffix("[]").strip()


def _as_list(sig: Signature, param: Param, value: Any) -> list[Any]:
    """A variadic given by name: a list (or tuple) of its elements (or bytes, for bytes)."""
    if param.kind == "bytes" and isinstance(value, (bytes, bytearray)):
        return list(value)
    if not isinstance(value, (list, tuple)):
        from .values import bad_argument

        raise bad_argument(sig, param.name, param.type, value,
                           "by name, a variadic parameter takes a list")
    return list(value)


class Artifact(Record):
    """What a language's compiler produces for one cell: ``runtime`` is the runtime kind
    (e.g. ``"wasm"``); ``line_map`` maps lines of generated sources back to cell lines, where
    they differ."""

    __slots__ = ("language", "runtime", "source", "code", "signature", "toolchain", "flags",
                 "compile_ms", "warnings", "line_map", "dependencies")

    def __init__(self, language: str, runtime: str, source: str, code: bytes,
                 signature: Signature, toolchain: dict[str, str], flags: dict[str, Any],
                 compile_ms: float, warnings: str = "",
                 line_map: dict[str, Any] | None = None,
                 dependencies: dict[str, Any] | None = None) -> None:
        self.language = language
        self.runtime = runtime
        self.source = source
        self.code = code
        self.signature = signature
        self.toolchain = toolchain
        self.flags = flags
        self.compile_ms = compile_ms
        self.warnings = warnings
        self.line_map = {} if line_map is None else line_map
        #: The lock of the cell's declared dependencies (``dependencies.Lock.to_dict()``).
        self.dependencies = dependencies

    __hash__ = None  # type: ignore[assignment]  # mutable


class FunctionInfo(Record):
    """One deployed version of a function (the version's metadata as stored; treat as
    immutable). ``options`` are the deploy-time options (``cascade`` defaults,
    ``description``, tier options such as model and prompt); ``dependencies`` the lock of the
    packages it was built with (:class:`functions_nb.dependencies.Lock` as a dict) or None;
    ``cached`` is True when deploy found an identical version and compiled nothing."""

    __slots__ = ("name", "version", "language", "runtime", "signature", "content_hash",
                 "code_sha256", "code_size", "created_at", "timeout", "memory_mb", "toolchain",
                 "flags", "compile_ms", "source", "warnings", "line_map", "options",
                 "dependencies", "cached")

    def __init__(self, name: str, version: int, language: str, runtime: str,
                 signature: Signature, content_hash: str, code_sha256: str, code_size: int,
                 created_at: str, timeout: float, memory_mb: int, toolchain: dict[str, str],
                 flags: dict[str, Any], compile_ms: float, source: str, warnings: str = "",
                 line_map: dict[str, Any] | None = None, options: dict[str, Any] | None = None,
                 dependencies: dict[str, Any] | None = None, cached: bool = False) -> None:
        self.name = name
        self.version = version
        self.language = language
        self.runtime = runtime
        self.signature = signature
        self.content_hash = content_hash
        self.code_sha256 = code_sha256
        self.code_size = code_size
        self.created_at = created_at
        self.timeout = timeout
        self.memory_mb = memory_mb
        self.toolchain = toolchain
        self.flags = flags
        self.compile_ms = compile_ms
        self.source = source
        self.warnings = warnings
        self.line_map = {} if line_map is None else line_map
        self.options = {} if options is None else options
        self.dependencies = dependencies
        self.cached = cached

    def __reduce__(self) -> tuple[Any, ...]:
        return (FunctionInfo, self._values())

    @property
    def target(self) -> str:
        return f"{self.name}@{self.version}"

    def to_dict(self) -> dict[str, Any]:
        data = self.as_dict()
        data.pop("cached")
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any], cached: bool = False) -> FunctionInfo:
        data = dict(data)
        data["signature"] = Signature.from_dict(data["signature"])
        return cls(**data, cached=cached)


class Execution(Record):
    """The outcome of one invocation, with its metrics (what ``%invoke`` shows)."""

    __slots__ = ("id", "function", "version", "language", "status", "value", "error",
                 "started_at", "queue_ms", "duration_ms", "cold", "console", "memory_bytes")

    def __init__(self, id: str, function: str, version: int, language: str, status: str,
                 value: Any = None, error: BaseException | None = None,
                 started_at: float = 0.0, queue_ms: float = 0.0, duration_ms: float = 0.0,
                 cold: bool = False, console: list[tuple[str, str, float]] | None = None,
                 memory_bytes: int | None = None) -> None:
        self.id = id
        self.function = function
        self.version = version
        self.language = language
        self.status = status
        self.value = value
        self.error = error
        self.started_at = started_at
        self.queue_ms = queue_ms
        self.duration_ms = duration_ms
        self.cold = cold
        self.console = [] if console is None else console
        self.memory_bytes = memory_bytes

    __hash__ = None  # type: ignore[assignment]  # mutable

    def __reduce__(self) -> tuple[Any, ...]:
        return (Execution, self._values())

    def result(self) -> Any:
        """The value, or raise the error."""
        if self.error is not None:
            raise self.error
        return self.value

    def _repr_mimebundle_(self, include: Any = None, exclude: Any = None) -> dict[str, Any]:
        from .widgets.result import ResultView

        return ResultView(self)._repr_mimebundle_(include, exclude)


class ExecutionRecord(NamedTuple):
    """One row of the history's ``executions`` table, as the executor, the cascade engine and
    the human tier hand it to :meth:`History.record <functions_nb.history.History.record>`:
    one per invocation and per cascade tier attempt. ``started_at`` is unix seconds;
    ``input`` / ``output`` are Python values (the history encodes them as truncated JSON);
    ``console`` is a list of (level, message, ts) or None. The history adds host and pid."""

    id: str
    function: str
    version: int
    language: str | None
    tier: str
    attempt: int
    #: ok / error / timeout / rejected / aborted / skipped / pending
    status: str
    error_kind: str | None
    error_message: str | None
    started_at: float
    queue_ms: float
    duration_ms: float
    cold: bool
    input: Any
    output: Any
    console: list[tuple[str, str, float]] | None
    memory_bytes: int | None = None
    fuel: int | None = None
    cascade_id: str | None = None
