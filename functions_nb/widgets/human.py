"""``fx.human.widget()``: the pending human tasks of a store, as a view.

Displayed, it is one static HTML output (each task's function, input, what failed, the
proposed output, the question, and how to answer it) that a saved notebook still shows after
a reopen or in nbconvert. While the kernel runs, a daemon thread re-reads the store every
``interval`` seconds and replaces that output in place when the pending tasks change (an answer
from this process updates it at once). ``view.widget`` is the interactive panel (a value field
and *Submit value* / *Approve* / *Reject* per task, *who*, *why*, *Refresh*), for the running
kernel only.
"""

from __future__ import annotations

import datetime as _dt
import json
import threading
from dataclasses import dataclass
from typing import Any

from ..errors import BadArguments, FunctionsError, ToolchainMissing
from ..storage.tasks import DECISIONS, Task
from .base import LiveRefresh, View, esc
from .functions import CSS


@dataclass
class TaskRow:
    """The controls of one task in the panel."""

    task: Task
    box: Any
    value: Any  # Text
    submit: Any  # Button
    approve: Any
    reject: Any


def parse_value(task: Task, text: str) -> Any:
    """What a person typed: text as is for text results, else JSON when it parses."""
    if not text.strip():
        raise BadArguments(f"task {task.id}: enter a value first")
    if task.result_kind in ("str", "bytes"):
        return text
    try:
        return json.loads(text)
    except json.JSONDecodeError:
        return text  # "42" style text is coerced, garbage is refused with the signature


def _failed(task: Task) -> str:
    return "; ".join(f"{f.get('tier')}: {f.get('error')}" for f in task.failures) or "—"


def task_html(task: Task) -> str:
    """One pending task as static HTML."""
    proposed = "" if task.proposed is None else (
        f"<div><b>proposed:</b> <code>{esc(json.dumps(task.proposed))}</code></div>")
    signature = task.options.get("signature", "")
    return (f'<div class="fnb-task" data-task-id="{esc(task.id)}" style="border-left:3px solid '
            f'var(--jp-warn-color1,#ef6c00);padding:2px 8px;margin:4px 0">'
            f"<div><b>{esc(task.function)}</b> <code>{esc(signature)}</code> "
            f'<span class="fnb-muted">· task <code>{esc(task.id)}</code> · since '
            f"{esc(task.created_at[:19])}</span></div>"
            f"<div><b>input:</b> <code>{esc(json.dumps(task.args))}</code></div>"
            f"<div><b>what failed:</b> {esc(_failed(task))}</div>{proposed}"
            f'<pre style="white-space:pre-wrap;margin:2px 0">{esc(task.question)}</pre>'
            f'<div class="fnb-muted">answer: <code>fx.human.answer("{esc(task.id)}", value)</code>'
            f", the Functions sidebar, or <code>func human answer {esc(task.id)} --value …</code>"
            f"</div></div>")


class HumanTasksView(LiveRefresh, View):
    """Pending human tasks of ``desk`` (a :class:`~functions_nb.cascade.human.HumanDesk`);
    ``live=False`` for no background refresh."""

    def __init__(self, desk: Any, *, live: bool = True, interval: float = 3.0) -> None:
        super().__init__()
        self.desk = desk
        self.live = live
        self.interval = interval
        self._lock = threading.RLock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.tasks: list[Task] = []
        self.updated = _dt.datetime.now(_dt.UTC)
        self._load()

    def __repr__(self) -> str:
        lines = [f"HumanTasksView({len(self.tasks)} pending)"]
        for t in self.tasks:
            question = t.question.splitlines()[0] if t.question else ""
            lines.append(f"  {t.id} {t.function}({json.dumps(t.args)}): {question}")
        return "\n".join(lines)

    # data ---------------------------------------------------------------------------
    def _load(self) -> None:
        self.tasks = self.desk.tasks.list("pending")
        self.updated = _dt.datetime.now(_dt.UTC)

    def refresh(self) -> HumanTasksView:
        """Re-read the pending tasks and update the output (and the panel, if built)."""
        with self._lock:
            self._load()
            self.update()
        return self

    def poll(self) -> bool:
        """Refresh only if the pending tasks changed; returns whether they did."""
        with self._lock:
            tasks = self.desk.tasks.list("pending")
            if [t.id for t in tasks] == [t.id for t in self.tasks]:
                return False
            self.tasks = tasks
            self.updated = _dt.datetime.now(_dt.UTC)
            self.update()
            return True

    # rendering ----------------------------------------------------------------------
    def html(self) -> str:
        if self.tasks:
            body = "".join(task_html(t) for t in self.tasks)
        else:
            body = '<div class="fnb-muted">No pending tasks.</div>'
        return (f'{CSS}<div class="fnb-view fnb-human"><b>Human tasks</b> '
                f'<span class="fnb-muted">({len(self.tasks)} pending)</span>{body}'
                f'<div class="fnb-muted">updated {self.updated:%H:%M:%S} UTC</div></div>')

    def build(self) -> Any:
        panel = _panel_class()(self)
        if self.live:
            self.start()
        return panel

    def update_widget(self) -> None:
        if self._widget is not None:
            self._widget.show(self.tasks)

    def close(self) -> None:
        """Stop the live thread and close the panel, if built."""
        self._stop.set()
        if self._widget is not None:
            self._widget.close()


_PANEL: type | None = None


def _panel_class() -> type:
    """The ipywidgets panel class (ipywidgets is imported only when a panel is asked for)."""
    global _PANEL
    if _PANEL is not None:
        return _PANEL
    try:
        import ipywidgets as w
    except ImportError:
        raise ToolchainMissing("ipywidgets is needed for the human task panel: "
                               "pip install 'functions-nb[notebook]'") from None

    class HumanPanel(w.VBox):
        """Pending tasks with controls; ``rows`` maps task ids to their :class:`TaskRow`."""

        def __init__(self, view: HumanTasksView) -> None:
            self.view = view
            self.who = w.Text(value="", placeholder="who (default: your login)", description="who")
            self.why = w.Text(value="", placeholder="why (recorded with the answer)", description="why")
            self.refresh_button = w.Button(description="Refresh", icon="refresh")
            self.refresh_button.on_click(lambda _b: self.view.refresh())
            self.message = w.HTML("")
            self.list_box = w.VBox([])
            self.rows: dict[str, TaskRow] = {}
            super().__init__([w.HTML("<b>Human tasks</b>"),
                              w.HBox([self.who, self.why, self.refresh_button]),
                              self.message, self.list_box])
            self.show(view.tasks)

        def show(self, pending: list[Task]) -> None:
            """Show ``pending``; rows still pending keep what was typed into them."""
            if [t.id for t in pending] == list(self.rows) and self.list_box.children:
                return
            self.rows = {t.id: self.rows.get(t.id) or self._row(t) for t in pending}
            self.list_box.children = [r.box for r in self.rows.values()] or \
                [w.HTML("<i class='fnb-muted'>no pending tasks</i>")]

        def close(self) -> None:
            self.view.stop()
            super().close()

        def _row(self, task: Task) -> TaskRow:
            info = w.HTML(task_html(task))
            value = w.Text(placeholder=f"value ({task.options.get('result_type', 'JSON')})")
            submit = w.Button(description="Submit value", button_style="primary")
            approve = w.Button(description="Approve", button_style="success")
            reject = w.Button(description="Reject", button_style="danger")
            allowed = task.options.get("decisions", DECISIONS)
            submit.disabled, approve.disabled, reject.disabled = (
                "value" not in allowed, "approve" not in allowed, "reject" not in allowed)
            submit.on_click(lambda _b: self._act(task, "value"))
            approve.on_click(lambda _b: self._act(task, "approve"))
            reject.on_click(lambda _b: self._act(task, "reject"))
            box = w.VBox([info, w.HBox([value, submit, approve, reject])],
                         layout=w.Layout(border="var(--jp-border-width, 1px) solid var(--jp-border-color2)",
                                         padding="4px", margin="2px 0"))
            return TaskRow(task, box, value, submit, approve, reject)

        def _act(self, task: Task, decision: str) -> None:
            desk = self.view.desk
            who, why = self.who.value.strip() or None, self.why.value.strip()
            try:
                if decision == "value":
                    answer = desk.answer(task.id, parse_value(task, self.rows[task.id].value.value),
                                         who=who, why=why)
                elif decision == "approve":
                    answer = desk.approve(task.id, who=who, why=why)
                else:
                    answer = desk.reject(task.id, why, who=who)
                self.message.value = (f"<span style='color:var(--jp-success-color1)'>task "
                                      f"{esc(task.id)}: {answer['decision']} by "
                                      f"{esc(answer['who'])}</span>")
            except FunctionsError as exc:
                self.message.value = f"<span style='color:var(--jp-error-color1)'>{esc(exc)}</span>"
            self.view.refresh()

    _PANEL = HumanPanel
    return HumanPanel


__all__ = ["HumanTasksView", "TaskRow", "parse_value", "task_html"]
