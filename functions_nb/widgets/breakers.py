"""``%fn_breakers``: the circuit breaker of every function version loaded in this process.

One row per breaker (``name@version``): its state (closed / open / half_open, coloured), the
consecutive failures, how often it tripped, the time until an open breaker lets a probe
through, its last change and a *Reset* button (``breaker.reset()``: closed, failures
forgotten, "reset by hand" in the timeline). Below: the transition timeline of all breakers,
newest first. Once displayed, a daemon thread re-reads the breakers every ``interval`` seconds
(the countdown of an open breaker moves; a breaker tripped by calls elsewhere in the kernel
shows up) and updates the output (and the widget, if shown) only when something changed;
:meth:`BreakersView.stop` ends it.
"""

from __future__ import annotations

import datetime as _dt
import threading
from typing import Any

from .base import LiveRefresh, Markup, View, esc, table_html
from .functions import CSS, badge, format_time, num

#: Columns of the breaker table (the live grid adds the reset button).
COLUMNS = ["breaker", "state", "failures", "trips", "half-open in", "last change"]


def format_retry(row: dict[str, Any]) -> str:
    """Time until half-open: a countdown while open, what happens next otherwise."""
    if row["state"] == "open":
        return f"{row['retry_in']:.1f} s" if row["retry_in"] > 0 else "next call probes"
    if row["state"] == "half_open":
        return "probing"
    return "—"


def format_transition(t: dict[str, Any]) -> str:
    return f"{t['from']} → {t['to']}"


def _row(snapshot: dict[str, Any]) -> dict[str, Any]:
    name = str(snapshot["name"])
    function, _, version = name.rpartition("@")
    return {"breaker": name, "function": function, "version": int(version),
            "state": snapshot["state"], "failures": int(snapshot["failures"]),
            "successes": int(snapshot.get("successes", 0)), "trips": int(snapshot["trips"]),
            "retry_in": float(snapshot["retry_in"]),
            "transitions": [dict(t) for t in snapshot.get("transitions", [])]}


class BreakersView(LiveRefresh, View):
    """Circuit breakers of this process: ``BreakersView(fx)``, or ``BreakersView(fx, "boom")`` for
    one function's versions; ``live=False`` for no background countdown thread."""

    def __init__(self, fx: Any, name: str | None = None, *, live: bool = True,
                 interval: float = 1.0) -> None:
        super().__init__()
        self.fx = fx
        self.name = name
        self.live = live
        self.interval = interval
        self.rows: list[dict[str, Any]] = []
        self.updated: _dt.datetime | None = None
        self._buttons: dict[str, Any] = {}
        self._cells: dict[str, list[Any]] = {}
        self._header: list[Any] = []
        self._lock = threading.RLock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._load()

    def __repr__(self) -> str:
        lines = [f"BreakersView({len(self.rows)} breakers)"]
        lines += [f"  {r['breaker']}: {r['state']}, {r['failures']} failures, {r['trips']} trips, "
                  f"half-open in {format_retry(r)}" for r in self.rows]
        return "\n".join(lines)

    # data ---------------------------------------------------------------------------
    def _query(self) -> list[dict[str, Any]]:
        rows = [_row(s) for s in self.fx.loader.breakers()]
        if self.name is not None:
            rows = [r for r in rows if r["function"] == self.name]
        return sorted(rows, key=lambda r: (r["function"], r["version"]))

    def _load(self) -> None:
        self.rows = self._query()
        self.updated = _dt.datetime.now(_dt.UTC)

    def refresh(self) -> BreakersView:
        """Re-read every breaker and update the widget."""
        with self._lock:
            self._load()
            self.update()
        return self

    def poll(self) -> bool:
        """Refresh only if a breaker changed (an open one's countdown always does); returns
        whether it did."""
        with self._lock:
            rows = self._query()
            if rows == self.rows:
                return False
            self.rows = rows
            self.updated = _dt.datetime.now(_dt.UTC)
            self.update()
            return True

    def breaker(self, name: str) -> Any:
        """The :class:`~functions_nb.breaker.CircuitBreaker` named ``name@version``."""
        function, _, version = name.rpartition("@")
        return self.fx.loader.breaker(function, int(version))

    def reset(self, name: str) -> BreakersView:
        """Close breaker ``name@version`` now (what its Reset button does), then refresh."""
        breaker = self.breaker(name)
        if breaker is not None:
            breaker.reset()
        return self.refresh()

    def transitions(self) -> list[dict[str, Any]]:
        """Every breaker's transitions, newest first, each with its breaker's name."""
        items = [{"breaker": r["breaker"], **t} for r in self.rows for t in r["transitions"]]
        return sorted(items, key=lambda t: t["at"], reverse=True)

    # rendering ----------------------------------------------------------------------
    def _cells_of(self, row: dict[str, Any]) -> list[Any]:
        last = row["transitions"][-1] if row["transitions"] else None
        change = (Markup(f"{esc(format_transition(last))} <span class=\"fnb-muted\">"
                         f"{esc(format_time(last['at']))}</span>") if last else Markup(
                             '<span class="fnb-muted">never</span>'))
        return [Markup(f"<b>{esc(row['breaker'])}</b>"), badge(row["state"]),
                num(str(row["failures"])), num(str(row["trips"])), num(format_retry(row)), change]

    def table(self) -> str:
        if not self.rows:
            return ('<span class="fnb-muted">No circuit breakers yet: a function version gets one '
                    "when it is first invoked in this kernel.</span>")
        return table_html(COLUMNS, [self._cells_of(r) for r in self.rows], caption="Circuit breakers")

    def timeline(self) -> str:
        items = self.transitions()
        if not items:
            return '<div class="fnb-muted">No transitions yet.</div>'
        rows = [[num(format_time(t["at"])), t["breaker"],
                 Markup(f"{badge(t['from'])} → {badge(t['to'])}"), t["why"]] for t in items]
        return table_html(["time (UTC)", "breaker", "transition", "why"], rows,
                          caption="Transitions (newest first)")

    def html(self) -> str:
        return (f'{CSS}<div class="fnb-view fnb-breakers">{self.table()}{self.timeline()}'
                f'<div class="fnb-muted">updated {self.updated:%H:%M:%S} UTC</div></div>')

    @property
    def reset_buttons(self) -> dict[str, Any]:
        """``name@version`` -> its Reset button (builds the widget if needed)."""
        _ = self.widget
        return self._buttons

    def build(self) -> Any:
        import ipywidgets as w

        self.refresh_button = w.Button(description="Refresh", icon="refresh",
                                       tooltip="read the breakers again",
                                       layout=w.Layout(width="110px"))
        self.refresh_button.on_click(lambda _b: self.refresh())
        self.status = w.HTML()
        self.grid = w.GridBox(layout=w.Layout(grid_template_columns=f"repeat({len(COLUMNS) + 1}, auto)",
                                              grid_gap="0px 12px", align_items="center",
                                              width="max-content"))
        self.timeline_view = w.HTML()
        box = w.VBox([w.HBox([self.refresh_button, self.status]), self.grid, self.timeline_view])
        self._widget = box  # update_widget() below fills it
        self.update_widget()
        if self.live:
            self.start()
        return box

    def _button(self, name: str) -> Any:
        import ipywidgets as w

        button = self._buttons.get(name)
        if button is None:
            button = w.Button(description="Reset", icon="undo", tooltip=f"close {name} now",
                              layout=w.Layout(width="90px"))
            button.on_click(lambda _b, name=name: self.reset(name))
            self._buttons[name] = button
        return button

    def update_widget(self) -> None:
        if self._widget is None:
            return
        import ipywidgets as w

        with self._lock:
            children: list[Any] = []
            if self.rows:
                if not self._header:
                    self._header = [w.HTML(f'<b class="fnb-view">{esc(c)}</b>') for c in COLUMNS]
                    self._header.append(w.HTML(""))
                children = list(self._header)
            for row in self.rows:
                name = row["breaker"]
                cells = self._cells.get(name)
                if cells is None:
                    cells = self._cells[name] = [w.HTML() for _ in COLUMNS]
                for cell, value in zip(cells, self._cells_of(row), strict=True):
                    text = f'<span class="fnb-view">{value}</span>'
                    if cell.value != text:
                        cell.value = text
                button = self._button(name)
                button.disabled = row["state"] == "closed" and not row["failures"]
                children += [*cells, button]
            if list(self.grid.children) != children:
                self.grid.children = children
            empty = "" if self.rows else self.table()
            self.status.value = (f'{CSS}<span class="fnb-view fnb-muted">{empty} updated '
                                 f"{self.updated:%H:%M:%S} UTC</span>")
            timeline = f'<div class="fnb-view">{self.timeline()}</div>'
            if self.timeline_view.value != timeline:
                self.timeline_view.value = timeline

