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

#: Execution ids made at a time.
ID_BLOCK = 1024
_time = time.time
_perf = time.perf_counter
#: ``tuple.__new__(ExecutionRecord, fields)``: the record without the NamedTuple's own
#: ``__new__`` (a Python function taking every field by keyword).
_record_tuple = tuple.__new__


class LoadedFunction:
    """A function version ready to run (what the loader caches)."""

    __slots__ = ("info", "code", "breaker", "name", "version", "language", "timeout", "direct")

    def __init__(self, info: FunctionInfo, code: LoadedCode, breaker: CircuitBreaker) -> None:
        self.info = info
        self.code = code
        self.breaker = breaker
        self.name = info.name
        self.version = info.version
        self.language = info.language
        self.timeout = info.timeout
        sig = info.signature
        #: A call with positional arguments only runs the code tier with them as given: no
        #: defaults or variadic parameter to bind, no cascade, not prompt-only.
        self.direct = (info.runtime != "prompt" and not info.options.get("cascade")
                       and not any(p.has_default or p.variadic for p in sig.params))

    def __repr__(self) -> str:
        return f"LoadedFunction({self.info.target})"


class Executor:
    """Admission control and execution with per-call limits; records every execution."""

    def __init__(self, max_concurrency: int = MAX_CONCURRENCY, max_queue: int = MAX_QUEUE,
                 record: Callable[[ExecutionRecord], None] | None = None) -> None:
        self._max_concurrency = max_concurrency
        self.max_queue = max_queue
        self._record = record
        self._lock = threading.Lock()
        self._cond = threading.Condition(self._lock)
        #: One token per free slot: a call takes one with ``pop()`` and gives it back with
        #: ``append()`` (each atomic, so a call that finds a slot takes no lock).
        self._free: list[bool] = [True] * max_concurrency
        #: Calls queued for a slot (changed under the lock).
        self._waiting = 0
        self._active: dict[str, tuple[CallContext, LoadedFunction, float]] = {}
        self._prefix = f"{os.getpid():x}-{int(time.time() * 1000) & 0xFFFFFF:06x}-"
        #: Execution ids not used yet, the next one last: made a block at a time (text
        #: formatting right after a runtime call costs a µs; a list's pop does not).
        self._ids: list[str] = []
        self._blocks = itertools.count(1, ID_BLOCK)
        self._ids_lock = threading.Lock()
        self.rejected = 0

    @property
    def max_concurrency(self) -> int:
        """Calls that may run at once (fixed when the executor is made)."""
        return self._max_concurrency

    @property
    def _running(self) -> int:
        return self._max_concurrency - len(self._free)

    # admission -------------------------------------------------------------------
    def _admit(self, ctx: CallContext) -> float:
        """Wait for a slot; returns the time queued in ms. Queued calls go first: a call
        takes a free slot at once only while none waits."""
        free = self._free
        with self._lock:
            if not self._waiting and free:
                free.pop()
                return 0.0
            if self._waiting >= self.max_queue:
                self.rejected += 1
                raise QueueFull(f"executor queue is full ({self._waiting} waiting, "
                                f"{self._running} running; max_queue={self.max_queue})")
            self._waiting += 1
            start = time.perf_counter()
            try:
                while True:
                    try:
                        free.pop()
                        break
                    except IndexError:
                        pass
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
            return (time.perf_counter() - start) * 1000

    def _release(self) -> None:
        """Give the slot back (no lock unless a call waits for it: a waiter counted itself
        in ``_waiting`` before it found no slot, so it is notified or finds this one)."""
        self._free.append(True)
        if self._waiting:
            with self._lock:
                self._cond.notify()

    # execution ---------------------------------------------------------------------
    def new_id(self) -> str:
        """A fresh execution id (unique across processes): the prefix and a hex counter."""
        try:
            return self._ids.pop()
        except IndexError:
            return self._more_ids()

    def _more_ids(self) -> str:
        """The next block of ids: the first returned, the rest kept for :meth:`new_id`."""
        with self._ids_lock:
            if not self._ids:  # else another thread made a block meanwhile
                start, prefix = next(self._blocks), self._prefix
                self._ids = [f"{prefix}{i:x}" for i in range(start + ID_BLOCK - 1, start - 1, -1)]
            return self._ids.pop()

    def run(self, fn: LoadedFunction, args: tuple, timeout: float | None = None, *,
            detail: bool = False, tier: str = "code", attempt: int = 1,
            exec_id: str | None = None, cascade_id: str | None = None) -> Any:
        """Run ``fn(*args)``; returns the value (or an :class:`Execution` when ``detail``).
        ``exec_id`` (from :meth:`new_id`) lets a caller abort it before it starts; cascade
        attempts pass their tier, attempt number and cascade id for the record."""
        # the hot path: locals, no helper calls while a slot is free and the breaker closed
        if exec_id is None:
            try:
                exec_id = self._ids.pop()
            except IndexError:
                exec_id = self._more_ids()
        ctx = CallContext(exec_id, fn.timeout if timeout is None else timeout)
        started = _time()
        breaker = fn.breaker
        active = self._active
        free = self._free
        try:
            if breaker.state is not CLOSED:
                breaker.before_call()
            active[exec_id] = (ctx, fn, started)
            if self._waiting or not free:  # queue behind the calls waiting, or wait
                queue_ms = self._admit(ctx)
            else:
                try:
                    free.pop()
                    queue_ms = 0.0
                except IndexError:  # another thread took the last slot meanwhile
                    queue_ms = self._admit(ctx)
        except (CircuitOpen, QueueFull, Aborted, FunctionTimeout) as err:
            active.pop(exec_id, None)
            # everything but an open breaker happened while waiting for a slot
            queue_ms = 0.0 if isinstance(err, CircuitOpen) else (_time() - started) * 1000
            return self._finish(fn, ctx, args, started, queue_ms, 0.0, err, detail,
                                tier, attempt, cascade_id)
        t0 = _perf()
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
            duration_ms = (_perf() - t0) * 1000
            free.append(True)  # the slot back: _release inline
            if self._waiting:
                with self._lock:
                    self._cond.notify()
            del active[exec_id]
        if error is None:
            if breaker.failures or breaker.state is not CLOSED:
                breaker.on_success()  # closed with no failures: nothing to reset
            if ctx._partial or ctx.dropped:
                ctx.finish_console()
            record = self._record
            if record is not None:  # the tuple made directly: ExecutionRecord() is a call more
                record(_record_tuple(ExecutionRecord, (
                    exec_id, fn.name, fn.version, fn.language, tier, attempt, "ok", None, None,
                    started, queue_ms, duration_ms, ctx.cold, args, value, ctx.console or None,
                    ctx.memory_bytes, None, cascade_id)))
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
