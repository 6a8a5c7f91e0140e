"""Runs loaded functions: admission (concurrency + bounded queue), limits, abort, metrics, records.

The hot path stays in the caller's thread: a breaker check, a counter under a lock, the
runtime call, one record appended to the history buffer.
"""

from __future__ import annotations

import itertools
import os
import threading
import time
from collections.abc import Callable
from typing import Any

from .breaker import CLOSED, CircuitBreaker
from .config import MAX_CONCURRENCY, MAX_QUEUE
from .errors import (
    Aborted,
    CircuitOpen,
    FunctionsError,
    FunctionTimeout,
    InvocationError,
    QueueFull,
    error_status,
)
from .models import Execution, ExecutionRecord, FunctionInfo
from .runtimes.base import CallContext, LoadedCode


class LoadedFunction:
    """A function version ready to run (what the loader caches)."""

    __slots__ = ("info", "code", "breaker", "name", "version", "language", "timeout")

    def __init__(self, info: FunctionInfo, code: LoadedCode, breaker: CircuitBreaker) -> None:
        self.info = info
        self.code = code
        self.breaker = breaker
        self.name = info.name
        self.version = info.version
        self.language = info.language
        self.timeout = info.timeout

    def __repr__(self) -> str:
        return f"LoadedFunction({self.info.target})"


class Executor:
    """Admission control and execution with per-call limits; records every execution."""

    def __init__(self, max_concurrency: int = MAX_CONCURRENCY, max_queue: int = MAX_QUEUE,
                 record: Callable[[ExecutionRecord], None] | None = None) -> None:
        self.max_concurrency = max_concurrency
        self.max_queue = max_queue
        self._record = record
        self._lock = threading.Lock()
        self._cond = threading.Condition(self._lock)
        self._running = 0
        self._waiting = 0
        self._active: dict[str, tuple[CallContext, LoadedFunction, float]] = {}
        self._counter = itertools.count(1)
        self._prefix = f"{os.getpid():x}-{int(time.time() * 1000) & 0xFFFFFF:06x}-"
        self.rejected = 0

    # admission -------------------------------------------------------------------
    def _admit(self, ctx: CallContext) -> float:
        """Wait for a slot; returns the time queued in ms."""
        with self._lock:
            if self._running < self.max_concurrency and not self._waiting:
                self._running += 1
                return 0.0
            if self._waiting >= self.max_queue:
                self.rejected += 1
                raise QueueFull(f"executor queue is full ({self._waiting} waiting, "
                                f"{self._running} running; max_queue={self.max_queue})")
            self._waiting += 1
            start = time.perf_counter()
            try:
                while self._running >= self.max_concurrency:
                    if ctx.aborted:
                        raise Aborted(f"execution {ctx.id} aborted while queued")
                    left = ctx.deadline - time.monotonic()
                    if left <= 0:
                        ctx.timed_out = True
                        raise FunctionTimeout(f"waited {ctx.timeout:g} s in the queue "
                                              "without getting a slot")
                    self._cond.wait(min(left, 0.1))
            finally:
                self._waiting -= 1
            self._running += 1
            return (time.perf_counter() - start) * 1000

    def _release(self) -> None:
        with self._lock:
            self._running -= 1
            if self._waiting:
                self._cond.notify()

    # execution ---------------------------------------------------------------------
    def new_id(self) -> str:
        """A fresh execution id (unique across processes)."""
        return f"{self._prefix}{next(self._counter):x}"

    def run(self, fn: LoadedFunction, args: tuple, timeout: float | None = None, *,
            detail: bool = False, tier: str = "code", attempt: int = 1,
            exec_id: str | None = None, cascade_id: str | None = None) -> Any:
        """Run ``fn(*args)``; returns the value (or an :class:`Execution` when ``detail``).
        ``exec_id`` (from :meth:`new_id`) lets a caller abort it before it starts; cascade
        attempts pass their tier, attempt number and cascade id for the record."""
        if exec_id is None:
            exec_id = f"{self._prefix}{next(self._counter):x}"
        ctx = CallContext(exec_id, fn.timeout if timeout is None else timeout)
        started = time.time()
        breaker = fn.breaker
        try:
            if breaker.state is not CLOSED:
                breaker.before_call()
            self._active[exec_id] = (ctx, fn, started)
            queue_ms = self._admit(ctx)
        except (CircuitOpen, QueueFull, Aborted, FunctionTimeout) as err:
            self._active.pop(exec_id, None)
            # everything but an open breaker happened while waiting for a slot
            queue_ms = 0.0 if isinstance(err, CircuitOpen) else (time.time() - started) * 1000
            return self._finish(fn, ctx, args, started, queue_ms, 0.0, err, detail,
                                tier, attempt, cascade_id)
        t0 = time.perf_counter()
        try:
            value = fn.code.call(args, ctx)
        except FunctionsError as err:
            error: BaseException | None = err
            value = None
        except Exception as err:  # noqa: BLE001 - a runtime bug still becomes our error
            error = InvocationError(f"{fn.name}: {type(err).__name__}: {err}")
            error.__cause__ = err
            value = None
        else:
            error = None
        finally:
            duration_ms = (time.perf_counter() - t0) * 1000
            self._release()
            del self._active[exec_id]
        if error is None:
            breaker.on_success()
            if ctx._partial or ctx.dropped:
                ctx.finish_console()
            if self._record is not None:  # positional: keywords cost ~1 µs on this hot path
                self._record(ExecutionRecord(
                    exec_id, fn.name, fn.version, fn.language, tier, attempt, "ok", None, None,
                    started, queue_ms, duration_ms, ctx.cold, args, value, ctx.console or None,
                    ctx.memory_bytes, None, cascade_id))
            if detail:
                return Execution(exec_id, fn.name, fn.version, fn.language, "ok", value, None,
                                 started, queue_ms, duration_ms, ctx.cold, ctx.console,
                                 ctx.memory_bytes)
            return value
        if error.caller_error:  # type: ignore[union-attr]
            breaker.on_ignored()
        else:
            breaker.on_failure()
        return self._finish(fn, ctx, args, started, queue_ms, duration_ms, error, detail,
                            tier, attempt, cascade_id)

    def _finish(self, fn: LoadedFunction, ctx: CallContext, args: tuple, started: float,
                queue_ms: float, duration_ms: float, error: BaseException,
                detail: bool, tier: str, attempt: int, cascade_id: str | None = None) -> Any:
        ctx.finish_console()
        status = error_status(error)
        kind = getattr(error, "kind", type(error).__name__)
        if self._record is not None:
            self._record(ExecutionRecord(
                id=ctx.id, function=fn.name, version=fn.version, language=fn.language,
                tier=tier, attempt=attempt, status=status, error_kind=kind,
                error_message=str(error), started_at=started, queue_ms=queue_ms,
                duration_ms=duration_ms, cold=ctx.cold, input=args, output=None,
                console=ctx.console or None, memory_bytes=ctx.memory_bytes,
                cascade_id=cascade_id))
        if detail:
            return Execution(ctx.id, fn.name, fn.version, fn.language, status, None, error,
                             started, queue_ms, duration_ms, ctx.cold, ctx.console,
                             ctx.memory_bytes)
        raise error

    # control ---------------------------------------------------------------------------
    def abort(self, exec_id: str) -> bool:
        """Abort a queued or running execution; True if it was found."""
        entry = self._active.get(exec_id)
        if entry is None:
            return False
        entry[0].aborted = True
        with self._lock:
            self._cond.notify_all()
        return True

    def running(self) -> list[dict[str, Any]]:
        """Executions queued or running now."""
        now = time.time()
        return [{"id": ctx.id, "function": fn.name, "version": fn.version,
                 "started_at": started, "elapsed_s": round(now - started, 3),
                 "aborted": ctx.aborted}
                for ctx, fn, started in list(self._active.values())]

    def snapshot(self) -> dict[str, Any]:
        return {"running": self._running, "waiting": self._waiting,
                "max_concurrency": self.max_concurrency, "max_queue": self.max_queue,
                "rejected": self.rejected}
