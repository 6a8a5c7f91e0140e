"""notebooks/models.ipynb executed headless: train, deploy, invoke, map, human review, history."""

from __future__ import annotations

import pytest

pytest.importorskip("onnxruntime")
pytest.importorskip("skl2onnx")

from functions_nb import Functions  # noqa: E402

from .notebook_runner import run_notebook  # noqa: E402


def test_models_notebook(store, monkeypatch):
    monkeypatch.setenv("FUNCTIONS_NB_STORE", store)
    cells = run_notebook("models.ipynb", timeout=300)
    text = "\n".join(cells.values())
    assert "deployed model iris@1 (converted in" in text
    assert "deployed model iris@1 (unchanged)" in text  # the same model bytes: no new version
    assert "iris(X: float64[N,4]) -> {label: int64[N]; probabilities: float64[N,3]}" in text
    assert "argument 'X' expects float64[N,4], got a float64 array of shape (2, 3)" in text
    assert "true/false is not a number" in text
    assert "60 results, 0 errors; same labels as scikit-learn: 100%" in text
    assert "<pending human task" in text
    assert "below min_confidence 0.8" in text
    assert "'species': 'versicolor'" in text or "'species': 'virginica'" in text
    fx = Functions(store=store)
    try:
        rows = fx.sql("SELECT tier, status FROM executions WHERE function = 'iris'")
        pairs = set(zip(rows.tier, rows.status, strict=True))
        assert {("code", "ok"), ("generative", "skipped"), ("human", "pending"),
                ("human", "ok")} <= pairs
        # %invoke, one batch of 5, two refused calls, the map's one session run of 60 rows,
        # the cascade's code attempt
        assert (rows.tier == "code").sum() == 1 + 1 + 2 + 1 + 1
        mapped = fx.sql("SELECT CAST(json_extract(input, '$[0].rows') AS INTEGER) AS n "
                        "FROM executions WHERE function = 'iris' AND input LIKE '%\"rows\"%'")
        assert list(mapped.n) == [60]
        (task,) = fx.human.ls(status=None)
        assert task["status"] == "answered" and task["who"] == "ana"
    finally:
        fx.close()
