"""A model deployed from Python, invoked through the other front ends: ``func invoke`` (a
separate process: a cold start with session creation) and the REST API."""

from __future__ import annotations

import json

import numpy as np
import pytest

pytest.importorskip("onnxruntime")
pytest.importorskip("skl2onnx")

from sklearn.datasets import load_iris  # noqa: E402
from sklearn.linear_model import LogisticRegression  # noqa: E402

from functions_nb import Functions  # noqa: E402

from .test_cli import func  # noqa: E402

pytest_plugins = ["pytest_jupyter.jupyter_server"]

X, Y = load_iris(return_X_y=True)


@pytest.fixture
def jp_server_config(tmp_path):
    return {"ServerApp": {"jpserver_extensions": {"functions_nb.server": True}},
            "FunctionsNB": {"store": str(tmp_path / "store")}}


@pytest.fixture
def iris_clf(tmp_path):
    clf = LogisticRegression(max_iter=500).fit(X, Y)
    fx = Functions(store=str(tmp_path / "store"))
    fx.deploy("onnx", clf, name="iris", example=X[:1])
    fx.close()
    return clf


def test_func_invoke_a_model(tmp_path, iris_clf):
    res = func(str(tmp_path / "store"), "invoke", "iris", json.dumps([X[:2].tolist()]))
    out = json.loads(res.stdout)
    assert out["label"] == iris_clf.predict(X[:2]).tolist()
    np.testing.assert_allclose(out["probabilities"], iris_clf.predict_proba(X[:2]), rtol=1e-9)
    bad = func(str(tmp_path / "store"), "invoke", "iris", "[[[1, 2]]]", check=False)
    assert bad.returncode != 0 and "dimension 1 must be 4" in bad.stderr
    assert "onnx" in func(str(tmp_path / "store"), "ls").stdout


def test_func_deploy_an_onnx_file(tmp_path, iris_clf):
    import onnx
    from onnx import TensorProto as T
    from onnx import helper as h

    graph = h.make_graph([h.make_node("Neg", ["x"], ["y"])], "neg",
                         [h.make_tensor_value_info("x", T.FLOAT, ["N", 2])],
                         [h.make_tensor_value_info("y", T.FLOAT, ["N", 2])])
    path = tmp_path / "neg.onnx"
    onnx.save_model(h.make_model(graph, opset_imports=[h.make_opsetid("", 17)]), path)
    store = str(tmp_path / "store")
    out = func(store, "deploy", str(path)).stdout
    assert "deployed neg@1 (onnx" in out and "neg(x: float32[N,2]) -> float32[N,2]" in out
    assert json.loads(func(store, "invoke", "neg", "[[[1.5, -2]]]").stdout) == [[-1.5, 2.0]]


async def test_rest_invoke_a_model(api, iris_clf):
    resp, data = await api("functions", "iris", "invoke", method="POST",
                           body={"args": [X[:3].tolist()]})
    assert resp.code == 200, data
    assert data["value"]["label"] == iris_clf.predict(X[:3]).tolist()
    assert len(data["value"]["probabilities"]) == 3
    resp, data = await api("functions", "iris", "invoke", method="POST",
                           body={"args": [[[1.0, 2.0]]]})
    assert resp.code == 400 and "expects float64[N,4]" in json.dumps(data)
    resp, data = await api("functions", "iris")
    assert resp.code == 200 and data["language"] == "onnx"


async def test_rest_deploys_a_model_from_base64_never_a_path(api, tmp_path):
    import base64

    import onnx
    from onnx import TensorProto as T
    from onnx import helper as h

    graph = h.make_graph([h.make_node("Neg", ["x"], ["y"])], "neg",
                         [h.make_tensor_value_info("x", T.FLOAT, ["N", 2])],
                         [h.make_tensor_value_info("y", T.FLOAT, ["N", 2])])
    model = h.make_model(graph, opset_imports=[h.make_opsetid("", 17)])
    path = tmp_path / "neg.onnx"
    onnx.save_model(model, path)
    resp, data = await api("functions", method="POST",
                           body={"language": "onnx", "name": "neg", "source": str(path)})
    assert resp.code == 400 and "base64" in json.dumps(data)  # a server path is not read
    body = {"language": "onnx", "name": "neg",
            "source": base64.b64encode(model.SerializeToString()).decode()}
    resp, data = await api("functions", method="POST", body=body)
    assert resp.code == 201, data
    resp, data = await api("functions", "neg", "invoke", method="POST", body={"args": [[[1, 2]]]})
    assert resp.code == 200 and data["value"] == [[-1.0, -2.0]]
