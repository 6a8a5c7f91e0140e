"""The human tier: a person answers what no other tier could.

The tier stores a task (function, input, what failed, the question) in the store's task
queue (:mod:`functions_nb.storage.tasks`) and either blocks until it is answered
(``wait_human=True``) or raises :class:`HumanPending` with a :class:`Pending` handle, so the
kernel stays free. A person answers from the notebook (``fx.human.widget()``, its ``.widget`` panel), from
Python (``fx.human.answer(task_id, value)`` / ``approve`` / ``reject``) or from a shell
(``func human answer TASK_ID --value 42``), in this process or any other one.

Decisions and what the call returns:

* ``value``    the value given, checked against the signature when it is given
* ``approve``  the partial / proposed output of the last failed tier (None if there is none)
* ``reject``   :class:`InvocationError` "rejected by <who>: <why>"
* withdrawn    :class:`Aborted` (the cascade no longer needed it)
* timeout      per the task's outcome: ``fail`` (:class:`FunctionTimeout`), ``approve``, or
  ``default_value``

Tier options (``fx.invoke(..., **options)`` or deploy-time): ``question``, ``wait_human``,
``human_timeout_outcome`` ("fail" | "approve" | "default_value"), ``human_default_value``,
``human_decisions`` (a subset of approve / reject / value).

A :class:`Pending` is rebuilt from the store alone (``fx.human.get(task_id)``), so a task
created before a kernel restart is answered and collected after it.
"""

from __future__ import annotations

import datetime as _dt
import html
import json
import threading
import time
import warnings
import weakref
from collections.abc import Callable
from dataclasses import fields
from typing import Any

from ..errors import (
    Aborted,
    FunctionsError,
    FunctionTimeout,
    InvocationError,
    StorageError,
)
from ..models import FunctionInfo
from ..storage.tasks import DECISIONS, Task, TaskClosed, TaskQueue, derive_status, from_json, to_json
from .base import Attempt, HumanPending, Tier, TierCall, TierServices

#: Seconds between two looks at the store while waiting for an answer.
POLL = 0.2
#: Seconds between two looks of the background watcher (handles with ``on_resolved``).
WATCH_EVERY = 1.0

Outcome = tuple[str, Any, BaseException | None]  # (attempt status, value, error)
OnResolved = Callable[["Pending", str, Any, "BaseException | None"], Any]


def _duration(seconds: float) -> str:
    for unit, size in (("h", 3600), ("min", 60)):
        if seconds >= size and round(seconds / size, 2) == round(seconds / size):
            return f"{seconds / size:g}{unit}"
    return f"{seconds:.3g}s"


def _created(task: Task) -> float:
    return _dt.datetime.fromisoformat(task.created_at).timestamp()


def _clock(ts: float) -> str:
    return time.strftime("%H:%M", time.localtime(ts))


def outcome(task: Task) -> Outcome:
    """What an answered (or expired, or withdrawn) task gives the caller."""
    answer = task.answer or {}
    decision = answer.get("decision")
    kind = task.result_kind
    who, why = answer.get("who", "?"), answer.get("why") or ""
    if decision == "value":
        return "completed", from_json(kind, answer.get("value")), None
    if decision == "approve":
        return "completed", from_json(kind, task.proposed), None
    if decision == "reject":
        return "failed", None, InvocationError(f"rejected by {who}: {why or 'no reason given'}")
    if decision == "withdrawn":
        return "cancelled", None, Aborted(f"human task {task.id} withdrawn: {why}")
    # expired (settled or not): the timeout outcome
    if task.timeout_outcome == "approve":
        return "completed", from_json(kind, task.proposed), None
    if task.timeout_outcome == "default_value":
        return "completed", from_json(kind, task.timeout_value), None
    waited = _duration(task.deadline - _created(task))
    return "timeout", None, FunctionTimeout(f"no answer within {waited} (human task {task.id} "
                                            f"for {task.function})")


class Pending:
    """A handle on a human task: the invocation's value arrives when a person answers.

    ``wait(timeout)`` blocks (polling the store) and returns the value or raises the outcome's
    error; ``done()`` looks once; ``value`` is the value (raises :class:`HumanPending` while
    unanswered). ``on_resolved(pending, status, value, error)`` is called exactly once, when
    this handle first sees the outcome (a background watcher looks every second)."""

    def __init__(self, tasks: TaskQueue, task: Task, *, on_resolved: OnResolved | None = None,
                 attempts: list[Attempt] | None = None, poll: float = POLL) -> None:
        self._tasks = tasks
        self.task = task
        self.task_id = task.id
        self.function = task.function
        self.execution_id = task.execution_id
        #: The cascade's attempts (set by the engine); rebuilt from the task's failures.
        self.attempts = attempts if attempts is not None else [_attempt(a) for a in task.failures]
        self.poll = poll
        self._lock = threading.Lock()
        self._outcome: Outcome | None = None
        self._on_resolved: OnResolved | None = None
        self._notified = False
        if on_resolved is not None:
            self.on_resolved = on_resolved

    # the callback ---------------------------------------------------------------------
    @property
    def on_resolved(self) -> OnResolved | None:
        return self._on_resolved

    @on_resolved.setter
    def on_resolved(self, callback: OnResolved | None) -> None:
        self._on_resolved = callback
        if callback is not None:
            self._notify()  # already resolved: call it now (still exactly once)
            _WATCHER.add(self)

    def _notify(self) -> None:
        with self._lock:
            if self._notified or self._outcome is None or self._on_resolved is None:
                return
            self._notified = True
            callback, (status, value, error) = self._on_resolved, self._outcome
        try:
            callback(self, status, value, error)
        except Exception as exc:  # noqa: BLE001 - the answer stands even if recording it failed
            warnings.warn(f"human task {self.task_id}: on_resolved failed: {exc!r}", stacklevel=2)

    # looking at the store ---------------------------------------------------------------
    def _poll(self, force_expire: bool = False) -> bool:
        """Look for the answer once; True when resolved (and on_resolved was called)."""
        if self._outcome is not None:
            return True
        answer = self._tasks.answer_of(self.task_id)
        if answer is None and (force_expire or time.time() >= self.task.deadline):
            answer = self._tasks.expire(self.task_id, force=True)
        if answer is None:
            return False
        with self._lock:
            if self._outcome is None:
                self.task.answer = answer
                self.task.status = derive_status(self.task)
                self._outcome = outcome(self.task)
        self._notify()
        return True

    def _result(self) -> Any:
        assert self._outcome is not None
        _status, value, error = self._outcome
        if error is not None:
            raise error
        return value

    def done(self) -> bool:
        """True once the task is answered, withdrawn or past its deadline."""
        return self._poll()

    def wait(self, timeout: float | None = None) -> Any:
        """Block until the task is settled; return the value or raise the outcome's error.

        With ``timeout`` (seconds), raise the builtin ``TimeoutError`` if it is still pending
        then (the task stays open; wait again later)."""
        end = None if timeout is None else time.monotonic() + timeout
        while True:
            try:
                if self._poll():
                    return self._result()
            except StorageError:
                pass  # the store is unreachable for a moment: keep waiting
            left = self.task.deadline - time.time()
            if end is not None:
                left = min(left, end - time.monotonic())
                if left <= 0:
                    raise TimeoutError(f"human task {self.task_id} for {self.function} is still "
                                       f"pending after waiting {timeout:g} s")
            time.sleep(max(0.0, min(self.poll, left)))

    def withdraw(self, reason: str = "withdrawn") -> bool:
        """Cancel the task if nobody answered yet; True if it was withdrawn by this call."""
        try:
            self._tasks.withdraw(self.task_id, reason)
            return True
        except TaskClosed:
            return False
        finally:
            self._poll()

    @property
    def value(self) -> Any:
        """The value once answered (raises the outcome's error); HumanPending before."""
        if not self._poll():
            raise HumanPending(self)
        return self._result()

    @property
    def error(self) -> BaseException | None:
        return self._outcome[2] if self._poll() and self._outcome else None

    @property
    def status(self) -> str:
        """pending, answered, expired or withdrawn."""
        return self.task.status if self._poll() else "pending"

    @property
    def answer(self) -> dict[str, Any] | None:
        """The stored answer (decision, value, who, why, answered_at), once there is one."""
        self._poll()
        return self.task.answer

    def __repr__(self) -> str:
        try:
            resolved = self._poll()
        except FunctionsError:
            resolved = False
        short = f"{self.task_id[:4]}…"
        if not resolved:
            return (f"<pending human task {short} for {self.function}: waiting since "
                    f"{_clock(_created(self.task))}>")
        status, value, error = self._outcome  # type: ignore[misc]
        who = (self.task.answer or {}).get("who", "?")
        how = f"{self.task.status} by {who}" if self.task.status == "answered" else self.task.status
        what = f"{type(error).__name__}: {error}" if error is not None else repr(value)
        return f"<human task {short} for {self.function}: {how} -> {what}>"

    def _repr_html_(self) -> str:
        text = html.escape(repr(self))
        return (f"<div><code>{text}</code><br><small>task {html.escape(self.task_id)}: "
                f"{html.escape(self.task.question[:300])}</small></div>")


def _attempt(data: dict[str, Any]) -> Attempt:
    known = {f.name for f in fields(Attempt)}
    return Attempt(**{k: v for k, v in data.items() if k in known})


class _Watcher:
    """One daemon thread per process that polls live handles having an ``on_resolved``
    callback, so the human attempt gets its record even if nobody calls ``wait()``."""

    def __init__(self) -> None:
        self._handles: weakref.WeakSet[Pending] = weakref.WeakSet()
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None

    def add(self, pending: Pending) -> None:
        with self._lock:
            self._handles.add(pending)
            if self._thread is None or not self._thread.is_alive():
                self._thread = threading.Thread(target=self._loop, name="fnb-human-watch", daemon=True)
                self._thread.start()

    def nudge(self, task_id: str) -> None:
        """Let the live handles of ``task_id`` see its answer now (answered in this process)."""
        with self._lock:
            handles = [p for p in self._handles if p.task_id == task_id]
        for pending in handles:
            try:
                pending._poll()
            except FunctionsError:
                continue

    def _loop(self) -> None:
        while True:
            time.sleep(WATCH_EVERY)
            with self._lock:
                handles = list(self._handles)
                if not handles:
                    self._thread = None
                    return
            for pending in handles:
                try:
                    if pending._poll():
                        with self._lock:
                            self._handles.discard(pending)
                except Exception:  # noqa: BLE001 - a store blip: look again next round
                    continue


_WATCHER = _Watcher()


# -- the tier --------------------------------------------------------------------------------

def default_question(call: TierCall) -> str:
    """The question a person sees: the function, its signature, the input, what failed."""
    info, sig = call.info, call.info.signature
    shown = json.dumps(to_json(list(call.args)))
    if len(shown) > 500:
        shown = shown[:500] + "…"
    lines = [f"{info.target} {sig} was called with {shown} and needs a person."]
    for a in call.failures:
        line = f"- {a.tier} tier (attempt {a.attempt}) {a.status}: {a.error or 'no detail'}"
        if a.partial is not None:
            line += f"; it proposed {json.dumps(to_json(a.partial))[:300]}"
        lines.append(line)
    if not call.failures:
        lines.append("No earlier tier reported a failure.")
    proposed = call.failures[-1].partial if call.failures else None
    lines.append(f"What should it return ({sig.result_type})? Enter the value"
                 + (", approve the proposal," if proposed is not None else ",")
                 + " or reject the call.")
    return "\n".join(lines)


class HumanTier(Tier):
    """Asks a person through the store's task queue (``services.tasks``)."""

    name = "human"

    def __init__(self, services: TierServices, *, poll: float = POLL) -> None:
        self.services = services
        self.poll = poll

    def skip_reason(self, info: FunctionInfo, options: dict[str, Any]) -> str | None:
        if self.services.tasks is None:
            return "no human channel: the store has no task queue"
        return None

    def run(self, call: TierCall) -> Any:
        tasks: TaskQueue = self.services.tasks
        opts = call.options
        question = opts.get("question") or default_question(call)
        task = tasks.create(
            call.info, call.args, question=question,
            failures=[a.to_dict() for a in call.failures],
            timeout=max(call.remaining, 1e-3) if call.deadline != float("inf") else None,
            timeout_outcome=opts.get("human_timeout_outcome") or "fail",
            timeout_value=opts.get("human_default_value"),
            decisions=tuple(opts.get("human_decisions") or DECISIONS),
            execution_id=call.execution_id)
        call.log("info", f"human task {task.id} for {task.function}: answer with "
                         f"fx.human.answer({task.id!r}, value) or "
                         f"`func human answer {task.id} --value JSON`")
        pending = Pending(tasks, task, poll=self.poll)
        _LIVE[(tasks.url, task.id)] = pending  # fx.human.get(id) in this process gives this handle
        if not opts.get("wait_human"):
            raise HumanPending(pending)
        return self._block(call, pending)

    def _block(self, call: TierCall, pending: Pending) -> Any:
        """Wait for the answer in this (worker) thread, honouring cancel and the deadline."""
        while True:
            try:
                if pending._poll():
                    return pending._result()
            except StorageError:
                pass  # keep waiting through a store blip
            past = time.monotonic() >= call.deadline
            if call.cancel.is_set() and not past:
                pending.withdraw("cancelled by the cascade")
                call.log("info", f"human task {pending.task_id} withdrawn: the cascade cancelled it")
                return pending._result()
            if past:  # the attempt's deadline: settle the task by its timeout outcome
                pending._poll(force_expire=True)
                return pending._result()
            call.cancel.wait(max(0.0, min(self.poll, call.deadline - time.monotonic())))


# -- the desk: what a person uses ---------------------------------------------------------------

#: The handles the human tier of this process created, by (task queue URL, task id), while
#: somebody (the caller, the watcher) holds them.
_LIVE: weakref.WeakValueDictionary[tuple[str, str], Pending] = weakref.WeakValueDictionary()


class HumanDesk:
    """Human tasks of a store, for people: list, answer, approve, reject, and a widget.

    ``make_pending(task)`` builds the handle of a task (the client passes one that attaches
    the engine's ``on_resolved``); handles are cached per task id in this desk."""

    def __init__(self, tasks: TaskQueue, make_pending: Callable[[Task], Pending] | None = None) -> None:
        self.tasks = tasks
        self._make_pending = make_pending or (lambda task: Pending(tasks, task))
        self._handles: dict[str, Pending] = {}
        self._lock = threading.Lock()
        self._views: weakref.WeakSet[Any] = weakref.WeakSet()

    def __repr__(self) -> str:
        return f"<HumanDesk {self.tasks.url}: {len(self.tasks.list('pending'))} pending>"

    def ls(self, status: str | None = "pending") -> list[dict[str, Any]]:
        """Tasks (oldest first) as dicts; ``status=None`` for every task."""
        return [task_row(t) for t in self.tasks.list(status)]

    def frame(self, status: str | None = "pending") -> Any:
        """:meth:`ls` as a pandas DataFrame."""
        import pandas as pd

        return pd.DataFrame(self.ls(status), columns=list(task_row(None)))

    def get(self, task_id: str) -> Pending:
        """The handle of a task, also one created by another (possibly dead) process. For a task
        this process's cascade created, it is the handle ``invoke`` returned (so the final
        record is written once)."""
        task = self.tasks.get(task_id)
        with self._lock:
            if task.id not in self._handles:
                live = _LIVE.get((self.tasks.url, task.id))
                self._handles[task.id] = live if live is not None else self._make_pending(task)
            return self._handles[task.id]

    def answer(self, task_id: str, value: Any, who: str | None = None, why: str = "") -> dict[str, Any]:
        """Answer with a value (checked against the function's result type now)."""
        return self._after(self.tasks.answer(task_id, "value", value, who=who, why=why))

    def approve(self, task_id: str, who: str | None = None, why: str = "") -> dict[str, Any]:
        """Accept the proposed output of the last failed tier."""
        return self._after(self.tasks.answer(task_id, "approve", who=who, why=why))

    def reject(self, task_id: str, why: str, who: str | None = None) -> dict[str, Any]:
        """Refuse: the invocation fails with "rejected by <who>: <why>"."""
        return self._after(self.tasks.answer(task_id, "reject", who=who, why=why))

    def withdraw(self, task_id: str, reason: str = "withdrawn by hand") -> dict[str, Any]:
        return self._after(self.tasks.withdraw(task_id, reason))

    def _after(self, answer: dict[str, Any]) -> dict[str, Any]:
        """Handles on that task in this process learn the outcome now (their on_resolved runs)."""
        handle = self._handles.get(answer["task"])
        if handle is not None:
            try:
                handle.done()
            except FunctionsError:
                pass
        _WATCHER.nudge(answer["task"])  # e.g. the handle fx.invoke returned in this process
        for view in list(self._views):  # displayed task lists show the answer at once
            try:
                view.refresh()
            except Exception:  # noqa: BLE001 - a display hiccup must not fail the answer
                pass
        return answer

    def widget(self, *, live: bool = True, interval: float = 3.0) -> Any:
        """The pending tasks as a view (:class:`~functions_nb.widgets.human.HumanTasksView`):
        displayed, one static HTML output that a saved notebook still shows, replaced in place
        while the kernel runs. While ``live``, a daemon thread re-reads the store every
        ``interval`` seconds, so tasks answered elsewhere (sidebar, CLI, another kernel) leave
        and new ones appear; ``close()`` stops it. ``.widget`` is the ipywidgets panel with
        value / approve / reject per task, for the running kernel."""
        from ..widgets.human import HumanTasksView

        view = HumanTasksView(self, live=live, interval=interval)
        self._views.add(view)
        return view


def task_row(task: Task | None) -> dict[str, Any]:
    """One task as a flat dict (the columns of ``ls``; ``None`` gives the empty row)."""
    t = task
    answer = (t.answer if t else None) or {}
    return {
        "task_id": t.id if t else None,
        "function": t.function if t else None,
        "status": t.status if t else None,
        "args": t.args if t else None,
        "failed": "; ".join(f"{f.get('tier')}: {f.get('error')}" for f in t.failures) if t else None,
        "proposed": t.proposed if t else None,
        "question": t.question if t else None,
        "result_type": t.options.get("result_type") if t else None,
        "created_at": t.created_at if t else None,
        "deadline": _dt.datetime.fromtimestamp(t.deadline, _dt.UTC).isoformat(timespec="seconds")
        if t else None,
        "timeout_outcome": t.timeout_outcome if t else None,
        "decision": answer.get("decision"),
        "value": answer.get("value"),
        "who": answer.get("who"),
        "why": answer.get("why"),
        "answered_at": answer.get("answered_at"),
    }


__all__ = ["HumanDesk", "HumanTier", "Pending", "default_question", "outcome", "task_row"]
