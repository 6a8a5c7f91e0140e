"""``%functions``: one row per deployed function with its history statistics and breaker state.

The statistics come from one DuckDB query over ``executions`` (all versions of each function,
or only the latest with ``latest_only=True``), with the definitions of
:mod:`functions_nb.history_queries` (the same numbers as ``%fn_metrics`` and the REST API):
*calls* (ended, not caller mistakes; rejected calls count), *caller mistakes* (bad arguments,
unknown function: shown apart, not as errors), *error rate* (calls not ``ok`` / calls),
*p50 / p95* (over the calls that ran, not rejected ones), *last status / last call* (the
newest call across tiers).

The breaker column is the state of the latest version's breaker in this process (``closed``
when the version has no breaker yet). The live widget sorts with a dropdown and an
ascending/descending toggle and re-queries with *Refresh*; the static HTML is the same table.
"""

from __future__ import annotations

import datetime as _dt
import math
import threading
from typing import Any

from ..history_queries import function_stats, of_functions, of_versions
from .base import STATUS_COLOURS, Markup, View, esc, table_html

#: Sort keys: dropdown label -> row field.
SORT_KEYS = {"name": "name", "language": "language", "calls": "calls",
             "error rate": "error_rate", "caller mistakes": "caller_errors", "p50": "p50_ms",
             "p95": "p95_ms"}
#: Table columns: heading -> row field it shows (and sorts by, when it is a sort key).
COLUMNS = {"function": "name", "version": "version", "language": "language", "calls": "calls",
           "error rate": "error_rate", "caller mistakes": "caller_errors", "p50": "p50_ms",
           "p95": "p95_ms", "last status": "last_status", "last call": "last_call", "breaker": "breaker"}

#: Table look, scoped to functions-nb views; JupyterLab variables with light-theme fallbacks.
CSS = """<style>
.fnb-view{font-family:var(--jp-ui-font-family,sans-serif);font-size:var(--jp-ui-font-size1,13px);
  color:var(--jp-ui-font-color1,#212121)}
.fnb-view table.fnb-table{border-collapse:collapse;margin:2px 0}
.fnb-view .fnb-table caption{text-align:left;font-weight:600;padding:2px 0;
  color:var(--jp-ui-font-color1,#212121)}
.fnb-view .fnb-table th,.fnb-view .fnb-table td{padding:2px 10px;text-align:left;
  border-bottom:1px solid var(--jp-border-color2,#e0e0e0);white-space:nowrap}
.fnb-view .fnb-table th{font-weight:600;border-bottom:1px solid var(--jp-border-color1,#bdbdbd);
  background:var(--jp-layout-color2,#eeeeee)}
.fnb-view .fnb-table tbody tr:hover{background:var(--jp-layout-color2,#eeeeee)}
.fnb-view .fnb-num{font-variant-numeric:tabular-nums}
.fnb-view .fnb-muted{color:var(--jp-ui-font-color2,#757575)}
</style>"""


def format_ms(value: float | None) -> str:
    """Milliseconds with 3 significant digits: ``0.0123 ms``, ``1.23 ms``, ``123 ms``, ``1230 ms``."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "—"
    if value == 0:
        return "0 ms"
    digits = 2 - math.floor(math.log10(abs(value)))
    rounded = round(value, digits)
    if rounded and math.floor(math.log10(abs(rounded))) != math.floor(math.log10(abs(value))):
        digits -= 1  # 9.996 -> 10.0, not 10.00
    return f"{rounded:.{max(digits, 0)}f} ms"


def format_rate(rate: float | None) -> str:
    """A share as a percentage with one decimal (``—`` without calls)."""
    return "—" if rate is None else f"{rate:.1%}"


def format_time(value: Any) -> str:
    """A UTC timestamp (datetime, pandas Timestamp or unix seconds) as ``YYYY-MM-DD HH:MM:SS``."""
    if value is None:
        return "—"
    if isinstance(value, (int, float)):
        value = _dt.datetime.fromtimestamp(value, _dt.UTC)
    return value.strftime("%Y-%m-%d %H:%M:%S")


def badge(state: str | None) -> Markup:
    """A state or status, coloured (``STATUS_COLOURS``)."""
    if not state:
        return Markup('<span class="fnb-muted">—</span>')
    colour = STATUS_COLOURS.get(state, "inherit")
    return Markup(f'<span style="color:{colour};font-weight:600">● {esc(state)}</span>')


def num(text: str) -> Markup:
    return Markup(f'<span class="fnb-num">{esc(text)}</span>')


def sort_rows(rows: list[dict[str, Any]], field: str, descending: bool = False) -> list[dict[str, Any]]:
    """Rows ordered by ``field``; ties by name; rows without a value always last."""
    by_name = sorted(rows, key=lambda r: (str(r["name"]).lower(), r["name"]))
    present = [r for r in by_name if r.get(field) is not None]
    missing = [r for r in by_name if r.get(field) is None]

    def key(row: dict[str, Any]) -> Any:
        value = row[field]
        return value.lower() if isinstance(value, str) else value

    present.sort(key=key, reverse=descending)  # stable: ties keep name order
    return present + missing


class FunctionsTable(View):
    """Every deployed function: language, latest version, calls, error rate, p50/p95 latency,
    last status and call, breaker state. ``FunctionsTable(fx, sort="error rate", descending=True)``.
    """

    def __init__(self, fx: Any, *, sort: str = "name", descending: bool = False,
                 latest_only: bool = False) -> None:
        super().__init__()
        self.fx = fx
        self.latest_only = latest_only
        self.sort_key = self._field(sort)
        self.descending = descending
        self.rows: list[dict[str, Any]] = []
        self.updated: _dt.datetime | None = None
        self._syncing = False
        self._lock = threading.RLock()
        self._load()

    def __repr__(self) -> str:
        lines = [f"FunctionsTable({len(self.rows)} functions, sorted by {self.sort_key}"
                 f"{' descending' if self.descending else ''})"]
        for r in self.rows:
            calls = f"{r['calls']} call" + ("s" if r["calls"] != 1 else "")
            lines.append(f"  {r['name']}@{r['version']} {r['language']}: {calls}, "
                         f"{format_rate(r['error_rate'])} errors, {r['caller_errors']} caller "
                         f"mistakes, p50 {format_ms(r['p50_ms'])}, "
                         f"p95 {format_ms(r['p95_ms'])}, breaker {r['breaker']}")
        return "\n".join(lines)

    # data ---------------------------------------------------------------------------
    @staticmethod
    def _field(key: str) -> str:
        if key in SORT_KEYS:
            return SORT_KEYS[key]
        if key in SORT_KEYS.values():
            return key
        raise ValueError(f"cannot sort by {key!r}: one of {', '.join(SORT_KEYS)}")

    def where(self, infos: list[Any]) -> str:
        """Which records the statistics cover: every version, or the latest ones."""
        if self.latest_only:
            return of_versions((i.name, int(i.version)) for i in infos)
        return of_functions(i.name for i in infos)

    def _stats(self, infos: list[Any]) -> dict[str, dict[str, Any]]:
        if not infos or getattr(self.fx, "history", True) is None:
            return {}
        return function_stats(self.fx.sql, self.where(infos))

    def _breaker_state(self, name: str, version: int) -> str:
        breaker = self.fx.loader.breaker(name, version)
        return "closed" if breaker is None else breaker.state

    def _load(self) -> None:
        infos = list(self.fx.list())
        stats = self._stats(infos)
        rows = []
        for info in infos:
            s = stats.get(info.name, {})
            rows.append({"name": info.name, "version": int(info.version), "language": info.language,
                         "calls": s.get("count", 0), "errors": s.get("errors", 0),
                         "caller_errors": s.get("caller_errors", 0),
                         "error_rate": s.get("error_rate"),
                         "p50_ms": s.get("p50"), "p95_ms": s.get("p95"),
                         "last_status": s.get("last_status"), "last_call": s.get("last_at"),
                         "breaker": self._breaker_state(info.name, int(info.version))})
        self.rows = sort_rows(rows, self.sort_key, self.descending)
        self.updated = _dt.datetime.now(_dt.UTC)

    def refresh(self) -> FunctionsTable:
        """Re-query the store and the history, then update the widget."""
        with self._lock:
            self._load()
            self.update()
        return self

    def sort(self, key: str, descending: bool = False) -> FunctionsTable:
        """Order the rows by ``key`` (a dropdown label such as ``"error rate"`` or a field such
        as ``"error_rate"``); the widget's controls follow."""
        with self._lock:
            self.sort_key = self._field(key)
            self.descending = bool(descending)
            self.rows = sort_rows(self.rows, self.sort_key, self.descending)
            self.update()
        return self

    # rendering ----------------------------------------------------------------------
    def _cells(self, row: dict[str, Any]) -> list[Any]:
        return [Markup(f"<b>{esc(row['name'])}</b>"), num(str(row["version"])), row["language"],
                num(str(row["calls"])), num(format_rate(row["error_rate"])),
                num(str(row["caller_errors"])),
                num(format_ms(row["p50_ms"])), num(format_ms(row["p95_ms"])),
                badge(row["last_status"]), num(format_time(row["last_call"])),
                badge(row["breaker"])]

    def table(self) -> str:
        arrow = " ▼" if self.descending else " ▲"
        heads = [h + (arrow if field == self.sort_key or (h == "function" and self.sort_key == "name")
                      else "") for h, field in COLUMNS.items()]
        if not self.rows:
            return ('<div class="fnb-view fnb-functions"><span class="fnb-muted">No functions '
                    "deployed yet: <code>%%function LANGUAGE NAME</code> deploys one.</span></div>")
        body = table_html(heads, [self._cells(r) for r in self.rows])
        when = f" · last call times in UTC · updated {self.updated:%H:%M:%S}" if self.updated else ""
        return (f'<div class="fnb-view fnb-functions">{body}<div class="fnb-muted">'
                f"{len(self.rows)} function{'s' if len(self.rows) != 1 else ''}{esc(when)}</div></div>")

    def html(self) -> str:
        return CSS + self.table()

    def build(self) -> Any:
        import ipywidgets as w

        self.sort_dropdown = w.Dropdown(options=[(k, v) for k, v in SORT_KEYS.items()],
                                        value=self.sort_key, description="Sort by",
                                        layout=w.Layout(width="220px"))
        self.descending_toggle = w.ToggleButton(value=self.descending, tooltip="descending order",
                                                layout=w.Layout(width="130px"))
        self.refresh_button = w.Button(description="Refresh", icon="refresh",
                                       tooltip="query the history again",
                                       layout=w.Layout(width="110px"))
        self.table_view = w.HTML(self.html())
        self._sync_controls()
        self.sort_dropdown.observe(self._on_control, names="value")
        self.descending_toggle.observe(self._on_control, names="value")
        self.refresh_button.on_click(lambda _b: self.refresh())
        controls = w.HBox([self.sort_dropdown, self.descending_toggle, self.refresh_button])
        return w.VBox([controls, self.table_view])

    def _sync_controls(self) -> None:
        self._syncing = True
        try:
            self.sort_dropdown.value = self.sort_key
            self.descending_toggle.value = self.descending
            self.descending_toggle.description = "▼ descending" if self.descending else "▲ ascending"
        finally:
            self._syncing = False

    def _on_control(self, _change: dict[str, Any]) -> None:
        if not self._syncing:
            self.sort(self.sort_dropdown.value, self.descending_toggle.value)

    def update_widget(self) -> None:
        if self._widget is None:
            return
        self._sync_controls()
        self.table_view.value = self.html()
