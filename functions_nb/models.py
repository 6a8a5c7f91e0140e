"""Plain data passed between modules: signatures, artifacts, deployed versions, executions."""

from __future__ import annotations

import re
from dataclasses import asdict, dataclass, field
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


@dataclass(frozen=True)
class Param:
    """One parameter: its name, its host kind and the type as written in the source."""

    name: str
    kind: str
    type: str
    #: Range for narrow integer types, e.g. (0, 255) for u8.
    bounds: tuple[int, int] | None = None


@dataclass(frozen=True)
class Signature:
    """Parameters and result of a function, as seen from Python."""

    name: str
    params: tuple[Param, ...]
    result: str  # a kind, or "unit"
    result_type: str = "()"
    #: The function returns an error union / Result; errors become InvocationError.
    fallible: bool = False
    #: The function takes an allocator first (Zig); the host does not pass it.
    wants_allocator: bool = False

    def __str__(self) -> str:
        params = ", ".join(f"{p.name}: {p.type}" for p in self.params)
        return f"{self.name}({params}) -> {self.result_type}"

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Signature:
        params = tuple(
            Param(p["name"], p["kind"], p["type"], tuple(p["bounds"]) if p.get("bounds") else None)
            for p in data["params"])
        return cls(data["name"], params, data["result"], data.get("result_type", "()"),
                   data.get("fallible", False), data.get("wants_allocator", False))

    def check_arity(self, args: tuple) -> None:
        if len(args) != len(self.params):
            raise BadArguments(
                f"{self} takes {len(self.params)} argument{'s' * (len(self.params) != 1)}, "
                f"got {len(args)}")


@dataclass
class Artifact:
    """What a language's compiler produces for one cell."""

    language: str
    runtime: str  # runtime kind, e.g. "wasm"
    source: str
    code: bytes
    signature: Signature
    toolchain: dict[str, str]
    flags: dict[str, Any]
    compile_ms: float
    warnings: str = ""
    #: Maps lines of generated sources back to cell lines, where they differ.
    line_map: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class FunctionInfo:
    """One deployed version of a function (the version's metadata as stored)."""

    name: str
    version: int
    language: str
    runtime: str
    signature: Signature
    content_hash: str
    code_sha256: str
    code_size: int
    created_at: str
    timeout: float
    memory_mb: int
    toolchain: dict[str, str]
    flags: dict[str, Any]
    compile_ms: float
    source: str
    warnings: str = ""
    line_map: dict[str, Any] = field(default_factory=dict)
    #: Deploy-time options: ``cascade`` defaults, ``description``, tier options (model, prompt).
    options: dict[str, Any] = field(default_factory=dict)
    #: True when deploy found an identical version and compiled nothing.
    cached: bool = False

    @property
    def target(self) -> str:
        return f"{self.name}@{self.version}"

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data.pop("cached")
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any], cached: bool = False) -> FunctionInfo:
        data = dict(data)
        data["signature"] = Signature.from_dict(data["signature"])
        return cls(**data, cached=cached)


@dataclass
class Execution:
    """The outcome of one invocation, with its metrics (what ``%invoke`` shows)."""

    id: str
    function: str
    version: int
    language: str
    status: str
    value: Any = None
    error: BaseException | None = None
    started_at: float = 0.0
    queue_ms: float = 0.0
    duration_ms: float = 0.0
    cold: bool = False
    console: list[tuple[str, str, float]] = field(default_factory=list)
    memory_bytes: int | None = None

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
