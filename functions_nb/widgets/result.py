"""The result of one invocation: value, function@version, tier, status, timings, cold/warm,
console lines coloured by level and, for a cascade, the attempt timeline.

``ResultView(obj)`` accepts an :class:`~functions_nb.models.Execution` (``fx.run``), a
:class:`~functions_nb.cascade.engine.CascadeResult` (``fx.cascade``) or a
:class:`~functions_nb.errors.CascadeExhaustedError` (its ``.attempts``); any other object is
shown as a plain value. A cascade carries no function name, console or cold/warm flag: pass
``target="name@version"`` and/or ``fx`` (the client) to fill them from the history. A human
tier's ``Pending`` handle shows its status and the attempts so far.
"""

from __future__ import annotations

import datetime as _dt
import re
from dataclasses import dataclass, field
from typing import Any

from .base import LEVEL_COLOURS, STATUS_COLOURS, Markup, View, esc
from .svg import Span, fmt_ms, timeline

#: Attempt status (cascade) -> execution status (history, colours).
ATTEMPT_STATUS = {"completed": "ok", "failed": "error", "timeout": "timeout",
                  "skipped": "skipped", "cancelled": "aborted", "pending": "pending"}
#: The first line of a CascadeExhaustedError names its target: ``"boom@1: every tier failed"``.
_TARGET_RE = re.compile(r"^([A-Za-z][A-Za-z0-9_]*@\d+):")
#: Longest value repr shown.
VALUE_CHARS = 300
_BOX = ("font-family:var(--jp-ui-font-family, sans-serif);font-size:var(--jp-ui-font-size1, 13px);"
        "color:var(--jp-ui-font-color1, inherit)")
_MONO = "font-family:var(--jp-code-font-family, monospace);font-size:var(--jp-code-font-size, 12px)"


def truncate(text: str, limit: int = VALUE_CHARS) -> str:
    """``text`` cut to ``limit`` characters, saying how long it was."""
    if len(text) <= limit:
        return text
    return f"{text[:limit]}… ({len(text)} chars)"


def status_badge(status: str) -> Markup:
    colour = STATUS_COLOURS.get(status, "inherit")
    return Markup(f'<span class="fnb-status" style="color:{colour};font-weight:600">{esc(status)}</span>')


def console_html(lines: list[tuple[str, str, float]], *, limit: int = 500) -> str:
    """Console lines, one per row, coloured by level (``LEVEL_COLOURS``)."""
    if not lines:
        return ""
    rows = []
    for level, message, ts in lines[:limit]:
        colour = LEVEL_COLOURS.get(level, "inherit")
        when = _dt.datetime.fromtimestamp(ts).strftime("%H:%M:%S.%f")[:-3] if ts else ""
        rows.append(f'<div class="fnb-line fnb-{esc(level)}" style="color:{colour};white-space:pre-wrap">'
                    f'<span style="opacity:0.6">{esc(when)}</span> '
                    f'<span class="fnb-level">{esc(level.upper()):<5}</span> {esc(message)}</div>')
    if len(lines) > limit:
        rows.append(f'<div style="opacity:0.6">… {len(lines) - limit} more lines</div>')
    return (f'<div class="fnb-console" style="{_MONO};border-left:3px solid '
            f'var(--jp-border-color2, #e0e0e0);padding:2px 6px;margin:4px 0">{"".join(rows)}</div>')


@dataclass
class Outcome:
    """What a result view shows, whatever object it came from."""

    kind: str  # execution | cascade | exhausted | pending | value
    value: Any = None
    has_value: bool = False
    target: str = ""
    tier: str = ""
    status: str = ""
    duration_ms: float | None = None
    queue_ms: float | None = None
    cold: bool | None = None
    error: str = ""
    console: list[tuple[str, str, float]] = field(default_factory=list)
    attempts: list[Any] = field(default_factory=list)
    #: Attempt execution id -> start offset in ms (from the history, when known).
    offsets: dict[str, float] = field(default_factory=dict)
    cascade_id: str = ""
    #: A remark that is not an error (a human task waiting for its answer).
    note: str = ""
    execution_id: str = ""
    memory_bytes: int | None = None


def _is_execution(obj: Any) -> bool:
    """An :class:`~functions_nb.models.Execution`, recognised by its fields (``models`` shows
    itself through this module, so this module does not import it)."""
    return all(hasattr(obj, a) for a in ("id", "function", "version", "status", "value",
                                         "error", "queue_ms", "cold", "console"))


def outcome_of(obj: Any, target: str | None = None) -> Outcome:
    """Normalise an Execution, CascadeResult, CascadeExhaustedError or value."""
    from ..errors import CascadeExhaustedError

    if _is_execution(obj):
        return Outcome("execution", value=obj.value, has_value=obj.error is None,
                       target=f"{obj.function}@{obj.version}", tier="code", status=obj.status,
                       duration_ms=obj.duration_ms, queue_ms=obj.queue_ms, cold=obj.cold,
                       error=str(obj.error) if obj.error is not None else "", console=list(obj.console),
                       execution_id=obj.id, memory_bytes=obj.memory_bytes)
    if isinstance(obj, CascadeExhaustedError):
        m = _TARGET_RE.match(str(obj))
        attempts = list(obj.attempts)
        return Outcome("exhausted", target=target or (m.group(1) if m else ""),
                       tier=next((a.tier for a in reversed(attempts) if a.status != "skipped"), ""),
                       status="error",
                       duration_ms=sum(a.duration_ms for a in attempts),
                       error=str(obj).split("\n", 1)[0], attempts=attempts)
    if hasattr(obj, "attempts") and hasattr(obj, "tier") and hasattr(obj, "cascade_id"):
        return Outcome("cascade", value=obj.value, has_value=True, target=target or "", tier=obj.tier,
                       status="ok", duration_ms=getattr(obj, "duration_ms", None),
                       attempts=list(obj.attempts), cascade_id=obj.cascade_id)
    if hasattr(obj, "task_id") and hasattr(obj, "attempts"):  # a human-tier Pending handle
        status = getattr(obj, "status", "pending")
        return Outcome("pending", target=target or str(getattr(obj, "function", "")), tier="human",
                       status="pending" if status == "pending" else str(status),
                       note=f"waiting for a person: task {obj.task_id}" if status == "pending" else "",
                       attempts=list(obj.attempts))
    return Outcome("value", value=obj, has_value=True, target=target or "")


def _missing(value: Any) -> bool:
    import pandas as pd

    return value is None or bool(pd.isna(value))


def enrich(outcome: Outcome, fx: Any) -> None:
    """Fill a cascade's target, console lines, cold/warm, queue time and attempt start times
    from the history of ``fx`` (by the attempts' execution ids)."""
    ids = [a.execution_id for a in outcome.attempts if getattr(a, "execution_id", None)]
    if not ids or fx is None:
        return
    quoted = ", ".join("'" + str(i).replace("'", "''") + "'" for i in ids)
    rows = fx.sql("SELECT id, function, version, tier, epoch_us(started_at) / 1e6 AS t, queue_ms, "
                  f"cold, status FROM executions WHERE id IN ({quoted})")
    if rows.empty:
        return
    by_id = {r.id: r for r in rows.itertuples(index=False)}
    first = min(rows["t"])
    outcome.offsets = {i: (float(by_id[i].t) - first) * 1000 for i in ids if i in by_id}
    any_row = next(iter(by_id.values()))
    outcome.target = outcome.target or f"{any_row.function}@{int(any_row.version)}"
    final = by_id.get(ids[-1])
    if final is not None:
        outcome.cold = None if _missing(final.cold) else bool(final.cold)
        outcome.queue_ms = None if _missing(final.queue_ms) else float(final.queue_ms)
    lines = fx.sql("SELECT c.level, c.message, c.ts AS t FROM (SELECT console FROM executions "
                   f"WHERE id IN ({quoted})) e, unnest(e.console) AS u(c) ORDER BY c.ts")
    outcome.console = [(r.level, r.message, float(r.t)) for r in lines.itertuples(index=False)]


def attempt_spans(outcome: Outcome) -> list[Span]:
    """One timeline bar per attempt: sequential offsets, or the recorded start times."""
    spans = []
    cursor = 0.0
    for a in outcome.attempts:
        status = ATTEMPT_STATUS.get(a.status, a.status)
        start = outcome.offsets.get(a.execution_id or "", cursor)
        why = a.error or a.reason or ""
        tooltip = f"{a.tier}#{a.attempt} {a.status} {fmt_ms(a.duration_ms)}" + (f": {why}" if why else "")
        spans.append(Span(f"{a.tier}#{a.attempt}", start, a.duration_ms,
                          STATUS_COLOURS.get(status, "inherit"),
                          f"{a.status} {fmt_ms(a.duration_ms)}", tooltip))
        cursor = max(cursor, start + a.duration_ms)
    return spans


class ResultView(View):
    """One invocation's outcome (see the module docstring). ``refresh()`` re-reads the
    history when ``fx`` was given."""

    def __init__(self, obj: Any, *, target: str | None = None, fx: Any = None,
                 value_chars: int = VALUE_CHARS, show_value: bool = True,
                 show_error: bool = True) -> None:
        super().__init__()
        self.obj = obj
        self.fx = fx
        self.value_chars = value_chars
        #: False when the value or the error is shown elsewhere (``%invoke`` returns the value
        #: as the cell's ``Out`` and raises the error): each is shown once.
        self.show_value = show_value
        self.show_error = show_error
        self._target = target
        self.outcome = outcome_of(obj, target)
        #: The widget's parts once built: header, console, timeline (ipywidgets.HTML).
        self.parts: dict[str, Any] = {}
        if fx is not None:
            self._enrich()

    def _enrich(self) -> None:
        try:
            enrich(self.outcome, self.fx)
        except Exception:  # noqa: BLE001 - the result stands without its history
            pass

    def __repr__(self) -> str:
        return self.text()

    def text(self) -> str:
        """Plain text (``text/plain``: terminals, logs): console lines, attempts, a summary."""
        o = self.outcome
        lines = [f"[{level}] {message}" for level, message, _ts in o.console]
        for a in o.attempts:
            why = a.reason or a.error or ""
            lines.append(f"  {a.tier}#{a.attempt} {a.status} {a.duration_ms:.1f} ms"
                         + (f" · {why}" if why else ""))
        target = o.target or "result"
        if o.kind == "execution":
            mem = f" · {o.memory_bytes / 1048576:.1f} MB" if o.memory_bytes else ""
            lines.append(f"{target} · {o.status} · {o.duration_ms:.3f} ms · {'cold' if o.cold else 'warm'}"
                         f"{mem} · id {o.execution_id}")
        elif o.kind == "cascade":
            lines.append(f"{target} · answered by the {o.tier} tier · {o.duration_ms or 0:.1f} ms")
        elif o.kind == "pending":
            lines.append(f"{target} · {o.note or o.status}")
        elif o.kind == "exhausted":
            lines.append(f"{target} · {o.status}")
        if o.error and self.show_error:
            lines.append(f"error: {o.error}")
        if o.has_value and self.show_value:
            lines.append(f"value: {self.value_text()}")
        return "\n".join(lines)

    # -- pieces ----------------------------------------------------------------------
    def value_text(self) -> str:
        o = self.outcome
        if not o.has_value:
            return "(no value)"
        return truncate(repr(o.value), self.value_chars)

    def header_html(self) -> str:
        o = self.outcome
        cells = []
        if o.target:
            cells.append(f'<b class="fnb-target">{esc(o.target)}</b>')
        if o.tier:
            cells.append(f'tier <b>{esc(o.tier)}</b>')
        if o.status:
            cells.append(status_badge(o.status))
        if o.duration_ms is not None:
            cells.append(f"duration {esc(fmt_ms(o.duration_ms))}")
        if o.queue_ms is not None:
            cells.append(f"queue {esc(fmt_ms(o.queue_ms))}")
        if o.cold is not None:
            cells.append(f'<span class="fnb-cold">{"cold" if o.cold else "warm"}</span>')
        if o.attempts:
            cells.append(f"{len(o.attempts)} attempt{'s' * (len(o.attempts) != 1)}")
        sep = ' <span style="opacity:0.5">·</span> '
        value = (f'<div class="fnb-value" style="{_MONO};white-space:pre-wrap;margin-top:2px">'
                 f'{esc(self.value_text())}</div>') if o.has_value and self.show_value else ""
        error = (f'<div class="fnb-error" style="color:{LEVEL_COLOURS["error"]};white-space:pre-wrap">'
                 f'{esc(o.error)}</div>') if o.error and self.show_error else ""
        note = f'<div class="fnb-note" style="opacity:0.75">{esc(o.note)}</div>' if o.note else ""
        return f'<div class="fnb-head">{sep.join(cells)}</div>{value}{error}{note}'

    def timeline_svg(self) -> str:
        if not self.outcome.attempts:
            return ""
        return timeline(attempt_spans(self.outcome), title="attempts")

    def html(self) -> str:
        return (f'<div class="fnb-result" style="{_BOX}">{self.header_html()}'
                f'{console_html(self.outcome.console)}{self.timeline_svg()}</div>')

    # -- widget ------------------------------------------------------------------------
    def build(self) -> Any:
        import ipywidgets as w

        self.parts = {"header": w.HTML(), "console": w.HTML(), "timeline": w.HTML()}
        box = w.VBox(list(self.parts.values()), layout=w.Layout(width="auto"))
        box.add_class("fnb-result")
        self._widget = box
        self.update_widget()
        return box

    def update_widget(self) -> None:
        if not self.parts:
            return
        self.parts["header"].value = f'<div style="{_BOX}">{self.header_html()}</div>'
        self.parts["console"].value = console_html(self.outcome.console)
        self.parts["timeline"].value = self.timeline_svg()
        for name in ("console", "timeline"):
            self.parts[name].layout.display = None if self.parts[name].value else "none"

    def refresh(self) -> ResultView:
        if self.fx is not None:
            self.outcome = outcome_of(self.obj, self._target)
            self._enrich()
        self.update()
        return self


__all__ = ["ResultView", "console_html", "outcome_of"]
