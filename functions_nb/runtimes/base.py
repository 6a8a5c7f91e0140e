"""What every runtime shares: the call context, the :class:`Runtime` protocol, isolation.

A runtime kind (``wasm``, ``v8``, ``pyodide``, ``mono``, ``prompt``) is one module in
``runtimes/`` with a process-wide ``runtime()`` implementing :class:`Runtime`: ``load()``
gives a :class:`LoadedCode`, ``call()`` fills the :class:`CallContext` fields listed there,
``isolation()`` says for ``func doctor`` what keeps functions from the host and from each
other, and ``close()`` releases what it holds.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from types import MappingProxyType
from typing import TYPE_CHECKING, Any, NamedTuple, Protocol, runtime_checkable

from ..config import CONSOLE_MAX_BYTES, CONSOLE_MAX_LINES
from ..values import ARRAY_DTYPES, json_default

if TYPE_CHECKING:
    from ..models import Signature

#: Console levels, in the order of their numeric codes (negative code = no newline yet).
LEVELS = ("debug", "log", "info", "warn", "error")


class CallContext:
    """One execution as the runtime sees it. Created by the executor, filled by the runtime.

    Set by the executor: ``id``, ``timeout``, ``deadline`` (monotonic), ``aborted`` (set from
    another thread; a runtime polls it and stops the call as :class:`~functions_nb.errors.Aborted`).

    Filled by every runtime during :meth:`LoadedCode.call`:

    - ``cold``: True when this call created the function's instance or namespace (or loaded it);
    - ``console``: through :meth:`log` only (levels, partial lines and caps are handled here);
    - ``timed_out``: True when the call was stopped at ``deadline`` (the error is then
      :class:`~functions_nb.errors.FunctionTimeout`);
    - ``memory_bytes``: memory the function's instance holds after the call, where known.

    Scratch of the wasm runtime's host imports (what the guest reported before it trapped or
    returned; other runtimes leave them None): ``fail_msg``, ``panic_msg``, ``oom_size``,
    ``bad_arg_msg``.
    """

    __slots__ = ("id", "deadline", "timeout", "aborted", "timed_out", "console", "_bytes",
                 "_partial", "fail_msg", "panic_msg", "oom_size", "bad_arg_msg", "cold",
                 "memory_bytes", "dropped")

    def __init__(self, exec_id: str, timeout: float) -> None:
        self.id = exec_id
        self.timeout = timeout
        self.deadline = time.monotonic() + timeout
        self.aborted = False
        self.timed_out = False
        self.console: list[tuple[str, str, float]] = []
        self._bytes = 0
        self._partial: dict[int, str] | None = None  # made by the first partial line
        self.fail_msg: str | None = None
        self.panic_msg: str | None = None
        self.oom_size: int | None = None
        self.bad_arg_msg: str | None = None
        self.cold = False
        self.memory_bytes: int | None = None
        self.dropped = 0

    def log(self, code: int, text: str) -> None:
        """Add console output. ``code`` indexes :data:`LEVELS`; negative: no newline yet."""
        level = abs(code) if -len(LEVELS) < code < len(LEVELS) else 1
        partial = self._partial
        if code < 0:
            if partial is None:
                partial = self._partial = {}
            text = partial.pop(level, "") + text
            if "\n" not in text:
                partial[level] = text
                return
            text, _, rest = text.rpartition("\n")
            if rest:
                partial[level] = rest
        elif partial and level in partial:
            text = partial.pop(level) + text
        for line in text.split("\n") if "\n" in text else (text,):
            self._append(LEVELS[level], line)

    def _append(self, level: str, line: str) -> None:
        if len(self.console) >= CONSOLE_MAX_LINES or self._bytes + len(line) > CONSOLE_MAX_BYTES:
            self.dropped += 1
            return
        self._bytes += len(line)
        self.console.append((level, line, time.time()))

    def take(self, lock: Any, name: str, waiting_for: str) -> None:
        """Take ``lock`` (a ``threading.Lock``) for this call, polling its abort flag and
        giving up at its deadline: :class:`~functions_nb.errors.Aborted`, or
        :class:`~functions_nb.errors.FunctionTimeout` saying it was ``waiting_for`` it."""
        if lock.acquire(blocking=False):
            return
        from ..errors import Aborted, FunctionTimeout

        while True:
            if self.aborted:
                raise Aborted(f"{name}: execution {self.id} aborted")
            left = self.deadline - time.monotonic()
            if left <= 0:
                self.timed_out = True
                raise FunctionTimeout(f"{name}: stopped at its {self.timeout:g} s time limit "
                                      f"(waiting for {waiting_for})")
            if lock.acquire(timeout=min(left, 0.01)):
                return

    def finish_console(self) -> None:
        """Flush partial lines and note truncation."""
        if self._partial:
            for level, text in sorted(self._partial.items()):
                self._append(LEVELS[level], text)
            self._partial.clear()
        if self.dropped:
            self.console.append(("warn", f"[console truncated: {self.dropped} more lines dropped]",
                                 time.time()))
            self.dropped = 0


class ModuleCache(Protocol):
    """Where a runtime may keep precompiled code (shared between processes)."""

    def get(self, key: str) -> bytes | None: ...

    def exists(self, key: str) -> bool: ...

    def put(self, key: str, data: bytes) -> None: ...


class LoadedCode(Protocol):
    """A function loaded into a runtime, ready to call."""

    def call(self, args: tuple, ctx: CallContext) -> object:
        """Run the function (arguments checked with :mod:`functions_nb.values`), filling
        ``ctx`` as :class:`CallContext` says; raise a :class:`~functions_nb.errors.FunctionsError`."""
        ...

    def close(self) -> None:
        """Forget the function (its instances / namespace); later calls are not allowed."""
        ...


# -- what a WASM language adds to the wasm runtime (the language implements it) ----------

class Guest(Protocol):
    """A running WASM instance as a language's host imports see it."""

    def read(self, ptr: int, length: int) -> bytes:
        """``length`` bytes of the guest's memory at ``ptr``."""
        ...

    def log(self, level: int, text: str) -> None:
        """Console output of the current call (``level`` as ``CallContext.log``)."""
        ...

    def panic(self, message: str) -> None:
        """What the guest reported before it traps: the call fails with ``message``
        (``cell.x:LINE:COL`` in it becomes ``cell line LINE``)."""
        ...


class HostImport(NamedTuple):
    """A host function a language's WASM modules import: wasm value types of its parameters
    and results (``"i32"``, ``"i64"``, ``"f32"``, ``"f64"``) and the implementation, called
    with the :class:`Guest` first."""

    params: tuple[str, ...]
    results: tuple[str, ...]
    impl: Callable[..., Any]


#: Console lines of a call: (level, text, unix time).
Console = list[tuple[str, str, float]]


class WasmGlue(NamedTuple):
    """What a WASM language adds to the wasm runtime for its modules."""

    #: Import module -> name -> host function (besides the runtime's own ``fnb`` module).
    imports: Mapping[str, Mapping[str, HostImport]] = MappingProxyType({})
    #: After a trap: the failure as the language's runtime printed it (e.g. a Go panic on
    #: stderr), or None. Messages mentioning "out of memory" become LimitExceeded.
    explain_trap: Callable[[Console], str | None] | None = None


class Isolation(NamedTuple):
    """How a runtime keeps functions from the host and from each other (``func doctor``)."""

    runtime: str
    #: Layers that hold on this machine, each a short phrase.
    layers: tuple[str, ...]
    #: Layers the runtime uses where they work but that do not hold here, each with why.
    missing: tuple[str, ...] = ()
    #: Limits enforced on every call.
    limits: tuple[str, ...] = ()

    def summary(self) -> str:
        """One line: what holds, the per-call limits, and what is missing."""
        text = "; ".join(self.layers)
        if self.limits:
            text += f"; per call: {', '.join(self.limits)}"
        if self.missing:
            text += f"; MISSING: {'; '.join(self.missing)}"
        return text

    def to_dict(self) -> dict[str, Any]:
        return {"runtime": self.runtime, "layers": list(self.layers),
                "missing": list(self.missing), "limits": list(self.limits),
                "summary": self.summary()}


@runtime_checkable
class Runtime(Protocol):
    """A runtime kind's process-wide object (``runtimes.<kind>.runtime()``)."""

    kind: str

    def load(self, code: bytes, signature: Signature, *, memory_mb: int, name: str,
             cache: ModuleCache | None = None, language: str = "") -> LoadedCode:
        """Load compiled ``code`` whose entry point is ``name``, limited to ``memory_mb`` per
        instance; ``cache`` may keep precompiled code; ``language`` (the artifact's) selects
        what that language adds to the runtime (e.g. a WASM language's host imports)."""
        ...

    def isolation(self) -> Isolation:
        """What isolates functions here (probes this machine; starts no function)."""
        ...

    def close(self) -> None:
        """Stop what the runtime runs (host processes, threads it owns); the next ``load``
        starts again."""
        ...


#: ``ARRAY_DTYPES`` and ``json_default`` live in :mod:`functions_nb.values` (re-exported here).
__all__ = ["ARRAY_DTYPES", "LEVELS", "CallContext", "Console", "Guest", "HostImport", "Isolation",
           "LoadedCode", "ModuleCache", "Runtime", "WasmGlue", "json_default"]
