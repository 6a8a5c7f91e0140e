"""Small inline-SVG charts: scatter/line, histogram with markers, bars, a timeline.

No libraries, no images: every function returns one ``<svg>`` string. Colours are JupyterLab
CSS variables with fallbacks (``var(--jp-brand-color1, #1976d2)``), set through ``style``
attributes so they follow the light and dark themes; titles become ``<title>`` tooltips.
"""

from __future__ import annotations

import datetime as _dt
import math
from collections.abc import Sequence
from dataclasses import dataclass

from .base import esc

#: Theme colours (CSS variables with fallbacks for renderers outside JupyterLab).
TEXT = "var(--jp-ui-font-color1, #212121)"
MUTED = "var(--jp-ui-font-color2, #757575)"
AXIS = "var(--jp-border-color1, #9e9e9e)"
GRID = "var(--jp-border-color3, #eeeeee)"
SERIES = "var(--jp-brand-color1, #1976d2)"
FONT = "var(--jp-ui-font-family, sans-serif)"

#: Space around the plot area: left, right, top, bottom (pixels).
PAD = (48, 12, 22, 34)


# -- numbers and ticks -----------------------------------------------------------------------
def fmt_num(value: float) -> str:
    """A short label: 3 significant digits, k/M suffixes for large values."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "-"
    a = abs(value)
    if a >= 1e6:
        return f"{value / 1e6:.3g}M"
    if a >= 1e4:
        return f"{value / 1e3:.3g}k"
    if a >= 100 or a == int(a):
        return f"{value:.0f}"
    return f"{value:.3g}"


def fmt_ms(value: float) -> str:
    """A duration in milliseconds, with its unit (``0.12 ms``, ``1.5 s``)."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "-"
    if value >= 1000:
        return f"{value / 1000:.3g} s"
    return f"{value:.3g} ms"


def nice_ticks(lo: float, hi: float, n: int = 5) -> list[float]:
    """About ``n`` round tick values covering [lo, hi] (steps of 1, 2, 2.5 or 5 x 10^k)."""
    if not (math.isfinite(lo) and math.isfinite(hi)):
        return [0.0]
    if hi < lo:
        lo, hi = hi, lo
    if hi == lo:
        hi = lo + (abs(lo) or 1.0)
    raw = (hi - lo) / max(1, n)
    mag = 10 ** math.floor(math.log10(raw))
    step = next(m * mag for m in (1, 2, 2.5, 5, 10) if m * mag >= raw)
    first = math.floor(lo / step + 1e-9)
    last = max(math.ceil(hi / step - 1e-9), first + 1)
    return [round(i * step, 12) for i in range(first, last + 1)]


def time_ticks(lo: float, hi: float, n: int = 5) -> list[float]:
    """Round tick times (unix seconds) covering [lo, hi]."""
    span = max(hi - lo, 1e-3)
    steps = (1, 2, 5, 10, 15, 30, 60, 120, 300, 600, 900, 1800, 3600, 7200, 10800, 21600,
             43200, 86400, 172800, 604800)
    step = next((s for s in steps if span / s <= n), steps[-1])
    if span < n:  # sub-second spans: plain numeric ticks
        return nice_ticks(lo, hi, n)
    first = math.ceil(lo / step) * step
    ticks = [first + i * step for i in range(int((hi - first) // step) + 1)]
    return ticks or [lo]


def fmt_time(t: float, span: float) -> str:
    """A local clock label for ``t`` (unix seconds), precise enough for ``span``."""
    when = _dt.datetime.fromtimestamp(t)
    if span >= 2 * 86400:
        return when.strftime("%m-%d %H:%M")
    if span >= 600:
        return when.strftime("%H:%M")
    if span >= 5:
        return when.strftime("%H:%M:%S")
    return when.strftime("%H:%M:%S.%f")[:-3]


# -- building blocks -------------------------------------------------------------------------
@dataclass
class Frame:
    """A chart's pixel geometry and its data ranges (linear scales)."""

    width: int
    height: int
    x0: float
    x1: float
    y0: float
    y1: float
    top_pad: float = PAD[2]

    @property
    def left(self) -> float:
        return PAD[0]

    @property
    def right(self) -> float:
        return self.width - PAD[1]

    @property
    def top(self) -> float:
        return self.top_pad

    @property
    def bottom(self) -> float:
        return self.height - PAD[3]

    def x(self, value: float) -> float:
        span = (self.x1 - self.x0) or 1.0
        return self.left + (value - self.x0) / span * (self.right - self.left)

    def y(self, value: float) -> float:
        span = (self.y1 - self.y0) or 1.0
        return self.bottom - (value - self.y0) / span * (self.bottom - self.top)


def _open(width: int, height: int, title: str) -> list[str]:
    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" class="fnb-chart" width="{width}" '
             f'height="{height}" viewBox="0 0 {width} {height}" role="img" '
             f'style="font-family:{FONT};font-size:10px;overflow:visible">']
    if title:
        parts.append(f'<text x="{PAD[0]}" y="13" style="fill:{TEXT};font-size:11px;'
                     f'font-weight:600">{esc(title)}</text>')
    return parts


def _text(x: float, y: float, label: str, *, anchor: str = "middle", colour: str = MUTED,
          extra: str = "") -> str:
    return (f'<text x="{x:.1f}" y="{y:.1f}" text-anchor="{anchor}" '
            f'style="fill:{colour}{";" + extra if extra else ""}">{esc(label)}</text>')


def _line(x1: float, y1: float, x2: float, y2: float, colour: str, *, width: float = 1,
          dash: str = "") -> str:
    d = f";stroke-dasharray:{dash}" if dash else ""
    return (f'<line x1="{x1:.1f}" y1="{y1:.1f}" x2="{x2:.1f}" y2="{y2:.1f}" '
            f'style="stroke:{colour};stroke-width:{width}{d}"/>')


def _rect(x: float, y: float, w: float, h: float, colour: str, tooltip: str = "",
          extra: str = "") -> str:
    tip = f"<title>{esc(tooltip)}</title>" if tooltip else ""
    return (f'<rect x="{x:.1f}" y="{y:.1f}" width="{max(w, 0):.1f}" height="{max(h, 0):.1f}" '
            f'style="fill:{colour}{";" + extra if extra else ""}">{tip}</rect>')


def _y_axis(f: Frame, ticks: Sequence[float], label: str, fmt=fmt_num) -> list[str]:
    parts = []
    for t in ticks:
        if f.y0 - 1e-9 <= t <= f.y1 + 1e-9:
            y = f.y(t)
            parts.append(_line(f.left, y, f.right, y, GRID))
            parts.append(_text(f.left - 4, y + 3, fmt(t), anchor="end"))
    parts.append(_line(f.left, f.top, f.left, f.bottom, AXIS))
    if label:
        cy = (f.top + f.bottom) / 2
        parts.append(f'<text x="10" y="{cy:.1f}" text-anchor="middle" transform="rotate(-90 10 '
                     f'{cy:.1f})" style="fill:{MUTED}">{esc(label)}</text>')
    return parts


def _x_axis(f: Frame, ticks: Sequence[float], label: str, fmt) -> list[str]:
    parts = [_line(f.left, f.bottom, f.right, f.bottom, AXIS)]
    for t in ticks:
        if f.x0 - 1e-9 <= t <= f.x1 + 1e-9:
            x = f.x(t)
            parts.append(_line(x, f.bottom, x, f.bottom + 3, AXIS))
            parts.append(_text(x, f.bottom + 13, fmt(t)))
    if label:
        parts.append(_text((f.left + f.right) / 2, f.height - 4, label))
    return parts


def _empty(width: int, height: int, title: str, message: str = "no data") -> str:
    parts = _open(width, height, title)
    parts.append(_text(width / 2, height / 2, message))
    return "".join(parts) + "</svg>"


# -- charts ----------------------------------------------------------------------------------
def line_chart(xs: Sequence[float], ys: Sequence[float], *, title: str = "", x_label: str = "",
               y_label: str = "", colours: Sequence[str] | None = None,
               tooltips: Sequence[str] | None = None, mode: str = "scatter",
               time_axis: bool = True, width: int = 520, height: int = 200,
               y_fmt=fmt_num) -> str:
    """A scatter (``mode="scatter"``), line (``"line"``) or both (``"both"``) chart of
    ``ys`` over ``xs`` (unix seconds when ``time_axis``). ``colours``/``tooltips``: per point."""
    if not len(xs):
        return _empty(width, height, title)
    lo_x, hi_x = min(xs), max(xs)
    if hi_x == lo_x:
        lo_x, hi_x = lo_x - 0.5, hi_x + 0.5
    y_ticks = nice_ticks(min(0.0, min(ys)), max(ys))
    f = Frame(width, height, lo_x, hi_x, y_ticks[0], y_ticks[-1])
    parts = _open(width, height, title)
    parts += _y_axis(f, y_ticks, y_label, y_fmt)
    if time_axis:
        span = hi_x - lo_x
        parts += _x_axis(f, time_ticks(lo_x, hi_x), x_label, lambda t: fmt_time(t, span))
    else:
        parts += _x_axis(f, nice_ticks(lo_x, hi_x), x_label, fmt_num)
    order = sorted(range(len(xs)), key=lambda i: xs[i])
    if mode in ("line", "both"):
        points = " ".join(f"{f.x(xs[i]):.1f},{f.y(ys[i]):.1f}" for i in order)
        parts.append(f'<polyline points="{points}" style="fill:none;stroke:{SERIES};'
                     f'stroke-width:1.2;stroke-opacity:0.7"/>')
    if mode in ("scatter", "both"):
        for i in order:
            colour = colours[i] if colours else SERIES
            tip = f"<title>{esc(tooltips[i])}</title>" if tooltips else ""
            parts.append(f'<circle cx="{f.x(xs[i]):.1f}" cy="{f.y(ys[i]):.1f}" r="2.5" '
                         f'style="fill:{colour};fill-opacity:0.75">{tip}</circle>')
    return "".join(parts) + "</svg>"


def histogram(edges: Sequence[float], counts: Sequence[int], *, markers: dict[str, float] | None = None,
              marker_colours: dict[str, str] | None = None, title: str = "", x_label: str = "",
              y_label: str = "count", width: int = 520, height: int = 200, x_fmt=fmt_num) -> str:
    """Bars for ``counts`` between consecutive ``edges``; each marker (``{"p95": 12.5}``) is a
    dashed vertical line labelled ``"p95 12.5"``."""
    if not len(counts) or len(edges) != len(counts) + 1:
        return _empty(width, height, title)
    markers = markers or {}
    lo, hi = edges[0], edges[-1]
    if hi == lo:
        lo, hi = lo - 0.5, hi + 0.5
    y_ticks = nice_ticks(0, max(max(counts), 1))
    f = Frame(width, height, lo, hi, 0, y_ticks[-1])
    parts = _open(width, height, title)
    parts += _y_axis(f, y_ticks, y_label)
    parts += _x_axis(f, nice_ticks(lo, hi), x_label, x_fmt)
    for i, n in enumerate(counts):
        if n:
            x0, x1 = f.x(edges[i]), f.x(edges[i + 1])
            parts.append(_rect(x0 + 0.5, f.y(n), max(x1 - x0 - 1, 1), f.bottom - f.y(n), SERIES,
                               f"{x_fmt(edges[i])}-{x_fmt(edges[i + 1])}: {n}", "fill-opacity:0.8"))
    for k, (name, value) in enumerate(markers.items()):
        if value is None or not math.isfinite(value):
            continue
        colour = (marker_colours or {}).get(name, TEXT)
        x = f.x(min(max(value, lo), hi))
        right_half = x > f.left + (f.right - f.left) * 0.6  # label on the left of the line there
        parts.append(_line(x, f.top, x, f.bottom, colour, width=1.5, dash="4 2"))
        parts.append(f'<g class="fnb-marker" data-marker="{esc(name)}">'
                     + _text(x - 3 if right_half else x + 3, f.top + 9 + 11 * k, f"{name} {x_fmt(value)}",
                             anchor="end" if right_half else "start", colour=colour,
                             extra="font-weight:600") + "</g>")
    return "".join(parts) + "</svg>"


def bar_chart(labels: Sequence[str], series: dict[str, Sequence[float]], *,
              colours: dict[str, str] | None = None, title: str = "", y_label: str = "",
              stacked: bool = True, width: int = 520, height: int = 200, max_labels: int = 12,
              legend: bool = True, value_fmt=None, max_bar: float = 56) -> str:
    """Vertical bars: one group per label, one bar (or stacked segment) per series (at most
    ``max_bar`` pixels wide). ``value_fmt``: write each bar's (or stack's) total above it."""
    if not len(labels) or not series:
        return _empty(width, height, title)
    names = list(series)
    colours = colours or {}
    if stacked:
        top = max(sum(series[s][i] for s in names) for i in range(len(labels)))
    else:
        top = max(max(series[s]) for s in names)
    show_legend = legend and len(names) > 1
    y_ticks = nice_ticks(0, (top * (1.15 if value_fmt else 1)) if top > 0 else 1)
    f = Frame(width, height, 0, len(labels), 0, y_ticks[-1], PAD[2] + (14 if show_legend else 0))
    parts = _open(width, height, title)
    parts += _y_axis(f, y_ticks, y_label)
    parts.append(_line(f.left, f.bottom, f.right, f.bottom, AXIS))
    slot = (f.right - f.left) / len(labels)
    inner = min(slot * 0.8, max_bar * (1 if stacked else len(names)))
    every = max(1, math.ceil(len(labels) / max_labels))
    for i, label in enumerate(labels):
        x = f.left + i * slot + (slot - inner) / 2
        base = 0.0
        for j, name in enumerate(names):
            value = series[name][i]
            colour = colours.get(name, SERIES)
            tip = f"{label} {name}: {fmt_num(value)}"
            if stacked:
                if value:
                    parts.append(_rect(x, f.y(base + value), inner, f.y(base) - f.y(base + value),
                                       colour, tip))
                base += value
            elif value:
                w = inner / len(names)
                parts.append(_rect(x + j * w, f.y(value), w, f.bottom - f.y(value), colour, tip))
                if value_fmt:
                    parts.append(_text(x + (j + 0.5) * w, f.y(value) - 3, value_fmt(value)))
        if stacked and value_fmt and base:
            parts.append(_text(x + inner / 2, f.y(base) - 3, value_fmt(base)))
        if i % every == 0:
            parts.append(_text(f.left + (i + 0.5) * slot, f.bottom + 13, label))
    if show_legend:
        lx = float(f.left)
        for name in names:
            parts.append(_rect(lx, PAD[2] - 3, 9, 9, colours.get(name, SERIES)))
            parts.append(_text(lx + 12, PAD[2] + 5, name, anchor="start"))
            lx += 12 + 6 * len(name) + 12
    return "".join(parts) + "</svg>"


@dataclass
class Span:
    """One timeline bar: a label, where it starts and how long it lasts (ms)."""

    label: str
    start_ms: float
    duration_ms: float
    colour: str
    text: str = ""
    tooltip: str = ""


def timeline(spans: Sequence[Span], *, title: str = "", width: int = 520, row: int = 18) -> str:
    """A Gantt-style timeline: one row per span, its bar's width proportional to its duration
    (at least a few pixels, so instant and skipped steps stay visible)."""
    if not spans:
        return _empty(width, 60, title)
    label_w = max(56, 7 * max(len(s.label) for s in spans) + 8)
    text_w = 150
    height = PAD[2] + row * len(spans) + 22
    total = max((s.start_ms + s.duration_ms for s in spans), default=0.0) or 1.0
    x0, x1 = label_w, width - text_w
    scale = (x1 - x0) / total
    parts = _open(width, height, title)
    for i, s in enumerate(spans):
        y = PAD[2] + i * row
        x = x0 + s.start_ms * scale
        w = max(s.duration_ms * scale, 3.0)
        parts.append(_text(label_w - 6, y + row * 0.65, s.label, anchor="end", colour=TEXT))
        parts.append(f'<g class="fnb-span">{_rect(x, y + 2, w, row - 5, s.colour, s.tooltip)}</g>')
        if s.text:
            parts.append(_text(x + w + 4, y + row * 0.65, s.text, anchor="start"))
    axis_y = PAD[2] + row * len(spans) + 2
    parts.append(_line(x0, axis_y, x1, axis_y, AXIS))
    for t in nice_ticks(0, total, 4):
        if t <= total * 1.0001:
            parts.append(_line(x0 + t * scale, axis_y, x0 + t * scale, axis_y + 3, AXIS))
            parts.append(_text(x0 + t * scale, axis_y + 13, fmt_ms(t)))
    return "".join(parts) + "</svg>"


__all__ = ["Span", "bar_chart", "fmt_ms", "fmt_num", "fmt_time", "histogram", "line_chart",
           "nice_ticks", "time_ticks", "timeline"]
