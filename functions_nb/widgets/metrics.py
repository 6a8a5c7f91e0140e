"""Metrics of one function over the history: latency over time, a latency histogram with
p50/p95/p99 marked, calls and errors per minute, cold vs warm, and calls per tier/status.

``MetricsView(fx, name)`` (``name`` or ``name@version``) aggregates in DuckDB (so it stays fast
over a long history), keeps the numbers in ``.stats`` and draws inline SVG (``svg.py``).

The numbers (what a call, an error, a caller mistake and a latency are) are defined once in
:mod:`functions_nb.history_queries`, which the REST API and ``%functions`` use too; the
tiers chart shows caller mistakes as ``caller_error``, apart from the function's errors;
cold/warm compares latency of code-tier calls that ran.
"""

from __future__ import annotations

import time
from typing import Any

from ..history_queries import CALL, ERROR, OUTCOME, PERCENTILES, TIMED, scope, stats_of
from .base import STATUS_COLOURS, View, esc
from .svg import bar_chart, fmt_ms, fmt_num, fmt_time, histogram, line_chart

#: Colours of the percentiles marked on the histogram.
MARKER_COLOURS = {"p50": "var(--jp-success-color1, #388e3c)", "p95": "var(--jp-warn-color1, #ef6c00)",
                  "p99": "var(--jp-error-color1, #d32f2f)"}
TIER_ORDER = ("code", "generative", "agentic", "human")
_BOX = ("font-family:var(--jp-ui-font-family, sans-serif);font-size:var(--jp-ui-font-size1, 13px);"
        "color:var(--jp-ui-font-color1, inherit)")
_GRID = "display:flex;flex-wrap:wrap;gap:8px 16px;align-items:flex-start"


def per_minute(counts: list[tuple[float, int, int]], *, minutes: int, now: float) -> list[dict[str, Any]]:
    """(minute start, calls, errors) rows -> every minute of the window with zeros filled in.
    The window ends at the current minute while the last call is within it, else at the last
    call's minute; it starts at most ``minutes`` earlier (not before the first call)."""
    if not counts:
        return []
    by_minute = {int(m): (int(c), int(e)) for m, c, e in counts}
    last = max(by_minute)
    now_minute = int(now // 60 * 60)
    end = now_minute if now_minute - last < minutes * 60 and now_minute >= last else last
    start = max(end - (minutes - 1) * 60, min(by_minute))
    return [{"minute": float(m), "calls": by_minute.get(m, (0, 0))[0], "errors": by_minute.get(m, (0, 0))[1]}
            for m in range(start, end + 1, 60)]


class MetricsView(View):
    """Latency, throughput, errors, cold/warm and tiers of one function (module docstring)."""

    def __init__(self, fx: Any, name: str, *, minutes: int = 60, bins: int = 30,
                 points: int = 2000) -> None:
        super().__init__()
        self.fx = fx
        self.name = name
        self.minutes = int(minutes)
        self.bins = int(bins)
        self.points = int(points)
        self.stats: dict[str, Any] = {}
        self.svgs: dict[str, str] = {}
        #: The widget's parts once built: summary, refresh (button) and one HTML per chart.
        self.parts: dict[str, Any] = {}
        self.refresh()

    def __repr__(self) -> str:
        s = self.stats
        return (f"<MetricsView {self.name}: {s.get('count', 0)} calls, {s.get('errors', 0)} errors, "
                f"{s.get('caller_errors', 0)} caller mistakes, p50 {fmt_ms(s.get('p50'))}, "
                f"p95 {fmt_ms(s.get('p95'))}>")

    # -- data ------------------------------------------------------------------------------
    def query(self) -> tuple[dict[str, Any], dict[str, Any]]:
        """Aggregate the history; returns (stats, chart data)."""
        base = f"SELECT *, epoch_us(started_at) / 1e6 AS t FROM executions WHERE {scope(self.name)}"
        stats: dict[str, Any] = {"name": self.name, **stats_of(self.fx.sql, self.name, detail=True)}
        minutes = self.fx.sql(
            f"SELECT floor(t / 60) * 60 AS minute, count(*) AS calls, "
            f"count(*) FILTER (WHERE {ERROR}) AS errors FROM ({base}) WHERE {CALL} "
            "GROUP BY 1 ORDER BY 1")
        stats["per_minute"] = per_minute(list(minutes.itertuples(index=False, name=None)),
                                         minutes=self.minutes, now=time.time())
        tiers = self.fx.sql(f"SELECT tier, {OUTCOME} AS outcome, count(*) AS n FROM ({base}) "
                            "GROUP BY ALL ORDER BY ALL")
        stats["tiers"] = {}
        for tier, outcome, n in tiers.itertuples(index=False, name=None):
            stats["tiers"].setdefault(tier, {})[outcome] = int(n)
        data: dict[str, Any] = {"points": [], "edges": [], "counts": []}
        if stats["timed"]:
            data["points"] = list(self.fx.sql(
                f"SELECT t, duration_ms, status, cold, tier FROM ({base}) WHERE {TIMED} "
                f"ORDER BY t DESC LIMIT {self.points}").itertuples(index=False, name=None))
            data["edges"], data["counts"] = self._histogram(base, stats)
        return stats, data

    def _histogram(self, base: str, stats: dict[str, Any]) -> tuple[list[float], list[int]]:
        """Bins from the minimum to a little past p99 (slower calls land in the last bin)."""
        lo, hi, p99 = stats["min"], stats["max"], stats["p99"]
        top = min(hi, p99 + (p99 - lo) * 0.25) if p99 is not None else hi
        if top <= lo:
            top = lo + max(abs(lo) * 0.1, 1e-3)
        bins = self.bins
        width = (top - lo) / bins
        rows = self.fx.sql(
            f"SELECT least(greatest(floor((duration_ms - {lo!r}) / {width!r}), 0), {bins - 1})::INTEGER "
            f"AS b, count(*) AS n FROM ({base}) WHERE {TIMED} GROUP BY 1")
        counts = [0] * bins
        for b, n in rows.itertuples(index=False, name=None):
            counts[int(b)] += int(n)
        return [lo + i * width for i in range(bins + 1)], counts

    def refresh(self) -> MetricsView:
        """Re-query the history and redraw."""
        self.stats, data = self.query()
        self.svgs = self.charts(data)
        self.update()
        return self

    # -- charts ----------------------------------------------------------------------------
    def charts(self, data: dict[str, Any]) -> dict[str, str]:
        s = self.stats
        points = data["points"]
        xs = [p[0] for p in points]
        colours = [STATUS_COLOURS.get(p[2], STATUS_COLOURS["error"]) for p in points]
        tips = [f"{fmt_time(p[0], 1)} {fmt_ms(p[1])} {p[2]} {p[4]}{' cold' if p[3] else ''}" for p in points]
        latency = line_chart(xs, [p[1] for p in points], colours=colours, tooltips=tips, mode="both",
                             title=f"latency over time ({len(points)} calls)", y_label="ms")
        markers = {k: s[k] for k in PERCENTILES if s[k] is not None}
        hist = histogram(data["edges"], data["counts"], markers=markers, marker_colours=MARKER_COLOURS,
                         title="latency histogram", x_label="ms")
        pm = s["per_minute"]
        minute = bar_chart([fmt_time(m["minute"], 600) for m in pm],
                           {"ok": [m["calls"] - m["errors"] for m in pm],
                            "errors": [m["errors"] for m in pm]},
                           colours={"ok": STATUS_COLOURS["ok"], "errors": STATUS_COLOURS["error"]},
                           title="calls and errors per minute", y_label="calls")
        cw = bar_chart([f"cold (n={s['cold']['count']})", f"warm (n={s['warm']['count']})"],
                       {"median ms": [s["cold"]["p50"] or 0.0, s["warm"]["p50"] or 0.0]},
                       colours={"median ms": "var(--jp-brand-color2, #64b5f6)"},
                       title="cold vs warm: median latency", y_label="ms", width=260, value_fmt=fmt_ms)
        tiers = sorted(s["tiers"], key=lambda t: (TIER_ORDER.index(t) if t in TIER_ORDER else 99, t))
        statuses = sorted({st for counts in s["tiers"].values() for st in counts})
        tier_svg = bar_chart(tiers, {st: [s["tiers"][t].get(st, 0) for t in tiers] for st in statuses},
                             colours={st: STATUS_COLOURS.get(st, "inherit") for st in statuses},
                             title="calls per tier and status", y_label="calls", width=360,
                             value_fmt=fmt_num)
        return {"latency": latency, "histogram": hist, "per_minute": minute, "cold_warm": cw,
                "tiers": tier_svg}

    # -- rendering -------------------------------------------------------------------------
    def summary_html(self) -> str:
        s = self.stats
        if not s.get("count") and not s.get("caller_errors"):
            return f'<b>{esc(self.name)}</b>: no executions yet'
        rate = f"{100 * (s['error_rate'] or 0.0):.1f}%"
        err_colour = STATUS_COLOURS["error"] if s["errors"] else "inherit"
        parts = [f"<b>{esc(self.name)}</b>", f"{fmt_num(s['count'])} calls",
                 f'<span style="color:{err_colour}">{fmt_num(s["errors"])} errors ({rate})</span>',
                 *([f'<span style="color:{STATUS_COLOURS["caller_error"]}">'
                    f'{fmt_num(s["caller_errors"])} caller mistakes</span>']
                   if s["caller_errors"] else []),
                 *(f'<span style="color:{MARKER_COLOURS[k]}">{k} {esc(fmt_ms(s[k]))}</span>'
                   for k in PERCENTILES),
                 f"cold {s['cold']['count']} (p50 {esc(fmt_ms(s['cold']['p50']))})",
                 f"warm {s['warm']['count']} (p50 {esc(fmt_ms(s['warm']['p50']))})"]
        return ' <span style="opacity:0.5">·</span> '.join(parts)

    def html(self) -> str:
        charts = "".join(f'<div class="fnb-chart-{k}">{v}</div>' for k, v in self.svgs.items())
        return (f'<div class="fnb-metrics" style="{_BOX}"><div>{self.summary_html()}</div>'
                f'<div style="{_GRID}">{charts}</div></div>')

    def build(self) -> Any:
        import ipywidgets as w

        self.parts = {"summary": w.HTML(), **{k: w.HTML() for k in self.svgs}}
        button = w.Button(description="Refresh", icon="refresh")
        button.on_click(lambda _b: self.refresh())
        self.parts["refresh"] = button
        charts = w.Box([self.parts[k] for k in self.svgs],
                       layout=w.Layout(display="flex", flex_flow="row wrap", grid_gap="8px"))
        box = w.VBox([w.HBox([button, self.parts["summary"]]), charts])
        box.add_class("fnb-metrics")
        self._widget = box
        self.update_widget()
        return box

    def update_widget(self) -> None:
        if not self.parts:
            return
        self.parts["summary"].value = f'<div style="{_BOX}">{self.summary_html()}</div>'
        for key, svg in self.svgs.items():
            if key in self.parts:
                self.parts[key].value = svg


__all__ = ["MetricsView", "per_minute"]
