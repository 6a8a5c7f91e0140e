"""Console lines and errors across executions, filtered by level, time and text, with a
live tail.

``LogsView(fx, name=None, level=None, since=None, text=None, limit=200, tail=False)`` queries
the console lines (the ``console`` view's rows) and the failed rows of ``executions`` (every
process that shares the store: kernels, the CLI, workers) and keeps the newest ``limit``
lines, newest last, in ``.rows``; the table shows them newest first, so the view opens at the
newest line. The widget has a level dropdown (minimum level), a text box
(case-insensitive substring), a "since" dropdown and a live-tail toggle: a daemon thread
re-queries every ``interval`` seconds while calls happen in the same kernel (``.stop()`` ends it).
"""

from __future__ import annotations

import datetime as _dt
import threading
import time
from typing import Any

from .base import LEVEL_COLOURS, View, esc

#: Console levels, lowest first (a level filter keeps this level and the ones after it).
LEVELS = ("debug", "log", "info", "warn", "error")
_ALIASES = {"all": "debug", "warning": "warn", "err": "error", "print": "log", "stdout": "log",
            "stderr": "error"}
#: Execution statuses shown as error lines.
FAILED = ("error", "timeout", "aborted", "rejected")
#: The "since" dropdown: label -> seconds ago ("all": no limit).
SINCE_CHOICES = (("5 min", 300.0), ("1 h", 3600.0), ("1 day", 86400.0), ("all", "all"))
_BOX = ("font-family:var(--jp-ui-font-family, sans-serif);font-size:var(--jp-ui-font-size1, 13px);"
        "color:var(--jp-ui-font-color1, inherit)")
_CELL = ("padding:1px 6px;text-align:left;vertical-align:top;"
         "border-bottom:1px solid var(--jp-border-color3, #eee)")


def normalise_level(level: str | None) -> str:
    """A level name from LEVELS (``None``/"all" -> "debug": everything)."""
    if level is None:
        return "debug"
    name = _ALIASES.get(str(level).lower(), str(level).lower())
    if name not in LEVELS:
        raise ValueError(f"unknown level {level!r}: expected one of {', '.join(LEVELS)}")
    return name


_UNITS = {"s": 1.0, "sec": 1.0, "m": 60.0, "min": 60.0, "h": 3600.0, "d": 86400.0}


def parse_since(since: Any) -> Any:
    """A "since" value with strings read as durations: ``"90"``/``"90s"``, ``"5m"``/``"5min"``,
    ``"1h"``, ``"1d"`` -> seconds; ``"all"``/``""`` -> None; other values unchanged."""
    if not isinstance(since, str):
        return since
    text = since.strip().lower().replace(" ", "")
    if text in ("", "all"):
        return None
    number = text.rstrip("abcdefghijklmnopqrstuvwxyz")
    unit = text[len(number):] or "s"
    try:
        return float(number) * _UNITS[unit]
    except (KeyError, ValueError):
        raise ValueError(f"since={since!r}: expected e.g. 30s, 5m, 1h, 1d, all") from None


def cutoff_of(since: Any, now: float | None = None) -> float | None:
    """Unix time from ``since``: seconds ago (a number, or a string such as ``"5m"``), a
    timedelta, a datetime (naive = local time), or None/"all" (no cutoff)."""
    now = time.time() if now is None else now
    since = parse_since(since)
    if since is None:
        return None
    if isinstance(since, _dt.datetime):
        return since.timestamp()
    if isinstance(since, _dt.timedelta):
        return now - since.total_seconds()
    if isinstance(since, (int, float)):
        return now - float(since)
    raise TypeError(f"since={since!r}: expected seconds ago, a timedelta, a datetime or None")


def _quote(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


def _rank(column: str) -> str:
    cases = " ".join(f"WHEN '{lv}' THEN {i}" for i, lv in enumerate(LEVELS))
    return f"CASE {column} {cases} ELSE 1 END"


def logs_query(name: str | None = None, level: str | None = None, cutoff: float | None = None,
               text: str | None = None, limit: int = 200) -> str:
    """DuckDB SQL for the newest ``limit`` lines (newest first) matching the filters.

    The console lines are the ``console`` view's rows, unnested here from ``executions`` with
    the function filter inside (DuckDB does not push a filter on the view down: ~10x slower
    over 1e6 executions)."""
    from ..models import parse_target

    where = ["TRUE"]
    if name:
        fn, version = parse_target(name)
        where.append(f"function = {_quote(fn)}" + (f" AND version = {int(version)}" if version else ""))
    scope = " AND ".join(where)
    failed = ", ".join(_quote(s) for s in FAILED)
    outer = [f"{_rank('level')} >= {LEVELS.index(normalise_level(level))}"]
    if cutoff is not None:
        outer.append(f"t >= {float(cutoff)!r}")
    if text:
        outer.append(f"strpos(lower(message), lower({_quote(text)})) > 0")
    return (
        "SELECT * FROM ("
        "SELECT c.ts AS t, e.id, e.function, e.version, e.tier, c.level, c.message, 'console' AS source "
        f"FROM (SELECT * FROM executions WHERE {scope} AND len(console) > 0) e, unnest(e.console) AS u(c) "
        "UNION ALL "
        "SELECT epoch_us(started_at) / 1e6 + coalesce(duration_ms, 0) / 1000 AS t, id, function, "
        "version, tier, 'error' AS level, "
        "coalesce(error_kind || ': ', '') || coalesce(error_message, status) AS message, "
        f"status AS source FROM executions WHERE status IN ({failed}) AND {scope}"
        f") WHERE {' AND '.join(outer)} ORDER BY t DESC, source LIMIT {int(limit)}")


def rows_of(frame: Any) -> list[dict[str, Any]]:
    """DataFrame rows (newest first) -> dicts, newest last, with ``time`` and ``target``."""
    rows = []
    for rec in reversed(frame.to_dict("records")):
        t = float(rec["t"])
        version = int(rec["version"]) if rec["version"] == rec["version"] else None
        rows.append({"t": t, "time": _dt.datetime.fromtimestamp(t).strftime("%Y-%m-%d %H:%M:%S.%f")[:-3],
                     "id": rec["id"], "function": rec["function"], "version": version,
                     "target": f"{rec['function']}@{version}", "tier": rec["tier"],
                     "level": rec["level"], "message": rec["message"], "source": rec["source"]})
    return rows


def rows_html(rows: list[dict[str, Any]]) -> str:
    """The rows (newest last) as a table that opens at the newest line: newest first, level and
    message coloured."""
    if not rows:
        return '<div class="fnb-empty" style="opacity:0.7;padding:4px">no log lines</div>'
    body = []
    for r in reversed(rows):
        colour = LEVEL_COLOURS.get(r["level"], "inherit")
        body.append(
            f'<tr class="fnb-{esc(r["level"])}" title="{esc(r["id"])}">'
            f'<td style="{_CELL};white-space:nowrap;opacity:0.7">{esc(r["time"][11:])}</td>'
            f'<td style="{_CELL};white-space:nowrap">{esc(r["target"])}</td>'
            f'<td style="{_CELL}">{esc(r["tier"])}</td>'
            f'<td style="{_CELL};color:{colour};font-weight:600">{esc(r["level"])}</td>'
            f'<td style="{_CELL};color:{colour};white-space:pre-wrap;font-family:'
            f'var(--jp-code-font-family, monospace)">{esc(r["message"])}</td></tr>')
    head = "".join(f'<th style="{_CELL}">{h}</th>' for h in ("time", "function", "tier", "level", "message"))
    return (f'<div style="max-height:420px;overflow:auto"><table class="fnb-table fnb-logs" '
            f'style="border-collapse:collapse;width:100%"><thead><tr>{head}</tr></thead>'
            f'<tbody>{"".join(body)}</tbody></table></div>')


class LogsView(View):
    """Console lines and errors across executions (see the module docstring)."""

    def __init__(self, fx: Any, name: str | None = None, level: str | None = None,
                 since: Any = None, text: str | None = None, limit: int = 200, tail: bool = False,
                 interval: float = 1.0) -> None:
        super().__init__()
        self.fx = fx
        self.name = name
        self.level = normalise_level(level)
        self.since = parse_since(since)
        cutoff_of(self.since)  # validate now
        self.text = text or None
        self.limit = int(limit)
        self.interval = float(interval)
        self.rows: list[dict[str, Any]] = []
        self.error: BaseException | None = None
        self.updated_at = 0.0
        #: Serialises queries and every widget update (the tail thread and the kernel's).
        self._lock = threading.RLock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        #: The widget's parts once built: level, text, since, tail, refresh, status, table.
        self.controls: dict[str, Any] = {}
        self._shown: tuple | None = None
        #: True while the controls are set from the filters (their callbacks stay quiet).
        self._syncing = False
        self.refresh()
        if tail:
            self.start_tail()

    def __repr__(self) -> str:
        return f"<LogsView {self.describe()}: {len(self.rows)} lines>"

    def describe(self) -> str:
        parts = [self.name or "all functions", f"level >= {self.level}"]
        if self.since is not None:
            parts.append(f"since {self._since_label()}")
        if self.text:
            parts.append(f"text {self.text!r}")
        return " · ".join(parts)

    def _since_label(self) -> str:
        for label, value in SINCE_CHOICES:
            if value == self.since:
                return label
        if isinstance(self.since, _dt.datetime):
            return self.since.strftime("%Y-%m-%d %H:%M:%S")
        if isinstance(self.since, _dt.timedelta):
            return f"{self.since.total_seconds():g} s"
        return f"{self.since:g} s" if isinstance(self.since, (int, float)) else str(self.since)

    # -- data ----------------------------------------------------------------------------
    def query(self) -> list[dict[str, Any]]:
        """Run the query with the current filters; returns the rows (does not store them)."""
        sql = logs_query(self.name, self.level, cutoff_of(self.since), self.text, self.limit)
        return rows_of(self.fx.sql(sql))

    def refresh(self, *, raise_errors: bool = True) -> LogsView:
        """Re-query with the current filters and update the widget."""
        with self._lock:
            try:
                self.rows = self.query()
                self.error = None
            except Exception as exc:  # noqa: BLE001 - shown in the widget; raised when asked
                self.error = exc
                if raise_errors:
                    raise
            finally:
                self.updated_at = time.time()
                self.update()
        return self

    def set_filters(self, *, level: str | None = None, since: Any = ..., text: str | None = ...,
                    name: str | None = ...) -> LogsView:
        """Change filters (only those given) and re-query."""
        with self._lock:
            if level is not None:
                self.level = normalise_level(level)
            if since is not ...:
                cutoff_of(since)
                self.since = parse_since(since)
            if text is not ...:
                self.text = text or None
            if name is not ...:
                self.name = name
            self._sync_controls()
            return self.refresh()

    # -- live tail -----------------------------------------------------------------------
    @property
    def tailing(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def start_tail(self, interval: float | None = None) -> LogsView:
        """Re-query every ``interval`` seconds in a daemon thread until :meth:`stop`."""
        with self._lock:
            if interval is not None:
                self.interval = float(interval)
            if not self.tailing:
                self._stop = threading.Event()
                self._thread = threading.Thread(target=self._tail, args=(self._stop,), daemon=True,
                                                name="functions-nb-logs-tail")
                self._thread.start()
            self._sync_controls()
        return self

    def _tail(self, stop: threading.Event) -> None:
        while not stop.wait(self.interval):
            self.refresh(raise_errors=False)

    def stop(self) -> LogsView:
        """Stop the live tail (waits for the thread to end)."""
        with self._lock:
            thread, self._thread = self._thread, None
            self._stop.set()
            self._sync_controls()
        if thread is not None and thread is not threading.current_thread():
            thread.join(self.interval + 5)
        return self

    # -- rendering -----------------------------------------------------------------------
    def status_html(self) -> str:
        when = _dt.datetime.fromtimestamp(self.updated_at).strftime("%H:%M:%S") if self.updated_at else "-"
        error = (f' <span style="color:{LEVEL_COLOURS["error"]}">query failed: {esc(self.error)}</span>'
                 if self.error else "")
        live = ' <b style="color:var(--jp-success-color1, #388e3c)">● live</b>' if self.tailing else ""
        return (f'<span class="fnb-status" style="opacity:0.8">{esc(self.describe())} · '
                f'{len(self.rows)} lines, newest first · updated {when}</span>{live}{error}')

    def html(self) -> str:
        with self._lock:
            return (f'<div class="fnb-logs" style="{_BOX}"><div>{self.status_html()}</div>'
                    f'{rows_html(self.rows)}</div>')

    def build(self) -> Any:
        import ipywidgets as w

        with self._lock:
            level_options = [("all" if lv == "debug" else f"{lv}+" if lv != "error" else lv, lv)
                             for lv in LEVELS]
            c = self.controls = {
                "level": w.Dropdown(options=level_options, value=self.level, description="level",
                                    layout=w.Layout(width="150px"), style={"description_width": "40px"}),
                "text": w.Text(value=self.text or "", placeholder="filter text", continuous_update=False,
                               layout=w.Layout(width="200px")),
                "since": w.Dropdown(options=self._since_options(), value=self._since_value(),
                                    description="since", layout=w.Layout(width="150px"),
                                    style={"description_width": "40px"}),
                "tail": w.ToggleButton(value=self.tailing, description="live tail", icon="play",
                                       tooltip=f"re-query every {self.interval:g} s"),
                "refresh": w.Button(description="Refresh", icon="refresh"),
                "status": w.HTML(),
                "table": w.HTML(),
            }
            c["level"].observe(self._on_level, "value")
            c["text"].observe(self._on_text, "value")
            c["since"].observe(self._on_since, "value")
            c["tail"].observe(self._on_tail, "value")
            c["refresh"].on_click(lambda _b: self.refresh(raise_errors=False))
            bar = w.HBox([c["level"], c["text"], c["since"], c["tail"], c["refresh"]])
            box = w.VBox([bar, c["status"], c["table"]])
            box.add_class("fnb-logs")
            self._widget = box
            self._shown = None
            self.update_widget()
            return box

    def _since_options(self) -> list[tuple[str, Any]]:
        options = list(SINCE_CHOICES)
        if self._since_value() not in [v for _, v in options]:
            options.append((self._since_label(), self.since))
        return options

    def _since_value(self) -> Any:
        return "all" if self.since is None else self.since

    def update_widget(self) -> None:
        with self._lock:
            if not self.controls:
                return
            self.controls["status"].value = self.status_html()
            key = (len(self.rows), self.rows[-1]["id"] if self.rows else None,
                   self.rows[0]["t"] if self.rows else None, self.level, self.text, self.since)
            if key != self._shown:  # re-render the table only when the lines changed
                self.controls["table"].value = rows_html(self.rows)
                self._shown = key

    def _sync_controls(self) -> None:
        """Put the filter values and the tail state into the controls (no re-query)."""
        c = self.controls
        if not c:
            return
        self._syncing = True
        try:
            self._sync_values(c)
        finally:
            self._syncing = False
        c["status"].value = self.status_html()

    def _sync_values(self, c: dict[str, Any]) -> None:
        if c["tail"].value != self.tailing:
            c["tail"].value = self.tailing
        if c["level"].value != self.level:
            c["level"].value = self.level
        if c["text"].value != (self.text or ""):
            c["text"].value = self.text or ""
        if c["since"].value != self._since_value():
            c["since"].options = self._since_options()
            c["since"].value = self._since_value()

    # -- control callbacks (the kernel's thread) -------------------------------------------
    def _on_level(self, change: dict[str, Any]) -> None:
        if not self._syncing and change["new"] != self.level:
            with self._lock:
                self.level = normalise_level(change["new"])
                self.refresh(raise_errors=False)

    def _on_text(self, change: dict[str, Any]) -> None:
        if not self._syncing and (change["new"] or None) != self.text:
            with self._lock:
                self.text = change["new"] or None
                self.refresh(raise_errors=False)

    def _on_since(self, change: dict[str, Any]) -> None:
        new = None if change["new"] == "all" else change["new"]
        if not self._syncing and new != self.since:
            with self._lock:
                self.since = new
                self.refresh(raise_errors=False)

    def _on_tail(self, change: dict[str, Any]) -> None:
        if self._syncing:
            return
        if change["new"] and not self.tailing:
            self.start_tail()
        elif not change["new"] and self.tailing:
            self.stop()


__all__ = ["LEVELS", "LogsView", "cutoff_of", "logs_query", "parse_since"]
