"""Models as functions: ONNX models deployed, invoked, limited, batched and reviewed."""

from __future__ import annotations

import hashlib
import json
import os
import time
import warnings
from pathlib import Path

import numpy as np
import pytest

onnx = pytest.importorskip("onnx")
pytest.importorskip("onnxruntime")
pytest.importorskip("skl2onnx")

from onnx import TensorProto as T  # noqa: E402
from onnx import helper as h  # noqa: E402
from sklearn.datasets import load_iris  # noqa: E402
from sklearn.linear_model import LogisticRegression  # noqa: E402
from sklearn.pipeline import make_pipeline  # noqa: E402
from sklearn.preprocessing import StandardScaler  # noqa: E402

from functions_nb import Functions  # noqa: E402
from functions_nb.errors import (  # noqa: E402
    BadArguments,
    CompileError,
    FunctionTimeout,
    LimitExceeded,
    StorageError,
)
from functions_nb.runtimes.onnx import runtime  # noqa: E402

from .conftest import abort_while_running  # noqa: E402

X, Y = load_iris(return_X_y=True)


@pytest.fixture(scope="module")
def clf():
    return make_pipeline(StandardScaler(), LogisticRegression(max_iter=500)).fit(X, Y)


@pytest.fixture
def iris(fx, clf):
    fx.deploy("onnx", clf, name="iris", example=X[:1])
    return fx


def opset(version: int = 17) -> list:
    return [h.make_opsetid("", version)]


def scale_model(factor: float = 2.0, dtype: int = T.FLOAT, width: int = 3) -> onnx.ModelProto:
    """y = x * factor over [N, width]: one output, so invoke returns an array."""
    graph = h.make_graph(
        [h.make_node("Mul", ["x", "k"], ["y"])], "scale",
        [h.make_tensor_value_info("x", dtype, ["N", width])],
        [h.make_tensor_value_info("y", dtype, ["N", width])],
        [h.make_tensor("k", dtype, [], [factor])])
    return h.make_model(graph, opset_imports=opset())


def slow_model() -> onnx.ModelProto:
    """A Loop of 10**9 256x256 matrix products: runs until something stops it."""
    body = h.make_graph(
        [h.make_node("MatMul", ["x_in", "x_in"], ["y0"]), h.make_node("Tanh", ["y0"], ["x_out"]),
         h.make_node("Identity", ["cond_in"], ["cond_out"])], "body",
        [h.make_tensor_value_info("i", T.INT64, []), h.make_tensor_value_info("cond_in", T.BOOL, []),
         h.make_tensor_value_info("x_in", T.FLOAT, [256, 256])],
        [h.make_tensor_value_info("cond_out", T.BOOL, []),
         h.make_tensor_value_info("x_out", T.FLOAT, [256, 256])])
    graph = h.make_graph(
        [h.make_node("Constant", [], ["M"], value=h.make_tensor("m", T.INT64, [], [10**9])),
         h.make_node("Constant", [], ["c"], value=h.make_tensor("cc", T.BOOL, [], [True])),
         h.make_node("Loop", ["M", "c", "x"], ["y"], body=body)], "slow",
        [h.make_tensor_value_info("x", T.FLOAT, [256, 256])],
        [h.make_tensor_value_info("y", T.FLOAT, [256, 256])])
    return h.make_model(graph, opset_imports=opset())


def slow_batched_model(width: int = 64) -> onnx.ModelProto:
    """x [N, width] through a Loop of 10**9 ``tanh(x @ W)``: a batched input of fixed row
    shape (the call's hot path) that runs until something stops it."""
    body = h.make_graph(
        [h.make_node("MatMul", ["x_in", "W"], ["y0"]), h.make_node("Tanh", ["y0"], ["x_out"]),
         h.make_node("Identity", ["cond_in"], ["cond_out"])], "body",
        [h.make_tensor_value_info("i", T.INT64, []), h.make_tensor_value_info("cond_in", T.BOOL, []),
         h.make_tensor_value_info("x_in", T.FLOAT, ["N", width])],
        [h.make_tensor_value_info("cond_out", T.BOOL, []),
         h.make_tensor_value_info("x_out", T.FLOAT, ["N", width])])
    graph = h.make_graph(
        [h.make_node("Constant", [], ["M"], value=h.make_tensor("m", T.INT64, [], [10**9])),
         h.make_node("Constant", [], ["c"], value=h.make_tensor("cc", T.BOOL, [], [True])),
         h.make_node("Loop", ["M", "c", "x"], ["y"], body=body)], "slow_rows",
        [h.make_tensor_value_info("x", T.FLOAT, ["N", width])],
        [h.make_tensor_value_info("y", T.FLOAT, ["N", width])],
        [onnx.numpy_helper.from_array(np.eye(width, dtype=np.float32) * 0.5, "W")])
    return h.make_model(graph, opset_imports=opset())


def blob_path(fx: Functions, info) -> Path:
    return Path(fx.store.url.removeprefix("file://")) / "blobs" / info.code_sha256


# -- deploy ------------------------------------------------------------------------------

def test_deploy_from_each_source_kind(fx, tmp_path):
    model = scale_model()
    path = tmp_path / "scale.onnx"
    onnx.save_model(model, path)
    a = fx.deploy("onnx", model, name="scale")
    assert a.version == 1 and a.runtime == "onnx" and not a.cached
    assert str(a.signature) == "scale(x: float32[N,3]) -> float32[N,3]"
    # the same bytes from bytes or a file are the same version (content-addressed)
    assert fx.deploy("onnx", model.SerializeToString(), name="scale").cached
    assert fx.deploy("onnx", str(path), name="scale").cached
    assert fx.deploy("onnx", path, name="scale").version == 1
    assert "from onnx.ModelProto" in a.source
    assert hashlib.sha256(model.SerializeToString()).hexdigest() in a.source
    listed = {i.name: i for i in fx.list()}
    assert str(listed["scale"].signature) == str(a.signature)
    out = fx.invoke("scale", np.ones((2, 3), np.float32))
    assert out.dtype == np.float32 and out.tolist() == [[2.0] * 3] * 2


def test_deploy_sklearn_pipeline(fx, clf):
    info = fx.deploy("onnx", clf, name="iris", example=X[:1])
    assert str(info.signature) == ("iris(X: float64[N,4]) -> {label: int64[N]; "
                                   "probabilities: float64[N,3]}")
    assert "scikit-learn Pipeline(StandardScaler, LogisticRegression)" in info.source
    # converting again gives the same bytes, so the same version
    assert fx.deploy("onnx", clf, name="iris", example=X[:1]).cached
    # the input type follows the example (or the flag)
    f32 = fx.deploy("onnx", clf, name="iris32", example=X[:1].astype(np.float32))
    assert "X: float32[N,4]" in str(f32.signature)
    assert "float32" in str(fx.deploy("onnx", clf, name="iris32b",
                                      flags={"input_type": "float32"}).signature)


def test_deploy_pytorch_module(fx):
    torch = pytest.importorskip("torch")
    net = torch.nn.Sequential(torch.nn.Linear(4, 3), torch.nn.Softmax(dim=1))
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # the exporter's deprecation notes stay inside deploy
        info = fx.deploy("onnx", net, name="net", example=torch.zeros(1, 4))
    assert "input: float32[N,4]" in str(info.signature)
    x = np.random.default_rng(0).random((5, 4), dtype=np.float32)
    got = fx.invoke("net", x)
    np.testing.assert_allclose(got, net(torch.from_numpy(x)).detach().numpy(), rtol=1e-5)


def test_not_a_model_and_missing_example(fx, clf):
    with pytest.raises(BadArguments, match="cannot deploy a dict as a model"):
        fx.deploy("onnx", {"a": 1}, name="m")
    with pytest.raises(BadArguments, match="cannot read the model file"):
        fx.deploy("onnx", "/nonexistent/model.onnx", name="m")
    with pytest.raises(BadArguments, match="does not accept the deploy flag 'toolchain'"):
        fx.deploy("onnx", clf, name="m", example=X[:1], flags={"toolchain": "x"})
    with pytest.raises(BadArguments, match="input_type='float16': expected one of"):
        fx.deploy("onnx", clf, name="m", example=X[:1], flags={"input_type": "float16"})
    fresh = LogisticRegression()
    with pytest.raises(BadArguments, match="needs example="):
        fx.deploy("onnx", fresh, name="m")


def test_corrupted_model_refused_at_deploy_and_at_load(fx, store):
    with pytest.raises(CompileError, match="not an ONNX model|not valid ONNX|cannot load"):
        fx.deploy("onnx", b"\x08\x07garbage that is no protobuf", name="bad")
    info = fx.deploy("onnx", scale_model(), name="scale")
    path = blob_path(fx, info)
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0xFF
    path.write_bytes(bytes(data))
    other = Functions(store=store)  # a fresh process's loader: nothing cached
    try:
        with pytest.raises(StorageError, match="corrupt"):
            other.invoke("scale", np.ones((1, 3), np.float32))
    finally:
        other.close()


def test_external_data_and_custom_ops_refused(fx):
    model = scale_model()
    tensor = model.graph.initializer[0]
    tensor.ClearField("float_data")
    tensor.data_location = T.EXTERNAL
    entry = tensor.external_data.add()
    entry.key, entry.value = "location", "/etc/passwd"
    with pytest.raises(CompileError, match="external file"):
        fx.deploy("onnx", model, name="ext")
    graph = h.make_graph([h.make_node("Evil", ["x"], ["y"], domain="com.example")], "custom",
                         [h.make_tensor_value_info("x", T.FLOAT, ["N", 3])],
                         [h.make_tensor_value_info("y", T.FLOAT, ["N", 3])])
    custom = h.make_model(graph, opset_imports=[*opset(), h.make_opsetid("com.example", 1)])
    with pytest.raises(CompileError, match="com.example"):
        fx.deploy("onnx", custom, name="custom")


# -- invoke ------------------------------------------------------------------------------

def test_invoke_row_and_batch(iris, clf):
    one = iris.invoke("iris", X[0])
    assert set(one) == {"label", "probabilities"}
    assert one["label"] == clf.predict(X[:1])[0] and one["probabilities"].shape == (3,)
    np.testing.assert_allclose(one["probabilities"], clf.predict_proba(X[:1])[0], rtol=1e-9)
    batch = iris["iris"](X[:10])
    assert batch["label"].tolist() == clf.predict(X[:10]).tolist()
    assert batch["probabilities"].shape == (10, 3)
    as_list = iris.invoke("iris", X[:2].tolist())
    assert as_list["label"].tolist() == clf.predict(X[:2]).tolist()
    # a safe widening (float32 -> float64, int -> float) is no loss
    assert iris.invoke("iris", X[:2].astype(np.float32))["label"].shape == (2,)
    assert iris.invoke("iris", [[5, 3, 1, 0]])["label"].shape == (1,)


def test_wrong_shape_and_dtype_errors(fx, iris):
    fx.deploy("onnx", scale_model(), name="scale")
    with pytest.raises(BadArguments) as err:
        fx.invoke("scale", np.ones((2, 3)))  # float64 into float32
    text = str(err.value)
    assert "argument 'x' expects float32[N,3]" in text and "float64 array of shape (2, 3)" in text
    assert ".astype(np.float32)" in text
    with pytest.raises(BadArguments, match=r"dimension 1 must be 4 .*got 3"):
        iris.invoke("iris", X[:2, :3])
    with pytest.raises(BadArguments, match="expected 2 dimensions"):
        iris.invoke("iris", X[:2][None])
    with pytest.raises(BadArguments, match="true/false is not a number"):
        iris.invoke("iris", [[True, 1.0, 2.0, 3.0]])
    ints = h.make_model(h.make_graph(
        [h.make_node("Identity", ["x"], ["y"])], "ints",
        [h.make_tensor_value_info("x", T.INT64, ["N", 2])],
        [h.make_tensor_value_info("y", T.INT64, ["N", 2])]), opset_imports=opset())
    fx.deploy("onnx", ints, name="ints")
    with pytest.raises(BadArguments, match="fraction"):
        fx.invoke("ints", [[1.5, 2.0]])
    assert fx.invoke("ints", [[1, 2]]).tolist() == [[1, 2]]
    with pytest.raises(BadArguments, match="takes 1 argument"):
        fx.invoke("ints", [[1, 2]], [[3, 4]])
    assert fx.breaker("ints")["state"] == "closed"  # caller mistakes never trip it


def test_version_pin_and_rollback(fx):
    v1 = fx.deploy("onnx", scale_model(2.0), name="scale")
    v2 = fx.deploy("onnx", scale_model(3.0), name="scale")
    x = np.ones((1, 3), np.float32)
    assert (v1.version, v2.version) == (1, 2)
    assert fx.invoke("scale", x)[0, 0] == 3.0
    assert fx.invoke("scale@1", x)[0, 0] == 2.0
    fx.rollback("scale", 1)
    assert fx.invoke("scale", x)[0, 0] == 2.0
    assert fx.versions("scale") == [1, 2]


def test_hybrid_store_fallback_and_migration(tmp_path):
    legacy = str(tmp_path / "legacy")
    old = Functions(store=legacy, history=False)
    old.deploy("onnx", scale_model(2.0), name="scale")
    old.close()
    fx = Functions(store=str(tmp_path / "primary"), fallback=legacy, history=False)
    try:
        x = np.ones((1, 3), np.float32)
        assert fx.invoke("scale", x)[0, 0] == 2.0  # read from the fallback
        assert fx.deploy("onnx", scale_model(4.0), name="scale").version == 2  # into the primary
        assert fx.store.primary.versions("scale") == [2]
        report = fx.migrate("scale", progress=False)
        assert report["copied"] == ["scale@1"] and not report["failed"]
        assert fx.store.primary.versions("scale") == [1, 2]
        assert fx.invoke("scale@1", x)[0, 0] == 2.0 and fx.invoke("scale", x)[0, 0] == 4.0
    finally:
        fx.close()


def test_sessions_shared_by_sha(fx, store):
    model = scale_model(5.0)
    fx.deploy("onnx", model, name="five")
    fx.invoke("five", np.ones((1, 3), np.float32))
    before = runtime().created
    other = Functions(store=store)  # another client in this process: the same session
    try:
        assert other.invoke("five", np.ones((1, 3), np.float32))[0, 0] == 5.0
    finally:
        other.close()
    assert runtime().created == before


# -- limits ------------------------------------------------------------------------------

def test_slow_model_stopped_at_its_time_limit(fx):
    fx.deploy("onnx", slow_model(), name="slow", timeout=0.5)
    x = np.eye(256, dtype=np.float32) * 0.5
    t0 = time.monotonic()
    ex = fx.run("slow", x)
    took = time.monotonic() - t0
    assert ex.status == "timeout" and isinstance(ex.error, FunctionTimeout)
    assert "time limit of 0.5 s" in str(ex.error)
    assert 0.4 < took < 15  # stopped, not run to the end (hours)
    assert fx.run("slow", x, timeout=0.3).status == "timeout"  # the session is reusable


def test_slow_model_aborted(fx):
    fx.deploy("onnx", slow_model(), name="slow", timeout=60)
    running, ex = abort_while_running(fx, "slow", np.eye(256, dtype=np.float32))
    assert running["function"] == "slow"
    assert ex.status == "aborted", ex.error


def test_batched_slow_model_stopped_and_aborted(fx):
    """The one-array hot path keeps the time limit and abort, and its RunOptions stay usable."""
    fx.deploy("onnx", slow_batched_model(), name="slow_rows", timeout=0.5)
    x = np.ones((2, 64), np.float32)
    t0 = time.monotonic()
    ex = fx.run("slow_rows", x)
    assert ex.status == "timeout" and isinstance(ex.error, FunctionTimeout), ex.error
    assert 0.4 < time.monotonic() - t0 < 15
    running, ex = abort_while_running(fx, "slow_rows", x)
    assert running["function"] == "slow_rows" and ex.status == "aborted", ex.error
    fx.deploy("onnx", scale_model(3.0), name="triple")
    ones = np.ones((2, 3), np.float32)
    for _ in range(3):  # the options pool after stopped runs: every call completes
        assert fx.invoke("triple", ones).tolist() == [[3.0] * 3] * 2


def test_run_options_left_terminated_do_not_stop_the_next_call(iris, clf):
    """The watchdog may set the flag of a call that has just ended (it saw the deadline as
    the run returned): the options' next call runs all the same."""
    first = iris.invoke("iris", X[:3])
    model = iris._get("iris").code
    assert model._options  # a RunOptions kept for reuse
    for options in model._options:
        options.terminate = True
    again = iris.invoke("iris", X[:3])  # the hot path
    assert again["label"].tolist() == first["label"].tolist() == clf.predict(X[:3]).tolist()
    for options in model._options:
        options.terminate = True
    listed = iris.invoke("iris", X[:3].tolist())  # the checked path (a list)
    assert listed["label"].tolist() == first["label"].tolist()
    assert not any(options.terminate for options in model._options)
    assert iris.run("iris", X[:1]).status == "ok"


def test_model_larger_than_memory_limit_refused(fx):
    weights = np.zeros(3 * 1024 * 1024, np.float32)  # 12 MB
    graph = h.make_graph(
        [h.make_node("Add", ["x", "w"], ["y"])], "big",
        [h.make_tensor_value_info("x", T.FLOAT, [weights.size])],
        [h.make_tensor_value_info("y", T.FLOAT, [weights.size])],
        [onnx.numpy_helper.from_array(weights, "w")])
    big = h.make_model(graph, opset_imports=opset())
    with pytest.raises(BadArguments, match=r"needs \d+ MB or more, above memory_mb=8"):
        fx.deploy("onnx", big, name="big", memory_mb=8)
    assert fx.deploy("onnx", big, name="big", memory_mb=64).version == 1


def test_batch_above_memory_limit_refused(fx):
    width = 256 * 1024  # a row of float32 is 1 MiB, in and out
    fx.deploy("onnx", scale_model(1.0, width=width), name="wide", memory_mb=8)
    assert fx.invoke("wide", np.ones((2, width), np.float32)).shape == (2, width)
    with pytest.raises(LimitExceeded, match=r"a batch of 5 rows needs about 10\.0 MB"):
        fx.invoke("wide", np.ones((5, width), np.float32))


# -- batching, cascade, history ---------------------------------------------------------

def test_map_batches_equal_per_row_results(iris, clf):
    res = iris.map("iris", X, progress=False)
    assert len(res) == len(X) and not res.errors
    for i in range(0, len(X), 7):
        alone = iris.invoke("iris", X[i])
        assert res[i]["label"] == alone["label"]
        np.testing.assert_allclose(res[i]["probabilities"], alone["probabilities"], rtol=1e-12)
    assert [r["label"] for r in res] == clf.predict(X).tolist()
    iris.flush()  # an array of 150 rows: one session run, one record
    rows = iris.sql(f"SELECT count(*) AS n, min(status) AS s, "
                    f"sum(CAST(json_extract(input, '$[0].rows') AS INTEGER)) AS r "
                    f"FROM executions WHERE {res.where}")
    assert rows.n[0] == 1 and rows.s[0] == "ok" and rows.r[0] == len(X)
    # a list of rows keeps one record per input
    listed = iris.map("iris", list(X[:20]), progress=False)
    assert [r["label"] for r in listed] == [r["label"] for r in res[:20]]
    iris.flush()
    n = iris.sql(f"SELECT count(DISTINCT id) AS n FROM executions WHERE {listed.where}").n[0]
    assert n == 20


def test_map_mixed_inputs_fail_alone(iris):
    mixed = [X[0], X[:3], [1, 2, 3], X[5].tolist(), "x", X[7].astype(np.float32)]
    res = iris.map("iris", mixed, progress=False)
    assert set(res.errors) == {2, 4}
    assert isinstance(res.errors[2], BadArguments) and "dimension 1 must be 4" in str(res.errors[2])
    assert res[1]["label"].shape == (3,) and np.ndim(res[0]["label"]) == 0
    assert res[3]["label"] == iris.invoke("iris", X[5])["label"]


def test_low_confidence_goes_to_a_person(iris, clf):
    top = clf.predict_proba(X).max(axis=1)
    unsure, sure = int(top.argmin()), int(top.argmax())
    assert top[unsure] < 0.8
    confident = iris.invoke("iris", X[sure], min_confidence=0.8)
    assert confident["label"] == clf.predict(X[sure:sure + 1])[0]
    pending = iris.invoke("iris", X[unsure], min_confidence=0.8)
    assert pending.task_id
    (task,) = [t for t in iris.human.ls() if t["task_id"] == pending.task_id]
    assert task["args"] == [X[unsure].tolist()]
    predicted = int(clf.predict(X[unsure:unsure + 1])[0])
    assert f"predicted label {predicted} with probability {top[unsure]:.3f}" in task["question"]
    assert task["proposed"]["label"] == predicted
    assert len(task["proposed"]["probabilities"]) == 3
    iris.human.answer(pending.task_id, {"label": 2})
    assert pending.wait(10) == {"label": 2}
    iris.flush()
    tiers = iris.sql("SELECT tier, status FROM executions WHERE function = 'iris' "
                     "ORDER BY started_at")
    got = list(zip(tiers.tier, tiers.status, strict=True))
    assert ("generative", "skipped") in got and ("agentic", "skipped") in got
    assert got[-1] == ("human", "ok")
    with pytest.raises(BadArguments, match="min_confidence must be a number from 0 to 1"):
        iris.invoke("iris", X[0], min_confidence=2)


def test_history_records_version_input_and_output(iris):
    iris.invoke("iris", X[:300 % 150 + 100])
    iris.invoke("iris", X[0])
    iris.flush()
    rows = iris.sql("SELECT version, status, input, output, duration_ms FROM executions "
                    "WHERE function = 'iris' ORDER BY started_at")
    assert list(rows.version) == [1, 1] and set(rows.status) == {"ok"}
    # a model's record: the input's dtype and shape, an output summary, not the arrays
    assert json.loads(rows.input[0]) == [{"array": "float64", "shape": [100, 4]}]
    assert json.loads(rows.input[1]) == [{"array": "float64", "shape": [4]}]
    big = json.loads(rows.output[0])
    want = iris.invoke("iris", X[:16])
    assert big == {"label": want["label"].tolist(),
                   "top_probability": want["probabilities"].max(axis=1).tolist(),
                   "shapes": {"label": [100], "probabilities": [100, 3]}}
    one = json.loads(rows.output[1])
    assert one == {"label": int(want["label"][0]),
                   "top_probability": float(want["probabilities"][0].max()),
                   "shapes": {"label": [], "probabilities": [3]}}
    assert (rows.duration_ms > 0).all()


def test_invoke_magic_and_listing(ip, clf):
    ip.user_ns.update(clf=clf, X=X)
    ip.run_line_magic("fn_model", "iris clf X[:1]")
    fx = ip.magics_manager.registry["FunctionsMagics"]._fx
    assert fx.info("iris").language == "onnx"
    out = ip.run_line_magic("invoke", "--quiet iris X[:2]")
    assert out["label"].tolist() == clf.predict(X[:2]).tolist()


def test_doctor_reports_providers():
    from functions_nb.doctor import doctor

    (row,) = [r for r in doctor() if r["language"] == "onnx"]
    assert row["usable"] and "onnxruntime" in row["version"]
    assert "CPUExecutionProvider" in row["detail"]
    assert row["runtime"] == "onnx" and "time limit" in row["isolation"]["summary"]


def test_providers_option(monkeypatch):
    from functions_nb.runtimes.onnx import OnnxRuntime

    rt = OnnxRuntime()
    with pytest.raises(BadArguments, match="unknown execution provider"):
        rt.set_providers(["NoSuchExecutionProvider"])
    rt.set_providers(["CPUExecutionProvider"])
    assert rt.providers == ["CPUExecutionProvider"]
    monkeypatch.setenv("FUNCTIONS_NB_ONNX_PROVIDERS", "CPUExecutionProvider")
    assert OnnxRuntime().providers == ["CPUExecutionProvider"]
    if os.path.exists("/dev/nvidia0"):
        pytest.skip("a CUDA device exists: the default may name CUDA")
    monkeypatch.delenv("FUNCTIONS_NB_ONNX_PROVIDERS")
    assert OnnxRuntime().providers == ["CPUExecutionProvider"]


def test_record_summary_written_as_output_summary_would_be():
    """What the history writes of a model call, made from parts worked out once per dtype
    and shape, is the text encoding the full summary gives (every call, not just the first)."""
    from functions_nb.history import _recorded, _truncate_json
    from functions_nb.runtimes.onnx import array_summary, output_summary

    rng = np.random.default_rng(7)
    cases = []
    for rows in (1, 3, 20):
        prob = rng.random((rows, 3))
        cases.append({"label": prob.argmax(1).astype(np.int64), "probabilities": prob})
        cases.append({"probabilities": prob.astype(np.float32),  # float output first
                      "label": np.array(["setosa", "versicolor", "virginica"])[prob.argmax(1)]})
    cases.append({"label": np.array(2), "probabilities": np.array([0.1, 0.2, 0.7])})  # a row
    cases.append({"a": np.ones((2, 3)), "b": np.zeros((2, 3))})  # not a classifier
    for value in cases + cases:
        assert _recorded(value, "onnx") == _truncate_json(output_summary(value))
    for arr in (np.ones((5, 4)), np.ones(4, np.float32), np.ones((2, 4)), np.ones((5, 4))):
        assert json.loads(_recorded((arr,), "onnx")) == [array_summary(arr, values=False)]
