"""What a cascade tier is and what it is given: the contract between the engine and the tiers.

A tier runs one *attempt*: it receives a :class:`TierCall` (the function, the arguments, its
time budget, a cancel event, the earlier attempts, a console) and returns the function's
output or raises. Tiers never reach into storage or history directly: what they may use of
the platform comes through :class:`TierServices` (call other functions, read history, the
human task queue, the configured models).
"""

from __future__ import annotations

import threading
import time
from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from ..models import FunctionInfo

#: The tiers in escalation order.
TIERS = ("code", "generative", "agentic", "human")

#: Attempt statuses (the attempt history) -> execution-record statuses (history).
ATTEMPT_STATUSES = ("completed", "failed", "timeout", "skipped", "cancelled", "pending")


@dataclass
class Attempt:
    """One tier attempt in a cascade's history."""

    tier: str
    attempt: int
    status: str  # one of ATTEMPT_STATUSES
    error: str | None = None
    error_kind: str | None = None
    duration_ms: float = 0.0
    #: What the tier produced before failing (e.g. an output that did not validate), if any.
    partial: Any = None
    #: Why a tier was skipped.
    reason: str | None = None
    #: The execution record of this attempt (None for skipped tiers).
    execution_id: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return {k: v for k, v in self.__dict__.items()}


@dataclass
class TierCall:
    """One attempt as a tier sees it."""

    info: FunctionInfo
    args: tuple
    tier: str
    attempt: int
    #: Seconds this attempt may take (the tier timeout, cut to what remains of the total).
    timeout: float
    #: ``time.monotonic()`` deadline of this attempt.
    deadline: float
    #: Set when the attempt must stop (total timeout reached, or a parallel tier won).
    cancel: threading.Event
    #: Execution id of this attempt's record.
    execution_id: str
    #: Earlier attempts of this cascade, in order (what failed, and partial results).
    previous: list[Attempt] = field(default_factory=list)
    #: With ``fallback``, a tier is told what the previous tiers did (their errors/partials).
    fallback: bool = True
    #: Per-invocation options (model, prompt, ...) merged over the function's defaults.
    options: dict[str, Any] = field(default_factory=dict)
    #: Console lines of this attempt: (level, text, unix time).
    console: list[tuple[str, str, float]] = field(default_factory=list)

    def log(self, level: str, text: str) -> None:
        self.console.append((level, text, time.time()))

    @property
    def remaining(self) -> float:
        return max(0.0, self.deadline - time.monotonic())

    def cancelled(self) -> bool:
        """True once the attempt should stop (cancelled, or past its deadline)."""
        return self.cancel.is_set() or time.monotonic() >= self.deadline

    @property
    def failures(self) -> list[Attempt]:
        """Earlier attempts that failed, for fallback context (empty without ``fallback``)."""
        if not self.fallback:
            return []
        return [a for a in self.previous if a.status in ("failed", "timeout")]


class HumanPending(Exception):  # noqa: N818 - a signal, not an error
    """Raised by the human tier when the caller does not wait: the engine returns
    ``pending`` (a handle with ``wait(timeout)``, ``done()``, ``value``, ``task_id``) instead
    of blocking the kernel. The handle is given the cascade's attempts (``pending.attempts``)."""

    def __init__(self, pending: Any) -> None:
        super().__init__(f"waiting for a person: task {getattr(pending, 'task_id', '?')}")
        self.pending = pending


class Tier(ABC):
    """A cascade tier. Subclasses set ``name`` and implement :meth:`run`."""

    name: str
    #: The tier stops itself at ``call.deadline`` (the code tier: the executor's limits), so
    #: in sequential mode it may run in the caller's thread without a watcher.
    enforces_deadline: bool = False

    def skip_reason(self, info: FunctionInfo, options: dict[str, Any]) -> str | None:
        """Why this tier cannot run for ``info`` (no model configured, no code, ...), or None."""
        return None

    @abstractmethod
    def run(self, call: TierCall) -> Any:
        """Produce the function's output or raise. Must return or raise promptly once
        ``call.cancelled()`` (check it, or wait on ``call.cancel`` with the remaining time).
        Raise :class:`functions_nb.errors.FunctionTimeout` when the deadline passes."""

    def cancel(self, call: TierCall) -> None:  # noqa: B027 - optional hook
        """Called (from another thread) when ``call`` must stop now, after ``call.cancel`` is
        set: interrupt blocking work (abort an execution, cancel a request)."""


@dataclass
class TierServices:
    """What tiers may use of the platform (given by the client; no direct storage access)."""

    #: Invoke another deployed function: ``invoke(target, *args) -> value`` (code tier only,
    #: no cascade, so an agent's tool call cannot recurse into the agentic tier).
    invoke: Callable[..., Any]
    #: Describe deployed functions: ``list_functions() -> [FunctionInfo]``.
    list_functions: Callable[[], list[FunctionInfo]]
    #: Read-only history query on a connection that can read nothing else
    #: (``history_sql.query`` bound to the history): ``sql(select, max_rows=, timeout=) ->
    #: QueryResult``, or None when no history is recorded.
    sql: Callable[..., Any] | None
    #: The human task queue (``functions_nb.cascade.human.TaskQueue``), or None.
    tasks: Any = None
    #: Default model for the generative tier: a pydantic-ai model or ``"provider:model"``.
    model: Any = None
    #: Default model for the agentic tier (falls back to ``model``).
    agent_model: Any = None
