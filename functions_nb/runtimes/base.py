"""What a runtime sees of an execution: its limits, its console, and how it ended."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any, Protocol

from ..config import CONSOLE_MAX_BYTES, CONSOLE_MAX_LINES
from ..errors import BadArguments

#: Console levels, in the order of their numeric codes (negative code = no newline yet).
LEVELS = ("debug", "log", "info", "warn", "error")


class CallContext:
    """One execution as the runtime sees it. Created by the executor, filled by the runtime."""

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
        self._partial: dict[int, str] = {}
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
        if code < 0:
            text = self._partial.pop(level, "") + text
            if "\n" not in text:
                self._partial[level] = text
                return
            text, _, rest = text.rpartition("\n")
            if rest:
                self._partial[level] = rest
        elif level in self._partial:
            text = self._partial.pop(level) + text
        for line in text.split("\n") if "\n" in text else (text,):
            self._append(LEVELS[level], line)

    def _append(self, level: str, line: str) -> None:
        if len(self.console) >= CONSOLE_MAX_LINES or self._bytes + len(line) > CONSOLE_MAX_BYTES:
            self.dropped += 1
            return
        self._bytes += len(line)
        self.console.append((level, line, time.time()))

    def finish_console(self) -> None:
        """Flush partial lines and note truncation."""
        for level, text in sorted(self._partial.items()):
            self._append(LEVELS[level], text)
        self._partial.clear()
        if self.dropped:
            self.console.append(("warn", f"[console truncated: {self.dropped} more lines dropped]",
                                 time.time()))
            self.dropped = 0


def int_argument(value: Any, lo: int, hi: int, sig: Any, pname: str, ptype: str) -> int:
    """An integer argument in ``lo..hi``: ``__index__`` types (numpy integers) are accepted,
    bool and everything else refused with :class:`BadArguments` naming the signature."""
    if type(value) is not int:
        if isinstance(value, bool) or not hasattr(value, "__index__"):
            shown = f"{type(value).__name__} {value!r}"[:300]
            raise BadArguments(f"{sig}: argument {pname!r} expects {ptype}, got {shown}")
        value = value.__index__()
    if not lo <= value <= hi:
        raise BadArguments(f"{sig}: argument {pname!r} = {value} is out of range for {ptype} "
                           f"({lo}..{hi})")
    return value


#: Array kinds and their numpy dtypes (little-endian, as wasm memory and the hosts use).
ARRAY_DTYPES = {"f64[]": "<f8", "f32[]": "<f4", "i32[]": "<i4", "i64[]": "<i8"}


def as_array(value: Any, dtype: Any, bad: Callable[[Any, str], Exception]) -> Any:
    """A 1-D contiguous numpy array of ``dtype`` from a numpy array (converted only when no
    value is lost) or a list of numbers; ``bad(value, why)`` builds the error otherwise.
    No copy when the array already has that dtype and is contiguous."""
    import numpy as np

    if isinstance(value, np.ndarray):
        arr = value
        if arr.dtype != dtype:
            if arr.dtype.kind not in "iuf" or not np.can_cast(arr.dtype, dtype, "safe"):
                raise bad(value, f" (a {arr.dtype} array cannot be converted to {dtype.name} "
                                 "without losing values; convert it with .astype())")
            arr = arr.astype(dtype)
    elif isinstance(value, (list, tuple, range)):
        try:
            arr = np.asarray(value)
        except ValueError as exc:
            raise bad(value, f" ({exc})") from None
        if arr.size and (arr.dtype.kind not in "iuf" or
                         not np.can_cast(arr.dtype, dtype, "same_kind")):
            raise bad(value, f" (expected numbers that fit {dtype.name})")
        arr = arr.astype(dtype)
    else:
        raise bad(value, " (pass a 1-D numpy array or a list of numbers)")
    if arr.ndim != 1:
        raise bad(value, f" (expected a 1-D array, got {arr.ndim} dimensions)")
    return np.ascontiguousarray(arr)


def json_default(value: Any) -> Any:
    """``json.dumps`` fallback for arguments: numpy arrays and scalars, sets."""
    if hasattr(value, "tolist"):
        return value.tolist()
    if hasattr(value, "item"):
        return value.item()
    if isinstance(value, (set, frozenset)):
        return list(value)
    raise TypeError(f"{type(value).__name__} is not JSON-serializable")


class ModuleCache(Protocol):
    """Where a runtime may keep precompiled code (shared between processes)."""

    def get(self, key: str) -> bytes | None: ...

    def exists(self, key: str) -> bool: ...

    def put(self, key: str, data: bytes) -> None: ...


class LoadedCode(Protocol):
    """A function loaded into a runtime, ready to call."""

    def call(self, args: tuple, ctx: CallContext) -> object: ...

    def close(self) -> None: ...
