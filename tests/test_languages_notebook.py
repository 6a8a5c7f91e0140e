"""notebooks/languages.ipynb: one cell per seed language, executed headless with nbclient."""

from __future__ import annotations

import nbformat

from functions_nb import Functions

from .notebook_runner import NOTEBOOKS, run_notebook


def test_languages_notebook(store, monkeypatch):
    monkeypatch.setenv("FUNCTIONS_NB_STORE", store)
    text = "\n".join(run_notebook("languages.ipynb").values())
    assert "333.8335 333.8335" in text                       # Rust dot over numpy arrays
    assert "array([0. , 0.5, 1. ])" in text                  # Zig returns a numpy array
    assert "'hello-wasm-world'" in text                      # Go
    assert "@@@@@@@@@@" in text                              # AssemblyScript mandelbrot
    assert "{'a': 4.5, 'b': 4} ('log', 'summed 3 orders')" in text  # TypeScript + console
    assert "'Functions In Every Language'" in text           # JavaScript
    assert "'median': 3" in text and "'refused: FileNotFoundError'" in text  # Python + sandbox
    assert "{'the': 2, 'cat': 1, 'saw': 1, 'dog': 1}" in text  # C#
    fx = Functions(store=store)
    deployed = {(i.name, i.language) for i in fx.list()}
    assert {lang for _, lang in deployed} == {"rust", "zig", "go", "assemblyscript", "typescript",
                                              "javascript", "python", "csharp"}
    df = fx.sql("SELECT DISTINCT language FROM executions WHERE status = 'ok'")
    assert len(df) == 8
    # the title is true, and the counts of the history cell are integers
    nb = nbformat.read(NOTEBOOKS / "languages.ipynb", as_version=4)
    assert nb.cells[0].source.startswith("# A tour of the eight languages")
    query = nb.cells[-1].source.split('"""')[1]
    counts = fx.sql(query)[["calls", "ok"]]
    assert all(str(t).startswith("int") for t in counts.dtypes), counts.dtypes
    fx.close()
