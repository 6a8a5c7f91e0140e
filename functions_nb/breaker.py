"""Circuit breaker per function version (closed -> open -> half-open -> closed), and the
log that shares each process's breaker transitions through the store (:class:`TransitionLog`):
breakers live in the process that calls (a kernel, the Jupyter server, a CLI, a Dask worker),
so a breaker a kernel opened is visible to the sidebar only through the store."""

from __future__ import annotations

import collections
import json
import os
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from .config import LOG_RETENTION_DAYS, BreakerConfig
from .errors import CircuitOpen
from .storage.fsutil import read_or_none, write_atomic

CLOSED, OPEN, HALF_OPEN = "closed", "open", "half_open"
#: State changes kept per breaker for the timeline.
TRANSITIONS_KEPT = 50

#: One state change: (unix time, from, to, why).
Transition = tuple[float, str, str, str]
#: Told of each state change, after the breaker's lock is released.
OnTransition = Callable[["CircuitBreaker", Transition], None]


class CircuitBreaker:
    """Opens after ``failure_threshold`` consecutive failures; rejects fast while open;
    after ``reset_timeout`` lets ``half_open_max_calls`` probe calls through, and closes
    after ``success_threshold`` successes (a failed probe opens it again)."""

    __slots__ = ("name", "config", "state", "failures", "successes", "probes", "opened_at",
                 "_lock", "_clock", "trips", "transitions", "on_transition", "_unsent")

    def __init__(self, name: str, config: BreakerConfig | None = None,
                 clock: Callable[[], float] = time.monotonic,
                 on_transition: OnTransition | None = None) -> None:
        self.name = name
        self.config = config or BreakerConfig()
        self.state = CLOSED
        self.failures = 0
        self.successes = 0
        self.probes = 0
        self.opened_at = 0.0
        self.trips = 0
        #: The last state changes: (unix time, from, to, why).
        self.transitions: collections.deque[tuple[float, str, str, str]] = collections.deque(
            maxlen=TRANSITIONS_KEPT)
        self._lock = threading.Lock()
        self._clock = clock
        #: Called with each state change (e.g. :meth:`TransitionLog.record`), outside the lock.
        self.on_transition = on_transition
        self._unsent: list[Transition] = []

    def _move(self, state: str, why: str) -> None:
        if state != self.state:
            change = (time.time(), self.state, state, why)
            self.transitions.append(change)
            self.state = state
            if self.on_transition is not None:
                self._unsent.append(change)

    def _emit(self) -> None:
        """Tell ``on_transition`` of the changes made under the lock (a failing observer never
        fails a call)."""
        while self._unsent:
            try:
                change = self._unsent.pop(0)
            except IndexError:  # another thread sent it
                return
            try:
                self.on_transition(self, change)  # type: ignore[misc]
            except Exception:  # noqa: BLE001 - see the docstring
                pass

    def before_call(self) -> None:
        """Raise :class:`CircuitOpen` unless a call may go through (call only when not closed)."""
        try:
            self._before_call()
        finally:
            self._emit()

    def _before_call(self) -> None:
        with self._lock:
            if self.state == OPEN:
                waited = self._clock() - self.opened_at
                if waited < self.config.reset_timeout:
                    raise CircuitOpen(
                        f"circuit open for {self.name}: {self.failures} consecutive failures; "
                        f"retry in {self.config.reset_timeout - waited:.1f} s",
                        retry_after=self.config.reset_timeout - waited)
                self._move(HALF_OPEN, f"{self.config.reset_timeout:g} s passed")
                self.successes = 0
                self.probes = 0
            if self.state == HALF_OPEN:
                if self.probes >= self.config.half_open_max_calls:
                    raise CircuitOpen(f"circuit half-open for {self.name}: a probe call is "
                                      "already running", retry_after=0.0)
                self.probes += 1

    def on_success(self) -> None:
        if self.state == CLOSED:
            self.failures = 0
            return
        with self._lock:
            if self.state == HALF_OPEN:
                self.probes = max(0, self.probes - 1)
                self.successes += 1
                if self.successes >= self.config.success_threshold:
                    self._move(CLOSED, f"{self.successes} successful probes")
                    self.failures = 0
        self._emit()

    def on_failure(self) -> None:
        with self._lock:
            if self.state == HALF_OPEN:
                self.probes = max(0, self.probes - 1)
                self._open("a probe call failed")
            else:
                self.failures += 1
                if self.state == CLOSED and self.failures >= self.config.failure_threshold:
                    self._open(f"{self.failures} consecutive failures")
        self._emit()

    def on_ignored(self) -> None:
        """A call that ended with a caller error: neither success nor failure."""
        if self.state == HALF_OPEN:
            with self._lock:
                self.probes = max(0, self.probes - 1)

    def _open(self, why: str) -> None:
        self._move(OPEN, why)
        self.opened_at = self._clock()
        self.trips += 1

    def reset(self, why: str = "reset by hand") -> None:
        """Close the breaker now and forget its failures."""
        with self._lock:
            self._move(CLOSED, why)
            self.failures = self.successes = self.probes = 0
        self._emit()

    def retry_in(self) -> float:
        """Seconds until an open breaker lets a probe through (0 when not open)."""
        if self.state != OPEN:
            return 0.0
        return max(0.0, self.config.reset_timeout - (self._clock() - self.opened_at))

    def snapshot(self) -> dict[str, object]:
        return {"name": self.name, "state": self.state, "failures": self.failures,
                "successes": self.successes, "trips": self.trips,
                "retry_in": round(self.retry_in(), 3),
                "transitions": [{"at": at, "from": a, "to": b, "why": why}
                                for at, a, b, why in self.transitions]}


def process_role() -> str:
    """What this process is, for a person reading whose breaker it is: ``kernel``,
    ``server`` (Jupyter), ``dask worker``, or the program's name (``func``, ``pytest``)."""
    ipython = sys.modules.get("IPython")
    if ipython is not None and getattr(ipython.get_ipython(), "kernel", None) is not None:
        return "kernel"
    if "jupyter_server.serverapp" in sys.modules:
        return "server"
    worker = sys.modules.get("distributed.worker")
    if worker is not None:
        try:
            worker.get_worker()
            return "dask worker"
        except ValueError:
            pass
    path = Path(sys.argv[0] if sys.argv and sys.argv[0] else "python")
    return path.parent.name if path.stem == "__main__" else path.stem


class TransitionLog:
    """This process's breaker transitions, shared through the store: one small JSON file per
    log (``breakers/<host>-<pid>-<id>.json``) holding the newest transition of each of its
    breakers with who made it (host, pid, process role), rewritten atomically at each
    transition. :meth:`newest` reads every process's file: the REST summary shows the newest
    transition per function, so the sidebar sees a breaker a kernel opened. Files whose newest
    transition is older than the history's retention are deleted by the reader."""

    def __init__(self, store: Any) -> None:
        self.store = store
        self.writer = f"{os.uname().nodename}-{os.getpid()}-{os.urandom(3).hex()}"
        self.latest: dict[str, dict[str, Any]] = {}
        self._lock = threading.Lock()

    @property
    def path(self) -> str:
        return self.store.path("breakers", f"{self.writer}.json")

    def record(self, breaker: CircuitBreaker, change: Transition) -> None:
        """Write ``breaker``'s state change (an :data:`OnTransition`)."""
        at, before, after, why = change
        with self._lock:
            known = self.latest.get(breaker.name)
            if known is not None and known["at"] > at:
                return  # an older change, emitted late by another thread
            self.latest[breaker.name] = {"at": at, "from": before, "to": after, "why": why}
            body = {"writer": self.writer, "host": os.uname().nodename, "pid": os.getpid(),
                    "process": process_role(), "breakers": self.latest}
            write_atomic(self.store.fs, self.path, json.dumps(body).encode())

    @staticmethod
    def newest(store: Any, retention_days: float = LOG_RETENTION_DAYS) -> dict[str, dict[str, Any]]:
        """Function name -> its newest recorded transition across processes and versions:
        ``breaker`` (name@version), ``version``, ``state`` (after), ``from``, ``why``, ``at``
        (unix seconds), ``host``, ``pid``, ``process`` and ``writer`` (the log's id)."""
        fs = store.fs
        try:
            files = fs.glob(store.path("breakers", "*.json"))
        except FileNotFoundError:
            return {}
        cutoff = time.time() - retention_days * 86400
        newest: dict[str, dict[str, Any]] = {}
        for path in files:
            try:
                raw = read_or_none(fs, path)
                body = json.loads(raw) if raw else None
                changes = body["breakers"].items() if body else ()
            except (ValueError, KeyError, AttributeError, TypeError, OSError):
                continue  # half-written by an older version, or unreadable: skip it
            if body and changes and max(c["at"] for _, c in changes) < cutoff:
                try:
                    fs.rm(path)
                except OSError:
                    pass
                continue
            for name, change in changes:
                function, _, version = name.rpartition("@")
                known = newest.get(function)
                if known is None or change["at"] > known["at"]:
                    newest[function] = {
                        "breaker": name, "version": int(version), "state": change["to"],
                        "from": change["from"], "why": change["why"], "at": change["at"],
                        "host": body["host"], "pid": body["pid"], "process": body["process"],
                        "writer": body["writer"]}
        return newest

