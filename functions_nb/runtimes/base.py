"""What a runtime sees of an execution: its limits, its console, and how it ended."""

from __future__ import annotations

import time
from typing import Any, Protocol

from ..config import CONSOLE_MAX_BYTES, CONSOLE_MAX_LINES

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
