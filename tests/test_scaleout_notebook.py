"""notebooks/scaleout.ipynb executed headless: fx.map on a LocalCluster of two processes."""

from __future__ import annotations

from functions_nb import Functions

from .notebook_runner import run_notebook


def test_scaleout_notebook(store, monkeypatch):
    monkeypatch.setenv("FUNCTIONS_NB_STORE", store)
    text = "\n".join(run_notebook("scaleout.ipynb", timeout=300).values())
    assert "(17647, 278)" in text  # the longest Collatz run below 20001
    # a failing input fails alone, shown as its one-line message, not a repr
    assert "0 0.25\n1 0.5\n2 error: inverse failed: no inverse of 0\n3 1.0" in text
    assert "InvocationError(" not in text
    fx = Functions(store=store)
    df = fx.sql("SELECT count(DISTINCT id) AS n, count(DISTINCT pid) AS pids FROM executions "
                "WHERE function = 'collatz'")
    assert df.n[0] == 20000 and df.pids[0] == 2
    fx.close()
