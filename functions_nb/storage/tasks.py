"""Human tasks in the store: what the human tier asks a person, and their answer.

Layout under the store root (the write store of a hybrid store)::

    tasks/<id>.json          the task: function, input, what failed, the question, the
                             allowed decisions, the deadline and the timeout outcome
    tasks/<id>.answer.json   the answer, created exclusively: the first answer wins

Both files are written whole (atomic or exclusive create), so any process that can reach
the store (a notebook, ``func human answer``, a kernel restarted tomorrow) sees a task and
its answer consistently. A task's status is derived, never stored twice:

* ``pending``   no answer yet and before the deadline
* ``answered``  an answer with decision ``approve``, ``reject`` or ``value``
* ``withdrawn`` the cascade gave up on it (decision ``withdrawn``)
* ``expired``   past the deadline without an answer (or settled as ``expired``)

When a waiter sees the deadline pass it *settles* the task by creating the answer file with
decision ``expired``; whoever creates the answer file first (the person or the timeout)
decides the outcome, for every process alike.
"""

from __future__ import annotations

import datetime as _dt
import getpass
import json
import math
import os
import time
import uuid
from dataclasses import asdict, dataclass
from typing import Any

from .. import values
from ..config import TIER_TIMEOUTS
from ..errors import BadArguments, FunctionNotFound
from ..models import FunctionInfo
from .fsutil import create_exclusive, read_or_none
from .store import guarded

#: Decisions a person can take; ``withdrawn`` and ``expired`` are taken by the system.
DECISIONS = ("approve", "reject", "value")
STATUSES = ("pending", "answered", "expired", "withdrawn")
#: What happens when nobody answers in time.
TIMEOUT_OUTCOMES = ("fail", "approve", "default_value")


class TaskNotFound(FunctionNotFound):
    """No human task with that id in the store."""


class TaskClosed(BadArguments):
    """The task was already answered, withdrawn or expired; the first answer stands."""


def whoami() -> str:
    try:
        return getpass.getuser()
    except Exception:  # noqa: BLE001 - no user database entry (containers): not fatal
        return os.environ.get("USER") or "unknown"


def _now_iso(ts: float | None = None) -> str:
    """UTC ISO time to the microsecond (tasks sort by it)."""
    return _dt.datetime.fromtimestamp(time.time() if ts is None else ts, _dt.UTC).isoformat(
        timespec="microseconds")


def to_json(value: Any) -> Any:
    """A JSON-safe copy of ``value`` (numpy arrays -> lists, bytes -> text)."""
    return json.loads(json.dumps(value, default=_json_default))


def _json_default(value: Any) -> Any:
    if isinstance(value, (bytes, bytearray, memoryview)):
        return bytes(value).decode("utf-8", "replace")
    if hasattr(value, "tolist"):
        return value.tolist()
    return repr(value)


def coerce_value(kind: str, value: Any, signature: str = "") -> Any:
    """``value`` as the JSON form of a result of ``kind``, or BadArguments naming the signature
    (the check of :func:`functions_nb.values.answer`: lenient where a person typed text,
    ``"42"`` is an int 42 for an integer result, exact otherwise)."""
    try:
        return values.answer(kind, value)
    except values.Refused as exc:
        raise values.bad_answer(signature, value, exc) from None


def from_json(kind: str, value: Any) -> Any:
    """The Python value a function of result ``kind`` returns, from its JSON form."""
    if value is None:
        return None
    if kind == "bytes" and isinstance(value, str):
        return value.encode()
    if kind.endswith("[]") and isinstance(value, list):
        import numpy as np

        return np.asarray(value, dtype=values.ARRAY_DTYPES.get(kind))
    return value


@dataclass
class Task:
    """One human task as stored, plus its answer (None while unanswered) and derived status."""

    id: str
    function: str  # "name@version"
    version: int
    args: list
    #: What failed before: Attempt dicts of the failed tiers (tier, error, partial, ...).
    failures: list[dict]
    question: str
    #: Allowed decisions, the signature as text, its result kind and type.
    options: dict[str, Any]
    created_at: str
    #: Unix time after which the timeout outcome applies.
    deadline: float
    timeout_outcome: str = "fail"
    timeout_value: Any = None
    execution_id: str | None = None
    status: str = "pending"
    answer: dict[str, Any] | None = None

    @property
    def name(self) -> str:
        return self.function.partition("@")[0]

    @property
    def result_kind(self) -> str:
        return self.options.get("result", "json")

    @property
    def proposed(self) -> Any:
        """What approving gives: the partial output of the last failed tier, if any."""
        return self.failures[-1].get("partial") if self.failures else None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_json(cls, raw: bytes, answer: bytes | None = None) -> Task:
        data = json.loads(raw)
        known = {k: data[k] for k in cls.__dataclass_fields__ if k in data}
        task = cls(**known)
        task.answer = json.loads(answer) if answer is not None else None
        task.status = derive_status(task)
        return task


def derive_status(task: Task, now: float | None = None) -> str:
    if task.answer is not None:
        decision = task.answer.get("decision")
        return decision if decision in ("withdrawn", "expired") else "answered"
    return "expired" if (time.time() if now is None else now) >= task.deadline else "pending"


class TaskQueue:
    """Human tasks in a :class:`FunctionStore` (or the write store of a HybridStore)."""

    def __init__(self, store: Any) -> None:
        self.store = getattr(store, "writes", store)  # a HybridStore writes there
        self.url: str = self.store.url
        self.fs = self.store.fs

    def __repr__(self) -> str:
        return f"TaskQueue({self.url!r})"

    def _task_path(self, task_id: str) -> str:
        return self.store.path("tasks", f"{task_id}.json")

    def _answer_path(self, task_id: str) -> str:
        return self.store.path("tasks", f"{task_id}.answer.json")

    # create ----------------------------------------------------------------------
    @guarded
    def create(self, info: FunctionInfo, args: tuple | list, *, question: str,
               failures: list[dict] | None = None, timeout: float | None = None,
               timeout_outcome: str = "fail", timeout_value: Any = None,
               decisions: tuple[str, ...] | list[str] = DECISIONS,
               execution_id: str | None = None) -> Task:
        """Store a new pending task for ``info`` called with ``args``; returns it.

        ``timeout`` (seconds, default the human tier's 24 h) sets the deadline; then
        ``timeout_outcome`` applies: ``"fail"``, ``"approve"`` (the proposed output) or
        ``"default_value"`` (``timeout_value``, checked against the signature now)."""
        if timeout_outcome not in TIMEOUT_OUTCOMES:
            raise BadArguments(f"timeout outcome {timeout_outcome!r}: use one of "
                               f"{', '.join(TIMEOUT_OUTCOMES)}")
        bad = [d for d in decisions if d not in DECISIONS]
        if bad or not decisions:
            raise BadArguments(f"decisions {list(decisions)!r}: choose among {', '.join(DECISIONS)}")
        sig = info.signature
        if timeout_outcome == "default_value":
            timeout_value = coerce_value(sig.result, timeout_value, str(sig))
        if timeout is None or not math.isfinite(timeout) or timeout <= 0:
            timeout = TIER_TIMEOUTS["human"]
        now = time.time()
        task = Task(
            id=uuid.uuid4().hex[:12], function=info.target, version=info.version,
            args=to_json(list(args)), failures=to_json(list(failures or [])), question=question,
            options={"decisions": list(decisions), "signature": str(sig), "result": sig.result,
                     "result_type": sig.result_type},
            created_at=_now_iso(now), deadline=now + float(timeout),
            timeout_outcome=timeout_outcome, timeout_value=to_json(timeout_value),
            execution_id=execution_id)
        data = task.to_dict()
        del data["answer"]
        if not create_exclusive(self.fs, self._task_path(task.id), json.dumps(data, indent=1).encode()):
            raise FileExistsError(self._task_path(task.id))  # a 48-bit id collision: never in practice
        return task

    # read --------------------------------------------------------------------------
    @guarded
    def resolve(self, task_id: str) -> str:
        """The full id of ``task_id`` (a unique prefix is enough, as with git)."""
        task_id = str(task_id).strip()
        if not task_id or "/" in task_id or "." in task_id:
            raise TaskNotFound(f"no human task {task_id!r} in {self.url}")
        if self.fs.exists(self._task_path(task_id)):
            return task_id
        matches = [i for i in self.ids() if i.startswith(task_id)]
        if len(matches) == 1:
            return matches[0]
        if matches:
            raise TaskNotFound(f"task id {task_id!r} is ambiguous: {', '.join(sorted(matches))}")
        raise TaskNotFound(f"no human task {task_id!r} in {self.url}")

    @guarded
    def ids(self) -> list[str]:
        try:
            entries = self.fs.ls(self.store.path("tasks"), detail=False)
        except FileNotFoundError:
            return []
        names = (e.rstrip("/").rsplit("/", 1)[-1] for e in entries)
        return [n[:-5] for n in names if n.endswith(".json") and not n.endswith(".answer.json")]

    @guarded
    def get(self, task_id: str) -> Task:
        """The task with its answer (if any) and current status."""
        task_id = self.resolve(task_id)
        raw = read_or_none(self.fs, self._task_path(task_id))
        if raw is None:
            raise TaskNotFound(f"no human task {task_id!r} in {self.url}")
        return Task.from_json(raw, read_or_none(self.fs, self._answer_path(task_id)))

    @guarded
    def answer_of(self, task_id: str) -> dict[str, Any] | None:
        """The stored answer of a task (a full id), or None: the cheap call waiters poll."""
        raw = read_or_none(self.fs, self._answer_path(task_id))
        return json.loads(raw) if raw is not None else None

    def status(self, task_id: str) -> str:
        return self.get(task_id).status

    def list(self, status: str | None = None) -> list[Task]:
        """Tasks, oldest first; only those with ``status`` when given."""
        if status is not None and status not in STATUSES:
            raise BadArguments(f"status {status!r}: use one of {', '.join(STATUSES)}")
        tasks = []
        for task_id in self.ids():
            try:
                task = self.get(task_id)
            except TaskNotFound:
                continue  # removed meanwhile
            if status is None or task.status == status:
                tasks.append(task)
        return sorted(tasks, key=lambda t: (t.created_at, t.id))

    # answer ------------------------------------------------------------------------
    def answer(self, task_id: str, decision: str, value: Any = None, who: str | None = None,
               why: str = "") -> dict[str, Any]:
        """Record a person's decision (``approve``, ``reject`` or ``value``); the first answer
        wins. A value is checked against the function's result type now, so a bad one is
        refused here and the task stays open. Returns the stored answer."""
        task = self.get(task_id)
        if task.status != "pending":
            raise self._closed(task)
        if decision not in DECISIONS:
            raise BadArguments(f"decision {decision!r}: use one of {', '.join(DECISIONS)}")
        if decision not in task.options.get("decisions", DECISIONS):
            raise BadArguments(f"task {task.id} does not allow {decision!r}; allowed: "
                               f"{', '.join(task.options['decisions'])}")
        if decision == "value":
            value = coerce_value(task.result_kind, value, task.options.get("signature", ""))
        elif value is not None:
            raise BadArguments(f"a value goes with decision 'value', not {decision!r}")
        return self._settle(task, decision, value, who or whoami(), why)

    def withdraw(self, task_id: str, reason: str) -> dict[str, Any]:
        """Cancel a task (the cascade no longer needs it); fails if it was answered first."""
        return self._settle(self.get(task_id), "withdrawn", None, "cascade", reason)

    def expire(self, task_id: str, force: bool = False) -> dict[str, Any]:
        """Settle a task whose deadline passed (or now, with ``force``: the waiter's own
        deadline came first); returns the answer that stands: one that got in first wins."""
        task = self.get(task_id)
        if task.answer is not None:
            return task.answer
        if task.status != "expired" and not force:
            raise BadArguments(f"task {task.id} is not past its deadline")
        try:
            return self._settle(task, "expired", None, "timeout", "no answer before the deadline")
        except TaskClosed:
            return self.get(task_id).answer or {}

    @guarded
    def _settle(self, task: Task, decision: str, value: Any, who: str, why: str) -> dict[str, Any]:
        answer = {"task": task.id, "decision": decision, "value": value, "who": who, "why": why,
                  "answered_at": _now_iso()}
        if create_exclusive(self.fs, self._answer_path(task.id), json.dumps(answer, indent=1).encode()):
            return answer
        raise self._closed(self.get(task.id))

    @staticmethod
    def _closed(task: Task) -> TaskClosed:
        first = task.answer
        if first is None:  # past the deadline, not settled yet
            return TaskClosed(f"task {task.id} expired at {_now_iso(task.deadline)} without an answer; "
                              f"its timeout outcome ({task.timeout_outcome}) applies")
        what = {"withdrawn": "withdrawn", "expired": "expired"}.get(first.get("decision", ""), "answered")
        detail = f" ({first.get('decision')}{': ' + first['why'] if first.get('why') else ''})"
        return TaskClosed(f"task {task.id} was already {what} by {first.get('who', '?')} at "
                          f"{first.get('answered_at', '?')}{detail}; the first answer stands")

    @guarded
    def delete(self, task_id: str) -> None:
        """Remove a task and its answer (housekeeping)."""
        task_id = self.resolve(task_id)
        for path in (self._answer_path(task_id), self._task_path(task_id)):
            if self.fs.exists(path):
                self.fs.rm_file(path)


__all__ = ["DECISIONS", "STATUSES", "TIMEOUT_OUTCOMES", "Task", "TaskClosed", "TaskNotFound",
           "TaskQueue", "coerce_value", "from_json", "whoami"]
