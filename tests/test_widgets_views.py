"""Result, logs and metrics views over a real store with real executions: widget state after
refresh/filter changes/button clicks, the live tail, the numbers behind the charts, and the
static HTML."""

from __future__ import annotations

import datetime as dt
import time

import numpy as np
import pytest

from functions_nb import BreakerConfig, Functions
from functions_nb.errors import CascadeExhaustedError
from functions_nb.widgets.base import LEVEL_COLOURS, STATUS_COLOURS
from functions_nb.widgets.logs import LogsView, cutoff_of, parse_since
from functions_nb.widgets.metrics import MetricsView
from functions_nb.widgets.result import ResultView
from functions_nb.widgets.svg import fmt_num, histogram, nice_ticks

from .conftest import ADD_RS, BOOM_RS

# ADD_RS with console output at two levels (println! -> log, eprintln! -> error).
ADD_LOG_RS = ADD_RS.replace("    a + b\n", '    println!("adding {} and {}", a, b);\n'
                            '    eprintln!("note from add");\n    a + b\n')
WIDGET_MIME = "application/vnd.jupyter.widget-view+json"
NO_TIERS = ["generative", "agentic", "human"]


def _has_ipywidgets() -> bool:
    try:
        import ipywidgets  # noqa: F401
    except ImportError:
        return False
    return True


@pytest.fixture(scope="module")
def hist(tmp_path_factory):
    """A store with history: add (40 calls, console lines), boom (40 calls, 10 failures)."""
    fx = Functions(store=str(tmp_path_factory.mktemp("widgets") / "store"),
                   breaker=BreakerConfig(reset_timeout=0.3))
    fx.deploy("rust", ADD_LOG_RS, "add")
    fx.deploy("rust", BOOM_RS, "boom")
    first = fx.run("add", 2, 3)  # the first call after deploy: cold
    for i in range(40):
        fx.invoke("add", i, 1)
    failures = 0
    for i in range(40):
        if i % 4 == 2:  # never 5 in a row; the last call succeeds: the breaker stays closed
            with pytest.raises(Exception, match="bad input"):
                fx.invoke("boom", 1)
            failures += 1
        else:
            assert fx.invoke("boom", -i) == -i
    fx.flush()
    yield {"fx": fx, "first": first, "failures": failures}
    fx.close()


def _bundle_ok(view) -> None:
    """Every output of a view is static: HTML and text, never a widget reference (a saved
    notebook reopened without the kernel would show "model not found" in its place)."""
    bundle = view._repr_mimebundle_()
    assert set(bundle) == {"text/html", "text/plain"} and bundle["text/html"] == view.html()
    if _has_ipywidgets():
        assert view.widget.model_id  # the panel exists for whoever displays it explicitly
        assert WIDGET_MIME not in view._repr_mimebundle_()


# -- result ----------------------------------------------------------------------------------
def test_result_view_of_an_execution(hist):
    fx = hist["fx"]
    cold = ResultView(hist["first"])
    assert 'class="fnb-cold">cold<' in cold.html()
    execution = fx.run("add", 2, 3)
    assert execution.value == 5 and not execution.cold
    view = ResultView(execution)
    page = view.html()
    assert "add@1" in page and ">5</div>" in page and ">warm<" in page
    assert "tier <b>code</b>" in page
    assert f'color:{STATUS_COLOURS["ok"]}' in page
    # console lines, each in its level's colour
    assert "adding 2 and 3" in page and "note from add" in page
    assert f'fnb-line fnb-error" style="color:{LEVEL_COLOURS["error"]}' in page
    assert f'fnb-line fnb-log" style="color:{LEVEL_COLOURS["log"]}' in page
    # the widget tree holds the same parts
    view.widget  # noqa: B018 - builds it
    assert "add@1" in view.parts["header"].value and "warm" in view.parts["header"].value
    assert "note from add" in view.parts["console"].value
    assert view.parts["timeline"].layout.display == "none"  # no cascade, no timeline
    _bundle_ok(view)

    failed = ResultView(fx.run("boom", 1))
    assert "bad input 1" in failed.html() and f'color:{STATUS_COLOURS["error"]}' in failed.html()
    assert "value:" not in repr(failed) and "error: boom panicked" in repr(failed)
    # text/plain: what a terminal shows (the lines %invoke prints)
    text = view._repr_mimebundle_()["text/plain"]
    assert "[log] adding 2 and 3" in text and "[error] note from add" in text
    assert "add@1 · ok · " in text and " · warm" in text and "value: 5" in text
    long = ResultView(fx.run("add", 1, 1), value_chars=3)
    long.outcome.value = "x" * 50
    assert "… (52 chars)" in long.html()


def test_result_view_of_a_cascade(hist):
    fx = hist["fx"]
    with pytest.raises(CascadeExhaustedError) as caught:
        fx.cascade("boom", 1, tier_retries={"code": 1}, backoff=0.01, skip_tiers=NO_TIERS)
    view = ResultView(caught.value)
    page = view.html()
    assert "boom@1" in page and "every tier failed" in page and "5 attempts" in page
    svg = view.timeline_svg()
    assert svg.startswith("<svg") and svg.count('class="fnb-span"') == 5
    for label in ("code#1", "code#2", "generative#0", "agentic#0", "human#0"):
        assert f">{label}</text>" in svg
    assert svg.count(f'fill:{STATUS_COLOURS["error"]}') == 2  # the failed code attempts
    assert "bad input 1</title>" in svg  # the error as tooltip
    assert "  code#2 failed" in repr(view) and "boom@1 · error" in repr(view)
    assert "skipped by the skip_tiers option</title>" in svg  # the reason as tooltip
    # bar widths follow durations: the two code attempts' bars differ like their durations
    view.widget  # noqa: B018
    assert "code#2" in view.parts["timeline"].value and view.parts["timeline"].layout.display is None
    _bundle_ok(view)

    # with the client: start times, cold/warm and queue time come from the history
    rich = ResultView(caught.value, fx=fx)
    starts = [rich.outcome.offsets[a.execution_id] for a in caught.value.attempts[:2]]
    assert starts[0] == 0 and starts[1] >= 10  # the second attempt came after the 10 ms backoff
    assert rich.outcome.cold is not None and "queue" in rich.html()

    time.sleep(0.35)  # past the breaker's reset timeout, in case it opened
    result = fx.cascade("boom", -7, skip_tiers=NO_TIERS)
    ok = ResultView(result, fx=fx)
    page = ok.html()
    assert ">-7</div>" in page and "boom@1" in page and "1 attempt" in page
    assert "code#1" in ok.timeline_svg() and f'fill:{STATUS_COLOURS["ok"]}' in ok.timeline_svg()
    assert "completed" in ok.timeline_svg()
    assert "code#1 completed" in repr(ok) and "answered by the code tier" in repr(ok)
    _bundle_ok(ok)

    # a cascade that reached a person: the Pending handle and its attempts so far
    pending = fx.cascade("boom", 1, skip_tiers=["generative", "agentic"])
    waiting = ResultView(pending)
    assert waiting.outcome.status == "pending" and waiting.outcome.target == "boom@1"
    assert "waiting for a person" in waiting.html() and f'color:{STATUS_COLOURS["pending"]}' in waiting.html()
    assert ">human#1</text>" in waiting.timeline_svg() and ">code#1</text>" in waiting.timeline_svg()


# -- logs ------------------------------------------------------------------------------------
def test_logs_filters_narrow_the_rows(hist):
    fx = hist["fx"]
    everything = LogsView(fx, limit=10_000)
    assert everything.rows and {r["function"] for r in everything.rows} == {"add", "boom"}
    times = [r["t"] for r in everything.rows]
    assert times == sorted(times)  # newest last
    errors = LogsView(fx, level="error", limit=10_000).rows
    assert errors and len(errors) < len(everything.rows)
    assert {r["level"] for r in errors} == {"error"}
    assert {r["source"] for r in errors} >= {"console", "error"}  # eprintln! lines and failed calls
    failed = [r for r in errors if r["source"] == "error"]
    assert all("bad input" in r["message"] for r in failed)
    assert len(failed) >= hist["failures"]
    # text: case-insensitive substring
    text = LogsView(fx, text="BAD INPUT", limit=10_000).rows
    assert text and all("bad input" in r["message"].lower() for r in text)
    assert len(text) < len(everything.rows)
    # name, limit and time
    assert {r["function"] for r in LogsView(fx, "add@1").rows} == {"add"}
    assert len(LogsView(fx, limit=5).rows) == 5
    assert LogsView(fx, limit=5).rows[-1]["t"] == times[-1]  # the newest 5
    assert LogsView(fx, since=dt.datetime.now() + dt.timedelta(hours=1)).rows == []
    assert len(LogsView(fx, since=3600, limit=10_000).rows) == len(everything.rows)
    assert cutoff_of(dt.timedelta(seconds=60), now=1000.0) == 940.0 and cutoff_of("all") is None
    assert cutoff_of("5m", now=1000.0) == 700.0 and parse_since("1h") == 3600.0 == parse_since("1 h")
    assert LogsView(fx, "add", since="1d").since == 86400.0
    with pytest.raises(ValueError, match="since="):
        parse_since("soon")
    page = LogsView(fx, "add", level="error").html()
    assert "note from add" in page and f'color:{LEVEL_COLOURS["error"]}' in page
    with pytest.raises(ValueError, match="unknown level"):
        LogsView(fx, level="loud")


def test_logs_widget_controls_refilter(hist):
    fx = hist["fx"]
    view = LogsView(fx, "add")
    c = view.controls
    assert not c  # built on first display
    view.widget  # noqa: B018
    c = view.controls
    levels = {r["level"] for r in view.rows}
    assert levels == {"log", "error"}
    c["level"].value = "error"
    assert view.level == "error" and {r["level"] for r in view.rows} == {"error"}
    assert "adding 7 and 1" not in c["table"].value and "note from add" in c["table"].value
    c["level"].value = "debug"
    c["text"].value = "adding 7 and"
    assert view.rows and all("adding 7 and 1" in r["message"] for r in view.rows)
    assert "adding 7 and 1" in c["table"].value and "1 lines" in c["status"].value
    c["since"].value = 300.0
    assert view.since == 300.0 and len(view.rows) == 1
    view.set_filters(since=dt.datetime.now() + dt.timedelta(hours=1))
    assert view.rows == [] and "no log lines" in c["table"].value
    assert len(c["since"].options) == 5  # the custom time joined the presets
    c["since"].value = "all"
    c["text"].value = ""
    assert len(view.rows) > 1 and view.since is None and view.text is None
    _bundle_ok(view)


def test_logs_live_tail_picks_up_new_calls(hist):
    fx = hist["fx"]
    view = LogsView(fx, "add", text="adding 1234", interval=0.2)
    view.widget  # noqa: B018
    assert view.rows == [] and not view.tailing
    view.controls["tail"].value = True  # the toggle starts the thread
    try:
        assert view.tailing and view.interval == 0.2
        assert fx.invoke("add", 1234, 1) == 1235  # a call in the same process, after the start
        deadline = time.monotonic() + 3
        while time.monotonic() < deadline and not view.rows:
            time.sleep(0.05)
        assert [r["message"] for r in view.rows] == ["adding 1234 and 1"]
        assert "adding 1234 and 1" in view.controls["table"].value
        assert "live" in view.controls["status"].value
    finally:
        view.stop()
    assert not view.tailing and view.controls["tail"].value is False
    # the constructor's tail=True and start_tail(interval=...) run the same thread
    tailed = LogsView(fx, "add", text="adding 4321", tail=True, interval=5)
    try:
        assert tailed.tailing
        tailed.start_tail(interval=0.2)  # already running: only the interval changes
        assert tailed.interval == 0.2
    finally:
        tailed.stop()
    assert not tailed.tailing


# -- metrics ---------------------------------------------------------------------------------
def test_metrics_numbers_and_charts(hist):
    fx = hist["fx"]
    view = MetricsView(fx, "boom")
    s = view.stats
    durations = fx.sql("SELECT duration_ms FROM executions WHERE function = 'boom' "
                       "AND status NOT IN ('skipped', 'pending', 'rejected')")["duration_ms"].to_numpy()
    assert s["timed"] == len(durations)
    for key, q in (("p50", 50), ("p95", 95), ("p99", 99)):
        assert s[key] == pytest.approx(np.percentile(durations, q), rel=1e-9)
    failures = int(fx.sql("SELECT count(*) AS n FROM executions WHERE function = 'boom' "
                          "AND status IN ('error', 'timeout', 'aborted', 'rejected')")["n"][0])
    assert failures >= hist["failures"] and s["errors"] == failures
    calls = int(fx.sql("SELECT count(*) AS n FROM executions WHERE function = 'boom' "
                       "AND status NOT IN ('skipped', 'pending')")["n"][0])
    assert s["count"] == calls and s["error_rate"] == pytest.approx(failures / calls)
    # per minute: every call and every failure in some minute (all made within the window)
    assert sum(m["errors"] for m in s["per_minute"]) == failures
    assert sum(m["calls"] for m in s["per_minute"]) == calls
    assert s["cold"]["count"] + s["warm"]["count"] == len(durations) and s["cold"]["count"] >= 1
    assert s["tiers"]["code"]["error"] >= hist["failures"]
    # the charts: the histogram marks p50/p95/p99 with their values
    hist_svg = view.svgs["histogram"]
    assert hist_svg.startswith("<svg") and 'data-marker="p95"' in hist_svg
    assert f">p95 {fmt_num(s['p95'])}</text>" in hist_svg and ">p99 " in hist_svg
    assert set(view.svgs) == {"latency", "histogram", "per_minute", "cold_warm", "tiers"}
    assert view.svgs["latency"].count("<circle") == len(durations)
    assert f'fill:{STATUS_COLOURS["error"]}' in view.svgs["per_minute"]
    assert "<img" not in view.html() and "var(--jp-" in view.html()
    _bundle_ok(view)


def test_metrics_refresh_button_requeries(hist):
    fx = hist["fx"]
    view = MetricsView(fx, "add")
    view.widget  # noqa: B018
    before = view.stats["count"]
    assert f"{before} calls" in view.parts["summary"].value
    for i in range(3):
        fx.invoke("add", i, i)
    view.parts["refresh"].click()
    assert view.stats["count"] == before + 3 and view.stats["errors"] == 0
    assert f"{before + 3} calls" in view.parts["summary"].value
    assert view.parts["histogram"].value == view.svgs["histogram"]
    assert MetricsView(fx, "nothing").stats["count"] == 0  # no history: empty charts, no errors
    assert "no executions yet" in MetricsView(fx, "nothing").html()


def test_svg_helpers():
    ticks = nice_ticks(0.017, 0.156)
    assert ticks[0] <= 0.017 and ticks[-1] >= 0.156 and len(ticks) <= 7
    svg = histogram([0, 1, 2, 3], [1, 5, 2], markers={"p50": 1.2, "p95": 2.9}, title="t")
    assert svg.count("<rect") == 3 and "p50 1.2" in svg and "p95 2.9" in svg
    assert "<svg" in histogram([], [], title="empty") and "no data" in histogram([], [])
