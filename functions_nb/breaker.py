"""Circuit breaker per function version (closed -> open -> half-open -> closed)."""

from __future__ import annotations

import collections
import threading
import time
from collections.abc import Callable

from .config import BreakerConfig
from .errors import CircuitOpen

CLOSED, OPEN, HALF_OPEN = "closed", "open", "half_open"
#: State changes kept per breaker for the timeline.
TRANSITIONS_KEPT = 50


class CircuitBreaker:
    """Opens after ``failure_threshold`` consecutive failures; rejects fast while open;
    after ``reset_timeout`` lets ``half_open_max_calls`` probe calls through, and closes
    after ``success_threshold`` successes (a failed probe opens it again)."""

    __slots__ = ("name", "config", "state", "failures", "successes", "probes", "opened_at",
                 "_lock", "_clock", "trips", "transitions")

    def __init__(self, name: str, config: BreakerConfig | None = None,
                 clock: Callable[[], float] = time.monotonic) -> None:
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

    def _move(self, state: str, why: str) -> None:
        if state != self.state:
            self.transitions.append((time.time(), self.state, state, why))
            self.state = state

    def before_call(self) -> None:
        """Raise :class:`CircuitOpen` unless a call may go through (call only when not closed)."""
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

    def on_failure(self) -> None:
        with self._lock:
            if self.state == HALF_OPEN:
                self.probes = max(0, self.probes - 1)
                self._open("a probe call failed")
                return
            self.failures += 1
            if self.state == CLOSED and self.failures >= self.config.failure_threshold:
                self._open(f"{self.failures} consecutive failures")

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
