"""notebooks/quickstart.ipynb executed headless with nbclient (what `make demo` runs)."""

from __future__ import annotations

import re

from functions_nb import Functions, demo

from .notebook_runner import noise


def test_quickstart_notebook(store, capsys):
    nb = demo.execute(store=store)
    assert noise(nb) == []
    demo.summarise(nb, store, 1.0)
    out = capsys.readouterr().out
    assert "add@1 · ok" in out and "stopped: spin: stopped at its 0.5 s time limit" in out
    # a Rust HashMap: its iteration order is the standard library's (changed with 1.96)
    assert "'the': 2" in out and "error: mean failed: EmptyInput" in out
    assert f"store: {store} (`make lab`" in out  # where the demo deployed, for make lab
    # one compile time, in seconds
    assert re.search(r"deployed rust add@1 \(compiled in \d+(\.\d+)? s\)", out)
    fx = Functions(store=store)
    # counts are integers (a DuckDB sum() of ints is a HUGEINT: pandas shows it as 1.0)
    query = next(c.source for c in nb.cells if c.source.startswith("%%fn_sql")).split("\n", 1)[1]
    counts = fx.sql(query)[["calls", "cold"]]
    assert all(str(t).startswith("int") for t in counts.dtypes), counts.dtypes
    df = fx.sql("select function, status from executions order by started_at")
    assert ("spin", "timeout") in set(zip(df.function, df.status, strict=True))
    assert len(df) == 6
    fx.close()
