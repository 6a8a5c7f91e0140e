"""One watchdog for every host call: deadline or abort -> the runtime's cancel -> kill after a
grace period. A waiting caller runs :meth:`Watch.check` between reads (no extra thread)."""

from __future__ import annotations

import time
from collections.abc import Callable

from ..base import CallContext
from .protocol import CancelReason


class Watch:
    """The limits of one outstanding request.

    ``ctx`` gives the deadline and abort flag (None: a set-up request, bounded by
    ``setup_timeout`` only). At the deadline or on abort ``cancel(reason)`` is called once;
    if the request is still outstanding ``grace`` seconds later, ``kill(why)`` is called.
    """

    __slots__ = ("ctx", "cancel", "kill", "grace", "limit", "cancelled_at", "what")

    def __init__(self, ctx: CallContext | None, cancel: Callable[[CancelReason], None],
                 kill: Callable[[str], None], grace: float, setup_timeout: float,
                 what: str = "a call") -> None:
        self.ctx = ctx
        self.cancel = cancel
        self.kill = kill
        self.grace = grace
        self.limit = time.monotonic() + setup_timeout if ctx is None else None
        self.cancelled_at = 0.0
        self.what = what

    def check(self) -> float:
        """Act on the limits now; returns the seconds until the next check is due."""
        now = time.monotonic()
        ctx = self.ctx
        if ctx is None:
            assert self.limit is not None
            if now >= self.limit:
                self.kill(f"{self.what} did not answer in time")
                return 1.0
            return self.limit - now
        if not self.cancelled_at:
            if ctx.aborted or now >= ctx.deadline:
                if not ctx.aborted:
                    ctx.timed_out = True
                self.cancelled_at = now
                self.cancel(CancelReason.ABORT if ctx.aborted else CancelReason.TIMEOUT)
                return self.grace
            return ctx.deadline - now
        if now - self.cancelled_at >= self.grace:
            stopped = "was aborted" if ctx.aborted else f"reached its {ctx.timeout:g} s time limit"
            self.kill(f"{self.what} {stopped} and did not stop within {self.grace:g} s")
            return 1.0
        return self.cancelled_at + self.grace - now
