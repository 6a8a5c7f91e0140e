"""fx.map of a model on a Dask LocalCluster: each worker batches its chunks with its own
session cache; results in order, one record per input, from both worker processes; an
array is shipped in array chunks, one record per session run."""

from __future__ import annotations

import os

import numpy as np
import pytest

pytest.importorskip("onnxruntime")
pytest.importorskip("skl2onnx")
distributed = pytest.importorskip("distributed")

from sklearn.datasets import load_iris  # noqa: E402
from sklearn.linear_model import LogisticRegression  # noqa: E402

from functions_nb import Functions  # noqa: E402
from functions_nb.errors import BadArguments  # noqa: E402


def _sessions() -> tuple[int, int]:
    from functions_nb.runtimes.onnx import runtime

    return os.getpid(), runtime().created


def test_map_a_model_on_a_cluster(store):
    X, y = load_iris(return_X_y=True)
    clf = LogisticRegression(max_iter=500).fit(X, y)
    rows = list(np.tile(X, (4, 1)))  # 600 rows
    rows[7] = X[0, :3]  # one input that does not fit
    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True,
                                  dashboard_address=":0") as cluster, \
            distributed.Client(cluster, set_as_default=False) as client:
        fx = Functions(store=store, cluster=client)
        fx.history.list_ttl = 0  # each query lists the files the workers wrote just before
        try:
            fx.deploy("onnx", clf, name="iris", example=X[:1])
            res = fx.map("iris", rows, progress=False, chunk_size=100)
            assert set(res.errors) == {7} and isinstance(res.errors[7], BadArguments)
            want = clf.predict(np.stack([r for i, r in enumerate(rows) if i != 7]))
            got = [r["label"] for i, r in enumerate(res) if i != 7]
            assert got == want.tolist()
            created = dict(client.run(_sessions).values())  # worker pid -> sessions made
            rec = fx.sql(f"SELECT count(DISTINCT id) AS ids, list(DISTINCT pid) AS pids "
                         f"FROM executions WHERE {res.where}").iloc[0]
            assert rec.ids == len(rows)
            # every worker that ran chunks made its own session, once (not once per chunk)
            assert {int(p) for p in rec.pids} <= set(created)
            assert all(created[int(p)] == 1 for p in rec.pids)
            # an array crosses in array chunks: one record per chunk's session run
            table = np.tile(X, (4, 1))
            res = fx.map("iris", table, progress=False, chunk_size=100, map_id="arr")
            assert not res.errors and [r["label"] for r in res] == clf.predict(table).tolist()
            runs = fx.sql("SELECT id, CAST(json_extract(input, '$[0].rows') AS INTEGER) AS n "
                          "FROM executions WHERE starts_with(id, 'arr-') ORDER BY id")
            assert sorted(runs.id) == sorted(f"arr-{i}" for i in range(0, 600, 100))
            assert set(runs.n) == {100}
            with pytest.raises(BadArguments, match="row 0: .*dimension 1 must be 4"):
                fx.map("iris", table[:, :3], progress=False, chunk_size=100)
        finally:
            fx.close()
