"""fx.map over a numpy array of rows for a model: checked once, run in batches, one history
record per session run, results made from the batch outputs when read (and equal to
per-row invoke), a bad array refused as a whole, a row that fails the run failing alone."""

from __future__ import annotations

import copy
import json
import pickle

import numpy as np
import pytest

onnx = pytest.importorskip("onnx")
pytest.importorskip("onnxruntime")
pytest.importorskip("skl2onnx")

from onnx import TensorProto as T  # noqa: E402
from onnx import helper as h  # noqa: E402
from sklearn.datasets import load_iris  # noqa: E402
from sklearn.linear_model import LogisticRegression  # noqa: E402

from functions_nb import model_map  # noqa: E402
from functions_nb.errors import BadArguments  # noqa: E402
from functions_nb.model_map import BatchResults  # noqa: E402

X, Y = load_iris(return_X_y=True)


@pytest.fixture(scope="module")
def clf():
    return LogisticRegression(max_iter=500).fit(X, Y)


@pytest.fixture
def iris(fx, clf, monkeypatch):
    monkeypatch.setattr(model_map, "BATCH_ROWS", 64)  # 150 rows: runs of 64, 64 and 22
    fx.deploy("onnx", clf, name="iris", example=X[:1])
    return fx


def gather_model() -> onnx.ModelProto:
    """y = [10, 20, 30][i] for each row's index i: an index out of range fails the run."""
    graph = h.make_graph(
        [h.make_node("Gather", ["table", "i"], ["y"], axis=0)], "gather",
        [h.make_tensor_value_info("i", T.INT64, ["N"])],
        [h.make_tensor_value_info("y", T.FLOAT, ["N"])],
        [h.make_tensor("table", T.FLOAT, [3], [10.0, 20.0, 30.0])])
    return h.make_model(graph, opset_imports=[h.make_opsetid("", 17)])


def test_one_record_per_run_with_shapes_and_summaries(iris, clf):
    res = iris.map("iris", X, progress=False, map_id="m1")
    assert isinstance(res, BatchResults) and len(res) == 150 and not res.errors
    iris.flush()
    rows = iris.sql(f"SELECT id, status, input, output, duration_ms FROM executions "
                    f"WHERE {res.where} ORDER BY started_at")
    assert list(rows.id) == ["m1-0", "m1-64", "m1-128"] and set(rows.status) == {"ok"}
    inputs = [json.loads(t) for t in rows.input]
    assert inputs == [[{"array": "float64", "shape": [n, 4], "rows": n}] for n in (64, 64, 22)]
    for first, text in zip((0, 64, 128), rows.output, strict=True):
        out = json.loads(text)
        want = clf.predict_proba(X[first:first + 16])
        assert out["label"] == clf.predict(X[first:first + 16]).tolist()
        np.testing.assert_allclose(out["top_probability"], want.max(axis=1), rtol=1e-6)
        rows_in_run = inputs[first // 64][0]["rows"]
        assert out["shapes"] == {"label": [rows_in_run], "probabilities": [rows_in_run, 3]}
    assert (rows.duration_ms > 0).all()


def test_results_equal_per_row_invoke(iris):
    res = iris.map("iris", X, progress=False)
    for i in (0, 63, 64, 100, 128, 149, -1):  # items made one at a time, across batches
        alone = iris.invoke("iris", X[i])
        assert res[i]["label"] == alone["label"] and type(res[i]["label"]) is type(alone["label"])
        np.testing.assert_allclose(res[i]["probabilities"], alone["probabilities"], rtol=1e-12)
        assert res[i]["probabilities"].shape == (3,)
    want = [iris.invoke("iris", row)["label"] for row in X]
    assert [r["label"] for r in res] == want
    # a model with one output: each item is that output's row, as invoke gives it
    scale = h.make_graph([h.make_node("Mul", ["x", "k"], ["y"])], "scale",
                         [h.make_tensor_value_info("x", T.DOUBLE, ["N", 4])],
                         [h.make_tensor_value_info("y", T.DOUBLE, ["N", 4])],
                         [h.make_tensor("k", T.DOUBLE, [], [3.0])])
    iris.deploy("onnx", h.make_model(scale, opset_imports=[h.make_opsetid("", 17)]),
                name="scale")
    got = iris.map("scale", X, progress=False)
    assert all(np.array_equal(g, iris.invoke("scale", row)) for g, row in zip(got, X, strict=True))


def test_results_behave_as_a_list(iris):
    small = X[:5]
    res = iris.map("iris", small, progress=False)
    assert len(res) == 5 and bool(res)
    with pytest.raises(IndexError):
        res[5]
    with pytest.raises(TypeError):
        res["a"]
    labels = [int(r["label"]) for r in iris.map("iris", small, progress=False)]
    assert json.loads(json.dumps([{"label": int(r["label"])} for r in res])) == \
        [{"label": v} for v in labels]
    again = iris.map("iris", small, progress=False)
    plain = [iris.invoke("iris", row) for row in small]
    assert [r["label"] for r in again[1:3]] == [p["label"] for p in plain[1:3]]
    assert [r["label"] for r in reversed(again)] == [p["label"] for p in plain[::-1]]
    as_list = list(again)
    assert again == as_list and as_list == again and not (again != as_list)
    assert [None] + again == [None, *as_list] and again + [None] == [*as_list, None]
    again.append("x")  # an ordinary list from here on
    assert len(again) == 6 and again[-1] == "x"
    # pickled (a Dask chunk's result) it crosses as the batch outputs, and reads the same
    fresh = iris.map("iris", small, progress=False)
    back = pickle.loads(pickle.dumps(fresh))
    assert isinstance(back, BatchResults) and back.map_id == fresh.map_id
    assert [r["label"] for r in back] == labels == [r["label"] for r in copy.copy(fresh)]
    assert np.array([r["label"] for r in fresh]).tolist() == labels
    assert iris.map("iris", X[:0], progress=False) == []


def test_an_array_that_does_not_fit_is_refused_whole(iris):
    with pytest.raises(BadArguments, match=r"rows of a float64 array of shape \(150, 3\) do not "
                       r"fit the model, so none ran; row 0: .*dimension 1 must be 4"):
        iris.map("iris", X[:, :3], progress=False, map_id="bad")
    iris.deploy("onnx", gather_model(), name="pick")
    with pytest.raises(BadArguments, match=r"pick: the rows of a float64 array of shape \(3,\) "
                       r".*row 0: .*expects int64\[N\]"):
        iris.map("pick", np.ones(3), progress=False, map_id="bad")
    iris.flush()
    assert iris.sql("SELECT count(*) AS n FROM executions WHERE starts_with(id, 'bad-')").n[0] == 0
    # float32 rows become float64 exactly (a safe cast), as invoke allows
    res = iris.map("iris", X[:3].astype(np.float32), progress=False)
    assert [r["label"] for r in res] == \
        [iris.invoke("iris", r)["label"] for r in X[:3].astype(np.float32)]


def test_a_row_that_fails_the_run_fails_alone(iris):
    iris.deploy("onnx", gather_model(), name="pick")
    idx = np.array([0, 1, 2] * 30, dtype=np.int64)
    idx[70] = 7  # the run of rows 64..89 fails on it: those rows run alone
    res = iris.map("pick", idx[:, None][:, 0], progress=False, map_id="g")
    assert set(res.errors) == {70} and isinstance(res.errors[70], BadArguments)
    assert "out of data bounds" in str(res.errors[70])
    assert [float(res[i]) for i in (0, 1, 2, 69, 71, 89)] == [10.0, 20.0, 30.0, 10.0, 30.0, 30.0]
    iris.flush()
    rows = iris.sql("SELECT id, status FROM executions WHERE starts_with(id, 'g-') "
                    "ORDER BY started_at")
    ids = dict(zip(rows.id, rows.status, strict=True))
    # one record for the run of rows 0..63, then one per row of the failed run 64..89
    assert set(ids) == {"g-0", *(f"g-{i}" for i in range(64, 90))}
    assert ids["g-70"] == "error" and {ids[f"g-{i}"] for i in range(64, 90) if i != 70} == {"ok"}
    with pytest.raises(BadArguments, match="out of data bounds"):
        iris.map("pick", idx, progress=False, raise_errors=True)


def test_a_busy_loop_records_summaries_in_parquet_too(iris):
    from functions_nb.history import PARQUET_MIN_ROWS

    row = X[3:4]
    # a flush of PARQUET_MIN_ROWS records or more is written as Parquet; twice as many, so
    # that one background flush in the middle still leaves such a batch
    for _ in range(2 * PARQUET_MIN_ROWS):
        iris.invoke("iris", row)
    iris.flush()
    files = list(iris.history.store.fs.find(iris.history.store.root))
    assert any(f.endswith(".parquet") for f in files)
    rows = iris.sql("SELECT DISTINCT input, output FROM executions WHERE function = 'iris'")
    assert len(rows) == 1
    assert json.loads(rows.input[0]) == [{"array": "float64", "shape": [1, 4]}]
    want = iris.invoke("iris", row)
    assert json.loads(rows.output[0]) == {
        "label": want["label"].tolist(), "top_probability": [float(want["probabilities"].max())],
        "shapes": {"label": [1], "probabilities": [1, 3]}}
