"""``fx.map`` benchmarks for ``make bench``: a batch in-process, and the same batch on a Dask
LocalCluster of 2 worker processes vs 1.

Both run in a fresh process (like ``benchmarks/history.py``), with history on and its default
1 s background flush, and one final flush inside the timing.
"""

from __future__ import annotations

import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
ADD = "fn add(a: i32, b: i32) -> i32 {\n    a + b\n}\n"


def bench_map_inprocess(n: int = 10_000, rounds: int = 9) -> dict:
    """``fx.map("add", inputs)`` over ``n`` inputs (default progress: a tqdm bar), vs a plain
    Python loop of ``fx.invoke`` over the same inputs; invocations per second."""
    from functions_nb import Functions

    with tempfile.TemporaryDirectory() as tmp:
        fx = Functions(store=tmp)
        fx.deploy("rust", ADD, name="add")
        inputs = [(i, i) for i in range(n)]
        invoke = fx.invoke

        def mapped() -> float:
            t = time.perf_counter()
            out = fx.map("add", inputs)
            fx.flush()
            elapsed = time.perf_counter() - t
            assert out[-1] == 2 * (n - 1)
            return n / elapsed

        def loop() -> float:
            t = time.perf_counter()
            for a, b in inputs:
                invoke("add", a, b)
            fx.flush()
            return n / (time.perf_counter() - t)

        mapped()
        loop()
        mine, base = [], []
        for _ in range(rounds):
            mine.append(mapped())
            base.append(loop())
        fx.close()
    value, baseline = statistics.median(mine), statistics.median(base)
    return {"name": "map_inprocess_inv_per_s", "value": round(value), "unit": "inv/s",
            "baseline": round(baseline), "ratio": round(value / baseline, 3),
            "goal": ">= 20000 inv/s", "met": value >= 20_000,
            "note": f"fx.map of a Rust add over {n} inputs in-process (history on, progress bar "
                    "on, final flush timed) vs a Python loop of fx.invoke over the same inputs"}


def bench_dask_2w_vs_1w(n: int = 400_000, rounds: int = 5) -> dict:
    """The same map over ``n`` inputs on a LocalCluster of 2 worker processes vs one of 1
    worker (1 thread each; both clusters up, rounds interleaved); invocations per second."""
    from distributed import Client, LocalCluster

    from functions_nb import Functions
    from functions_nb.distributed import map_on_cluster

    with tempfile.TemporaryDirectory() as tmp:
        fx = Functions(store=tmp)
        target = fx.deploy("rust", ADD, name="add").target
        fx.invoke("add", 1, 2)  # the precompiled module is in the store for the workers
        inputs = [(i, 1) for i in range(n)]
        expect = [i + 1 for i in range(n)]
        clusters = {w: LocalCluster(n_workers=w, threads_per_worker=1, processes=True,
                                    dashboard_address=None) for w in (1, 2)}
        clients = {w: Client(c, set_as_default=False) for w, c in clusters.items()}
        try:
            def run(workers: int) -> float:
                t = time.perf_counter()
                out = map_on_cluster(clients[workers], tmp, None, target, inputs, progress=False)
                elapsed = time.perf_counter() - t
                assert out == expect
                return n / elapsed

            for w in (1, 2):  # workers import, open the store, load the function
                map_on_cluster(clients[w], tmp, None, target, inputs[:20_000], progress=False)
            speed: dict[int, list[float]] = {1: [], 2: []}
            secs: dict[int, list[float]] = {1: [], 2: []}
            for _ in range(rounds):
                for w in (1, 2):
                    speed[w].append(run(w))
                    secs[w].append(n / speed[w][-1])
            rows = fx.sql("SELECT count(*) AS n, count(DISTINCT pid) AS pids FROM executions "
                          "WHERE starts_with(id, 'map-')").iloc[0]
        finally:
            for w in (1, 2):
                clients[w].close()
                clusters[w].close()
        fx.close()
    value, baseline = statistics.median(speed[2]), statistics.median(speed[1])
    t1, t2 = statistics.median(secs[1]), statistics.median(secs[2])
    return {"name": "dask_2w_vs_1w", "value": round(value), "unit": "inv/s",
            "baseline": round(baseline), "ratio": round(value / baseline, 3),
            "goal": "ratio >= 1.6", "met": value / baseline >= 1.6,
            "note": f"map_on_cluster of a Rust add over {n} inputs (history on in the workers, "
                    f"{int(rows.n)} rows from {int(rows.pids)} worker pids): LocalCluster of 2 "
                    f"worker processes ({t2:.2f} s) vs 1 ({t1:.2f} s), 1 thread each, scheduler "
                    "and client in the benchmark process, on the shared 2-core machine; "
                    "ratio = time(1 worker) / time(2 workers)"}


def run_all() -> list[dict]:
    """Each benchmark in a fresh process."""
    import json
    import subprocess

    rows = []
    for name in ("bench_map_inprocess", "bench_dask_2w_vs_1w"):
        code = (f"import json, sys; sys.path.insert(0, {str(ROOT)!r}); "
                f"from benchmarks.distributed import {name}\n"
                f"if __name__ == '__main__': print('\\n' + json.dumps({name}()))")
        out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                             check=True)
        rows.append(json.loads(out.stdout.strip().splitlines()[-1]))
    return rows


if __name__ == "__main__":
    for row in run_all():
        print(row)
