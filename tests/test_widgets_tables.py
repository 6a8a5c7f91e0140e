"""``%functions`` table and ``%fn_breakers`` view over a real store with real executions."""

from __future__ import annotations

import time

import pytest

from functions_nb import BreakerConfig, CircuitOpen, Functions, InvocationError
from functions_nb.widgets.breakers import BreakersView
from functions_nb.widgets.functions import FunctionsTable, format_ms, format_rate

from .conftest import ADD_RS, BOOM_RS

WIDGET_MIME = "application/vnd.jupyter.widget-view+json"


@pytest.fixture
def fx(store):
    """boom tripped (2 panics, then a call rejected by its open breaker) and add called 3 times."""
    f = Functions(store=store, breaker=BreakerConfig(failure_threshold=2, reset_timeout=30))
    f.deploy("rust", ADD_RS, name="add")
    f.deploy("rust", BOOM_RS, name="boom")
    for i in range(3):
        assert f.invoke("add", i, 1) == i + 1
    for _ in range(2):
        with pytest.raises(InvocationError):
            f.invoke("boom", 1)
    with pytest.raises(CircuitOpen):
        f.invoke("boom", 1)
    f.flush()
    yield f
    f.close()


def names(rows):
    return [r["name"] for r in rows]


def test_formats():
    assert format_ms(1234.5) == "1230 ms"
    assert format_ms(123.45) == "123 ms"
    assert format_ms(1.2345) == "1.23 ms"
    assert format_ms(0.012345) == "0.0123 ms"
    assert format_ms(9.996) == "10.0 ms"
    assert format_ms(0) == "0 ms"
    assert format_ms(None) == format_ms(float("nan")) == "—"
    assert format_rate(2 / 3) == "66.7%" and format_rate(None) == "—"


def test_functions_table_rows_sort_refresh(fx, monkeypatch):
    queries = []
    real_sql = fx.sql
    monkeypatch.setattr(fx, "sql", lambda q: queries.append(q) or real_sql(q))
    view = FunctionsTable(fx)
    assert len(queries) == 1  # one DuckDB query for every function's statistics
    assert names(view.rows) == ["add", "boom"]
    add, boom = view.rows
    assert (add["version"], add["language"], add["calls"], add["errors"]) == (1, "rust", 3, 0)
    assert add["error_rate"] == 0.0 and add["breaker"] == "closed" and add["last_status"] == "ok"
    assert add["p50_ms"] > 0 and add["p95_ms"] >= add["p50_ms"]
    # two panics and one call rejected by the open breaker: every call failed
    assert (boom["calls"], boom["errors"], boom["error_rate"]) == (3, 3, 1.0)
    assert boom["breaker"] == "open" and boom["last_status"] == "rejected"
    assert boom["p50_ms"] > 0  # the panics ran; the rejected call has no latency
    assert boom["last_call"] >= add["last_call"]

    # static HTML: the same table
    page = view.html()
    assert page.index("<b>add</b>") < page.index("<b>boom</b>")
    for text in ("100.0%", "0.0%", format_ms(boom["p50_ms"]), format_ms(add["p95_ms"]), "● open",
                 "● closed", "● rejected", "var(--jp-border-color2"):
        assert text in page

    # the output is static; the widget panel (shown only when asked for): the dropdown and the
    # toggle reorder the rows
    bundle = view._repr_mimebundle_()
    assert set(bundle) == {"text/html", "text/plain"} and view.widget.model_id
    view.sort_dropdown.value = "error_rate"
    view.descending_toggle.value = True
    assert names(view.rows) == ["boom", "add"] and view.sort_key == "error_rate" and view.descending
    assert view.table_view.value.index("<b>boom</b>") < view.table_view.value.index("<b>add</b>")
    assert "error rate ▼" in view.table_view.value and "descending" in view.descending_toggle.description
    view.sort_dropdown.value = "name"
    view.descending_toggle.value = False
    assert names(view.rows) == ["add", "boom"]
    assert view.table_view.value.index("<b>add</b>") < view.table_view.value.index("<b>boom</b>")

    # .sort() does the same and the controls follow
    view.sort("error rate", descending=True)
    assert names(view.rows) == ["boom", "add"]
    assert (view.sort_dropdown.value, view.descending_toggle.value) == ("error_rate", True)
    view.sort("name")
    assert names(view.rows) == ["add", "boom"] and view.sort_dropdown.value == "name"
    view.sort("calls", descending=True)  # a tie (3 and 3) keeps name order
    assert names(view.rows) == ["add", "boom"]
    with pytest.raises(ValueError):
        view.sort("colour")

    # more calls: Refresh re-queries (one query), the sort order is kept
    for i in range(4):
        fx.invoke("add", i, i)
    view.sort("calls", descending=True)
    queries.clear()
    view.refresh_button.click()
    assert len(queries) == 1
    assert [(r["name"], r["calls"]) for r in view.rows] == [("add", 7), ("boom", 3)]
    assert "<span class=\"fnb-num\">7</span>" in view.table_view.value
    assert view.table_view.value == view.html()


def test_functions_table_latest_only_and_empty(fx, tmp_path):
    v2 = fx.deploy("rust", ADD_RS.replace("a + b", "a + b + 0"), name="add")
    assert v2.version == 2
    fx.invoke("add", 1, 1)
    all_versions = {r["name"]: r for r in FunctionsTable(fx).rows}
    latest = {r["name"]: r for r in FunctionsTable(fx, latest_only=True).rows}
    assert all_versions["add"]["version"] == latest["add"]["version"] == 2
    assert (all_versions["add"]["calls"], latest["add"]["calls"]) == (4, 1)
    assert latest["add"]["breaker"] == "closed"
    empty = Functions(store=str(tmp_path / "empty"))
    try:
        view = FunctionsTable(empty)
        assert view.rows == [] and "No functions deployed yet" in view.html()
    finally:
        empty.close()


def test_breakers_view_reset(fx):
    view = BreakersView(fx, live=False)
    assert [r["breaker"] for r in view.rows] == ["add@1", "boom@1"]
    add, boom = view.rows
    assert add["state"] == "closed" and add["transitions"] == []
    assert (boom["state"], boom["failures"], boom["trips"]) == ("open", 2, 1)
    assert 0 < boom["retry_in"] <= 30
    assert [(t["from"], t["to"], t["why"]) for t in boom["transitions"]] == [
        ("closed", "open", "2 consecutive failures")]
    page = view.html()
    for text in ("boom@1", "● open", "closed → open", "2 consecutive failures", "Transitions"):
        assert text in page
    assert WIDGET_MIME not in view._repr_mimebundle_()
    _ = view.widget  # the panel with the Reset buttons
    assert "2 consecutive failures" in view.timeline_view.value
    assert "● open" in view._cells["boom@1"][1].value
    assert view._cells["boom@1"][4].value.endswith(" s</span></span>")  # the countdown

    with pytest.raises(CircuitOpen):
        fx.invoke("boom", 0)
    view.reset_buttons["boom@1"].click()
    assert fx.invoke("boom", 0) == 0
    boom = view.rows[1]
    assert boom["state"] == "closed" and boom["failures"] == 0 and boom["retry_in"] == 0
    assert boom["transitions"][-1]["why"] == "reset by hand"
    assert (boom["transitions"][-1]["from"], boom["transitions"][-1]["to"]) == ("open", "closed")
    assert "● closed" in view._cells["boom@1"][1].value
    assert "reset by hand" in view.timeline_view.value and "reset by hand" in view.html()
    assert view.transitions()[0]["why"] == "reset by hand"  # newest first

    # trip it again: Refresh shows the second trip; the grid keeps its widgets
    cells, button = view._cells["boom@1"], view.reset_buttons["boom@1"]
    for _ in range(2):
        with pytest.raises(InvocationError):
            fx.invoke("boom", 1)
    assert view.rows[1]["state"] == "closed"  # not yet re-read
    view.refresh_button.click()
    assert (view.rows[1]["state"], view.rows[1]["trips"]) == ("open", 2)
    assert view._cells["boom@1"] is cells and view.reset_buttons["boom@1"] is button
    assert button in view.grid.children and not button.disabled

    only_add = BreakersView(fx, "add", live=False)
    assert [r["breaker"] for r in only_add.rows] == ["add@1"]


def test_breakers_live_countdown(fx):
    view = BreakersView(fx, interval=0.05)
    assert not view.running  # the thread starts when the view is displayed, or with the widget
    view.displayed()
    assert view.running and view._thread.daemon
    _ = view.widget
    first = view._cells["boom@1"][4].value
    deadline = time.monotonic() + 5
    while view._cells["boom@1"][4].value == first and time.monotonic() < deadline:
        time.sleep(0.05)
    assert view._cells["boom@1"][4].value != first  # the countdown moved on its own
    view.stop(timeout=2)
    assert not view.running
    time.sleep(0.01)
    assert view.poll() is True  # an open breaker's retry_in always changes
    fx.loader.breaker("boom", 1).reset()
    view.refresh()
    assert view.poll() is False  # nothing open, nothing changed
