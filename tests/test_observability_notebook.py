"""notebooks/observability.ipynb executed headless: every view renders its static HTML
(no widget frontend in nbclient), over executions from this kernel and the CLI."""

from __future__ import annotations

from pathlib import Path

import nbformat
from nbclient import NotebookClient

NOTEBOOK = Path(__file__).resolve().parent.parent / "notebooks" / "observability.ipynb"


def test_observability_notebook(store, monkeypatch):
    monkeypatch.setenv("FUNCTIONS_NB_STORE", store)
    nb = nbformat.read(NOTEBOOK, as_version=4)
    NotebookClient(nb, timeout=300, kernel_name="python3",
                   resources={"metadata": {"path": str(NOTEBOOK.parent)}}).execute()
    html = {}
    text = {}
    for cell in nb.cells:
        if cell.cell_type != "code":
            continue
        src = cell.source.splitlines()[0]
        html[src] = "".join(o.get("data", {}).get("text/html", "") for o in cell.outputs)
        text[src] = "".join(str(o.get("text", "")) + o.get("data", {}).get("text/plain", "")
                            for o in cell.outputs)
        # our views carry the widget reference and the static fallback side by side
        if src.startswith(("%functions", "%fn_", "from functions_nb.widgets", "for _ in")):
            data = [o["data"] for o in cell.outputs if "data" in o]
            assert data and all("text/html" in d for d in data), src
            assert any("application/vnd.jupyter.widget-view+json" in d for d in data), src
    assert text["results = fx.map(\"area\", [(-1.0, 2.0)] * 3 + [(i, 2.0) for i in range(200)])"].strip().endswith("3")
    result = html["from functions_nb.widgets.result import ResultView"]
    assert "area@1" in result and "15" in result and "area of 3 x 5" in result
    table = html["%functions --sort calls --desc"]
    assert "<table" in table and "area" in table and "205" in table
    logs = html["%fn_logs area --level warn"]
    assert "negative side" in logs and "sides must be positive" in logs
    metrics = html["%fn_metrics area"]
    assert "<svg" in metrics and "p95" in metrics
    breakers = html["for _ in range(5):"]
    assert "area@1" in breakers and "open" in breakers and "5 consecutive failures" in breakers
    sql = text["%%fn_sql"]
    assert sql.count("ok") >= 2  # two processes: this kernel and the CLI
