"""notebooks/observability.ipynb executed headless, then saved, reopened as JSON and rendered by
nbconvert: every view is its static HTML, with no widget reference to go missing (a reopened
notebook showed "Error displaying widget: model not found" in place of each view)."""

from __future__ import annotations

import json
import subprocess
import sys

import nbformat
import pytest

from .notebook_runner import execute_notebook

WIDGET_MIME = "application/vnd.jupyter.widget-view+json"
#: JupyterLab's default order of preference for the mime types our outputs could hold (the
#: widget renderer ranks first, so a bundle holding a widget reference is rendered as one).
LAB_ORDER = (WIDGET_MIME, "application/javascript", "text/html", "text/markdown",
             "image/svg+xml", "image/png", "text/plain")
#: Cell -> the class its view's HTML carries.
VIEWS = {"%invoke area": "fnb-result", "from functions_nb.widgets.result import ResultView": "fnb-result",
         "%functions": "fnb-functions", "%fn_logs": "fnb-logs", "%fn_metrics": "fnb-metrics",
         "for _ in range(5):": "fnb-breakers"}


@pytest.fixture(scope="module")
def saved(tmp_path_factory):
    """The executed notebook, written to disk as JupyterLab saves it; (path, JSON)."""
    tmp = tmp_path_factory.mktemp("observability")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("FUNCTIONS_NB_STORE", str(tmp / "store"))
        nb = execute_notebook("observability.ipynb", timeout=300)
    path = tmp / "observability.ipynb"
    nbformat.write(nb, path)
    return path, json.loads(path.read_text())


def _text(value: str | list[str]) -> str:
    """A multi-line string of the .ipynb JSON (a list of lines) as one string."""
    return "".join(value) if isinstance(value, list) else value


def _cells(doc: dict) -> dict[str, dict]:
    return {_text(c["source"]).splitlines()[0]: c for c in doc["cells"] if c["cell_type"] == "code"}


def _view_cell(doc: dict, start: str) -> dict:
    return next(c for src, c in _cells(doc).items() if src.startswith(start))


def test_observability_notebook_content(saved):
    _path, doc = saved
    cells = _cells(doc)
    html = {src: "".join(_text(o.get("data", {}).get("text/html", "")) for o in c["outputs"])
            for src, c in cells.items()}
    text = {src: "".join(_text(o.get("text", "")) + _text(o.get("data", {}).get("text/plain", ""))
                         for o in c["outputs"])
            for src, c in cells.items()}
    assert text["results = fx.map(\"area\", [(-1.0, 2.0)] * 3 + [(i, 2.0) for i in range(200)])"].strip().endswith("3")
    result = html["from functions_nb.widgets.result import ResultView"]
    assert "area@1" in result and "15" in result and "area of 3 x 5" in result
    invoked = _view_cell(doc, "%invoke area")["outputs"]
    assert "area of 2 x 4" in _text(invoked[0]["data"]["text/html"])
    assert [o["output_type"] for o in invoked] == ["display_data", "execute_result"]
    assert _text(invoked[1]["data"]["text/plain"]) == "8.0"  # the value, once: as Out
    table = html["%functions --sort calls --desc"]
    assert "<table" in table and "area" in table and "206" in table
    logs = html["%fn_logs area --level warn"]
    assert "negative side" in logs and "sides must be positive" in logs
    assert "newest first" in logs
    metrics = html["%fn_metrics area"]
    assert "<svg" in metrics and "p95" in metrics
    breakers = html["for _ in range(5):"]
    assert "area@1" in breakers and "open" in breakers and "5 consecutive failures" in breakers
    sql = text["%%fn_sql"]
    assert sql.count("ok") >= 2  # two processes: this kernel and the CLI


def test_saved_views_render_static_first(saved):
    """What JupyterLab renders first for each view's output after a reopen is the static HTML:
    no output of a view holds a widget reference (its model dies with the kernel)."""
    _path, doc = saved
    for start, css_class in VIEWS.items():
        outputs = [o for o in _view_cell(doc, start)["outputs"] if "data" in o]
        views = [o for o in outputs if css_class in _text(o["data"].get("text/html", ""))]
        assert len(views) == 1, (start, outputs)
        data = views[0]["data"]
        first = next(m for m in LAB_ORDER if m in data)
        assert first == "text/html" and WIDGET_MIME not in data, (start, list(data))
    # the view outputs carry no display id or other transient state into the file
    assert all("transient" not in o for c in doc["cells"] for o in c.get("outputs", []))


def test_every_saved_output_renders_without_the_kernel(saved):
    """Not only the views: no output of any cell (fx.map's progress bar included) is one that
    JupyterLab renders as a widget, whose model is gone once the notebook is reopened."""
    _path, doc = saved
    for cell in doc["cells"]:
        for output in cell.get("outputs", []):
            data = output.get("data", {})
            if data:
                first = next(m for m in LAB_ORDER if m in data)
                assert first != WIDGET_MIME, (_text(cell["source"])[:80], list(data))
    progress = _view_cell(doc, "results = fx.map")["outputs"]
    assert any("fnb-progress" in _text(o.get("data", {}).get("text/html", "")) for o in progress)


def test_nbconvert_html_shows_the_views(saved, tmp_path):
    path, _doc = saved
    subprocess.run([sys.executable, "-m", "nbconvert", "--to", "html", "--output-dir", str(tmp_path),
                    str(path)], check=True, capture_output=True, timeout=300)
    page = (tmp_path / "observability.html").read_text()
    assert "model not found" not in page
    for css_class in set(VIEWS.values()):
        assert f'class="{css_class}' in page or f"fnb-view {css_class}" in page, css_class
    for text in ("area of 2 x 4", "lines, newest first", "latency histogram", "Circuit breakers",
                 "5 consecutive failures"):
        assert text in page, text
