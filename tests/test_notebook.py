"""notebooks/quickstart.ipynb executed headless with nbclient (what `make demo` runs)."""

from __future__ import annotations

from functions_nb import Functions, demo


def test_quickstart_notebook(store, capsys):
    assert demo.run(store=store) == 0
    out = capsys.readouterr().out
    assert "add@1 · ok" in out and "stopped: spin: stopped at its 0.5 s time limit" in out
    assert "{'the': 2" in out and "error: mean failed: EmptyInput" in out
    fx = Functions(store=store)
    df = fx.sql("select function, status from executions order by started_at")
    assert ("spin", "timeout") in set(zip(df.function, df.status, strict=True))
    assert len(df) == 6
    fx.close()
