"""The cascade engine: escalate through tiers (code -> generative -> agentic -> human) until
one produces the output, with every option enforced.

Options (per call, over the function's deploy-time defaults in ``info.options["cascade"]``):
``start_tier``, ``skip_tiers``, ``tier_retries`` ({tier: n} extra attempts, exponential
backoff from ``backoff`` seconds), ``tier_timeouts`` ({tier: seconds}; the code tier defaults
to the function's own timeout, the others to the seed's 60 s / 300 s / 24 h),
``total_timeout`` (the whole cascade: every attempt is cut to what remains, and the cascade
stops when it is spent), ``parallel`` (every tier at once; the first success wins and the
others are cancelled), ``fallback`` (a tier is told what the earlier ones failed with).

Every attempt is one execution record (tier, attempt, status, cascade_id). A tier that is not
configured is skipped with its reason (recorded too). A caller error (wrong arguments, unknown
function) is raised at once: no tier can fix it. When everything fails the engine raises
:class:`CascadeExhaustedError` carrying the attempt history.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from ..config import TIER_TIMEOUTS
from ..errors import (
    Aborted,
    BadArguments,
    CascadeExhaustedError,
    FunctionsError,
    FunctionTimeout,
    error_status,
)
from ..models import ExecutionRecord, FunctionInfo
from .base import TIERS, Attempt, HumanPending, Tier, TierCall

#: Option names the engine understands (everything else is passed to the tiers).
ENGINE_OPTIONS = ("start_tier", "skip_tiers", "tier_retries", "tier_timeouts", "total_timeout",
                  "parallel", "fallback", "backoff")
#: Longest wait between retries of one tier.
MAX_BACKOFF = 5.0
#: How long past its deadline a tier may take to stop by itself before it is cancelled.
DEADLINE_GRACE = 0.1


@dataclass
class CascadeOptions:
    """Validated cascade options."""

    start_tier: str = "code"
    skip_tiers: tuple[str, ...] = ()
    tier_retries: dict[str, int] = field(default_factory=dict)
    tier_timeouts: dict[str, float] = field(default_factory=dict)
    total_timeout: float | None = None
    parallel: bool = False
    fallback: bool = True
    backoff: float = 0.1

    @classmethod
    def parse(cls, options: dict[str, Any]) -> CascadeOptions:
        opts = cls(**{k: v for k, v in options.items() if k in ENGINE_OPTIONS})
        if opts.start_tier not in TIERS:
            raise BadArguments(f"start_tier={opts.start_tier!r}: expected one of {', '.join(TIERS)}")
        if isinstance(opts.skip_tiers, str):
            opts.skip_tiers = (opts.skip_tiers,)
        opts.skip_tiers = tuple(opts.skip_tiers)
        for name in (*opts.skip_tiers, *opts.tier_retries, *opts.tier_timeouts):
            if name not in TIERS:
                raise BadArguments(f"unknown tier {name!r}: expected one of {', '.join(TIERS)}")
        if any(not isinstance(n, int) or n < 0 for n in opts.tier_retries.values()):
            raise BadArguments("tier_retries values must be integers >= 0")
        if any(t <= 0 for t in opts.tier_timeouts.values()) or \
                (opts.total_timeout is not None and opts.total_timeout <= 0):
            raise BadArguments("timeouts must be positive")
        return opts


@dataclass
class CascadeResult:
    """The output of a cascade: the value, the tier that produced it, and every attempt."""

    value: Any
    tier: str
    attempts: list[Attempt]
    cascade_id: str
    duration_ms: float = 0.0

    def result(self) -> Any:
        return self.value

    def timeline(self) -> list[dict[str, Any]]:
        return [a.to_dict() for a in self.attempts]

    def _repr_mimebundle_(self, include: Any = None, exclude: Any = None) -> dict[str, Any]:
        from ..widgets.result import ResultView

        return ResultView(self)._repr_mimebundle_(include, exclude)


_RECORD_STATUS = {"completed": "ok", "failed": "error", "timeout": "timeout",
                  "skipped": "skipped", "cancelled": "aborted", "pending": "pending"}


class Cascade:
    """Runs one function through the tiers. ``tiers`` maps tier names to :class:`Tier`
    objects; ``record`` receives execution records (history); ``new_id`` makes ids."""

    def __init__(self, tiers: dict[str, Tier], *, record: Callable[[ExecutionRecord], None] | None,
                 new_id: Callable[[], str], withdraw: Callable[[str, str], Any] | None = None) -> None:
        self.tiers = tiers
        self._record = record
        self._new_id = new_id
        self._withdraw = withdraw

    # -- entry -------------------------------------------------------------------------
    def run(self, info: FunctionInfo, args: tuple, options: dict[str, Any]) -> CascadeResult:
        """Run the cascade; returns a :class:`CascadeResult`, raises
        :class:`CascadeExhaustedError`, a caller error, or :class:`HumanPending` (whose
        ``pending`` handle carries the attempts) when a person must answer."""
        defaults = dict(info.options.get("cascade", {})) if info.options else {}
        merged = {**defaults, **options}
        opts = CascadeOptions.parse(merged)
        tier_options = {k: v for k, v in merged.items() if k not in ENGINE_OPTIONS}
        cascade_id = self._new_id()
        tier_options["cascade_id"] = cascade_id
        started = time.monotonic()
        deadline = started + opts.total_timeout if opts.total_timeout else float("inf")
        order = list(TIERS[TIERS.index(opts.start_tier):])
        run = self._parallel if opts.parallel else self._sequential
        return run(info, args, opts, tier_options, order, cascade_id, started, deadline)

    def _skip(self, info: FunctionInfo, args: tuple, opts: CascadeOptions,
              tier_options: dict[str, Any], name: str, attempts: list[Attempt],
              cascade_id: str) -> bool:
        """Record and return True when tier ``name`` cannot run for this call."""
        if name in opts.skip_tiers:
            reason: str | None = "skipped by the skip_tiers option"
        elif name not in self.tiers:
            reason = f"no {name} tier in this client"
        else:
            reason = self.tiers[name].skip_reason(info, tier_options)
        if reason:
            attempts.append(self._skipped(info, args, name, reason, cascade_id))
        return bool(reason)

    # -- sequential ------------------------------------------------------------------------
    def _sequential(self, info: FunctionInfo, args: tuple, opts: CascadeOptions,
                    tier_options: dict[str, Any], order: list[str], cascade_id: str,
                    started: float, deadline: float) -> CascadeResult:
        attempts: list[Attempt] = []
        for name in order:
            if self._skip(info, args, opts, tier_options, name, attempts, cascade_id):
                continue
            ok, value = self._tier(info, args, opts, tier_options, name, attempts, cascade_id,
                                   deadline, threading.Event())
            if ok:
                return CascadeResult(value, name, attempts, cascade_id,
                                     (time.monotonic() - started) * 1000)
            if time.monotonic() >= deadline:
                break
        raise self._exhausted(info, attempts, deadline)

    def _tier(self, info: FunctionInfo, args: tuple, opts: CascadeOptions,
              tier_options: dict[str, Any], name: str, attempts: list[Attempt],
              cascade_id: str, deadline: float, cancel: threading.Event) -> tuple[bool, Any]:
        """All attempts of one tier (1 + retries, with backoff). Returns (succeeded, value)."""
        tier = self.tiers[name]
        tries = 1 + opts.tier_retries.get(name, 0)
        for n in range(1, tries + 1):
            if cancel.is_set() or time.monotonic() >= deadline:
                return False, None
            limit = self._timeout(info, opts, name)
            attempt_deadline = min(time.monotonic() + limit, deadline)
            call = TierCall(info, args, name, n, attempt_deadline - time.monotonic(),
                            attempt_deadline, cancel, self._new_id(), list(attempts),
                            opts.fallback, tier_options)
            try:
                attempt = self._attempt(tier, call, cascade_id,
                                        inline=tier.enforces_deadline and not opts.parallel)
            except HumanPending as signal:
                attempts.append(signal.attempt)  # type: ignore[attr-defined]
                signal.pending.attempts = attempts
                raise
            attempts.append(attempt)
            if attempt.status == "completed":
                return True, attempt.partial
            if attempt.status == "cancelled" or n == tries:
                return False, None
            pause = min(opts.backoff * 2 ** (n - 1), MAX_BACKOFF, max(0.0, deadline - time.monotonic()))
            if cancel.wait(pause):
                return False, None
        return False, None

    def _timeout(self, info: FunctionInfo, opts: CascadeOptions, name: str) -> float:
        if name in opts.tier_timeouts:
            return float(opts.tier_timeouts[name])
        return float(info.timeout) if name == "code" else TIER_TIMEOUTS[name]

    def _attempt(self, tier: Tier, call: TierCall, cascade_id: str, inline: bool = False) -> Attempt:
        """Run one attempt in a worker thread, so the deadline and cancellation hold even for
        a tier that blocks (``inline``: in this thread, for a tier that enforces its own
        deadline when nothing can cancel it); record it."""
        box: dict[str, Any] = {}
        t0 = time.monotonic()
        wall = time.time()

        def work() -> None:
            try:
                box["value"] = tier.run(call)
            except BaseException as exc:  # noqa: BLE001 - reported as the attempt's outcome
                box["error"] = exc

        stop = None
        if inline:  # the tier enforces its own deadline and nobody else can cancel it
            work()
            worker = None
        else:
            worker = threading.Thread(target=work, name=f"fnb-{tier.name}-{call.execution_id}",
                                      daemon=True)
            worker.start()
        while worker is not None and worker.is_alive():
            if call.cancel.is_set():
                stop = "cancel"
            elif time.monotonic() >= call.deadline + DEADLINE_GRACE:
                stop = "deadline"  # the tier did not stop itself at its deadline
            if stop:
                break
            worker.join(min(0.05, max(0.001, call.deadline + DEADLINE_GRACE - time.monotonic())))
        if stop and worker is not None:
            if stop == "deadline":
                call.cancel.set()
            tier.cancel(call)
            worker.join(1.0)  # a well-behaved tier stops at once; never wait long for one
        duration = (time.monotonic() - t0) * 1000
        error = box.get("error")
        timed_out = FunctionTimeout(f"{call.info.name}: the {tier.name} tier stopped at its "
                                    f"{call.timeout:g} s limit")
        if stop and "value" not in box and error is None:
            error = Aborted(f"{tier.name}: cancelled") if stop == "cancel" else timed_out
        elif stop == "deadline" and isinstance(error, Aborted):
            error = timed_out
        if isinstance(error, HumanPending):
            attempt = Attempt(tier.name, call.attempt, "pending", duration_ms=duration,
                              execution_id=call.execution_id)
            self._write(call, attempt, wall, None, None, cascade_id)
            error.attempt = attempt  # type: ignore[attr-defined]
            self._on_resolved(error.pending, call, cascade_id)
            raise error
        if error is None:
            attempt = Attempt(tier.name, call.attempt, "completed", duration_ms=duration,
                              partial=box.get("value"), execution_id=call.execution_id)
        else:
            if isinstance(error, BadArguments) or (
                    isinstance(error, FunctionsError) and getattr(error, "caller_error", False)):
                raise error  # a caller mistake: no tier can fix it
            if (stop == "cancel" or (call.cancel.is_set() and isinstance(error, Aborted))) \
                    and not isinstance(error, FunctionTimeout):
                status = "cancelled"
            elif isinstance(error, (FunctionTimeout, TimeoutError)):
                status = "timeout"
            else:
                status = "failed"
            attempt = Attempt(tier.name, call.attempt, status, str(error),
                              getattr(error, "kind", type(error).__name__), duration,
                              getattr(error, "partial", None), execution_id=call.execution_id)
        if tier.name != "code":  # the executor records code attempts itself
            self._write(call, attempt, wall, attempt.partial if error is None else None,
                        error, cascade_id)
        return attempt

    # -- parallel ----------------------------------------------------------------------------
    def _parallel(self, info: FunctionInfo, args: tuple, opts: CascadeOptions,
                  tier_options: dict[str, Any], order: list[str], cascade_id: str,
                  started: float, deadline: float) -> CascadeResult:
        attempts: list[Attempt] = []
        runnable = [name for name in order
                    if not self._skip(info, args, opts, tier_options, name, attempts, cascade_id)]
        cancels = {name: threading.Event() for name in runnable}
        done = threading.Condition()
        outcome: dict[str, Any] = {}
        per_tier: dict[str, list[Attempt]] = {name: [] for name in runnable}
        pending: list[HumanPending] = []

        def race(name: str) -> None:
            try:
                ok, value = self._tier(info, args, opts, tier_options, name, per_tier[name],
                                       cascade_id, deadline, cancels[name])
            except HumanPending as signal:
                with done:
                    pending.append(signal)
                    done.notify_all()
                return
            except BaseException as exc:  # noqa: BLE001 - caller errors end the race
                with done:
                    outcome.setdefault("error", exc)
                    done.notify_all()
                return
            with done:
                if ok and "winner" not in outcome:
                    outcome["winner"] = (name, value)
                done.notify_all()

        threads = [threading.Thread(target=race, args=(n,), daemon=True) for n in runnable]
        for t in threads:
            t.start()
        with done:
            while "winner" not in outcome and "error" not in outcome and \
                    any(t.is_alive() for t in threads) and time.monotonic() < deadline:
                done.wait(0.05)
        for event in cancels.values():  # the losers stop now
            event.set()
        for t in threads:
            t.join(2.0)
        for name in runnable:
            attempts.extend(per_tier[name])
        if "error" in outcome and "winner" not in outcome:
            raise outcome["error"]
        if "winner" in outcome:
            for signal in pending:  # a person need not answer any more
                self._withdraw_task(signal, "another tier answered first")
            name, value = outcome["winner"]
            return CascadeResult(value, name, attempts, cascade_id,
                                 (time.monotonic() - started) * 1000)
        if pending:
            signal = pending[0]
            signal.pending.attempts = attempts
            raise signal
        raise self._exhausted(info, attempts, deadline)

    # -- helpers -----------------------------------------------------------------------------
    def _on_resolved(self, pending: Any, call: TierCall, cascade_id: str) -> None:
        """When the person answers (seen by whoever waits on the handle), the human attempt
        gets its final execution record."""
        wall = time.time()

        def resolved(_pending: Any, status: str, value: Any, error: BaseException | None) -> None:
            final = Attempt("human", call.attempt, "completed" if error is None else
                            ("timeout" if isinstance(error, FunctionTimeout) else "failed"),
                            str(error) if error is not None else None,
                            duration_ms=(time.time() - wall) * 1000,
                            execution_id=call.execution_id)
            self._write(call, final, wall, value, error, cascade_id)

        if hasattr(pending, "on_resolved"):
            pending.on_resolved = resolved


    def _withdraw_task(self, signal: HumanPending, reason: str) -> None:
        task_id = getattr(signal.pending, "task_id", None)
        if self._withdraw is not None and task_id:
            try:
                self._withdraw(task_id, reason)
            except Exception:  # noqa: BLE001 - an answered task cannot be withdrawn: fine
                pass

    def _exhausted(self, info: FunctionInfo, attempts: list[Attempt],
                   deadline: float) -> CascadeExhaustedError:
        lines = [f"  {a.tier}#{a.attempt}: {a.status}" + (f" ({a.reason})" if a.reason else "")
                 + (f": {a.error}" if a.error else "") for a in attempts]
        why = "the total timeout ran out" if time.monotonic() >= deadline else "every tier failed"
        return CascadeExhaustedError(f"{info.target}: {why}\n" + "\n".join(lines), attempts)

    def _skipped(self, info: FunctionInfo, args: tuple, name: str, reason: str,
                 cascade_id: str) -> Attempt:
        attempt = Attempt(name, 0, "skipped", reason=reason)
        if self._record is not None:
            self._record(ExecutionRecord(
                id=self._new_id(), function=info.name, version=info.version,
                language=info.language, tier=name, attempt=0, status="skipped",
                error_kind="skipped", error_message=reason, started_at=time.time(),
                queue_ms=0.0, duration_ms=0.0, cold=False, input=args, output=None, console=[],
                cascade_id=cascade_id))
        return attempt

    def _write(self, call: TierCall, attempt: Attempt, wall: float, value: Any,
               error: BaseException | None, cascade_id: str) -> None:
        if self._record is None:
            return
        info = call.info
        kind = getattr(error, "kind", type(error).__name__) if error is not None else None
        status = _RECORD_STATUS[attempt.status]
        if error is not None and attempt.status == "failed":
            status = error_status(error) if isinstance(error, FunctionsError) else "error"
        self._record(ExecutionRecord(
            id=call.execution_id, function=info.name, version=info.version,
            language=info.language, tier=call.tier, attempt=call.attempt, status=status,
            error_kind=kind, error_message=str(error) if error is not None else None,
            started_at=wall, queue_ms=0.0, duration_ms=attempt.duration_ms, cold=False,
            input=call.args, output=value, console=call.console, cascade_id=cascade_id))


__all__ = ["Cascade", "CascadeOptions", "CascadeResult", "ENGINE_OPTIONS"]
