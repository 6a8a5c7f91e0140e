"""History benchmarks for ``make bench``: what recording costs per invocation, and how fast a
dashboard query over 1e6 executions is."""

from __future__ import annotations

import statistics
import sys
import tempfile
import time
from pathlib import Path

from functions_nb import Functions

ROOT = Path(__file__).resolve().parent.parent
ADD = "fn add(a: i32, b: i32) -> i32 {\n    a + b\n}\n"


def bench_record_overhead(n: int = 20000, rounds: int = 7) -> dict:
    """Invoke with history on (its background thread writing the records every second, and
    one final flush per round) vs the same client with history off; the difference per
    invocation, amortised."""
    with tempfile.TemporaryDirectory() as tmp:
        on = Functions(store=tmp)
        off = Functions(store=tmp, history=False)
        on.deploy("rust", ADD, name="add")
        on.invoke("add", 1, 2)
        off.invoke("add", 1, 2)
        on.flush()

        def run(fx: Functions, flush: bool) -> float:
            t = time.perf_counter()
            for _ in range(n):
                fx.invoke("add", 2, 3)
            if flush:
                fx.flush()
            return (time.perf_counter() - t) / n * 1e6

        mine, base = [], []
        for _ in range(rounds):
            mine.append(run(on, True))
            base.append(run(off, False))
        on.close()
    value, baseline = statistics.median(mine), statistics.median(base)
    return {"name": "record_overhead_us", "value": round(value - baseline, 3), "unit": "us",
            "baseline": round(baseline, 3), "ratio": round((value - baseline) / baseline, 3),
            "goal": "< 5 us amortised", "met": value - baseline < 5,
            "note": "invoke with history on (record + its share of the Parquet flush) minus "
                    "invoke with history off; baseline = the invoke without history"}


def bench_query_1e6(rounds: int = 11) -> dict:
    sys.path.insert(0, str(ROOT))
    from tests.history_synth import DASHBOARD_QUERY, write_synthetic

    with tempfile.TemporaryDirectory() as tmp:
        fx = Functions(store=tmp)
        write_synthetic(fx, 1_000_000)
        fx.sql(DASHBOARD_QUERY)
        times = []
        for _ in range(rounds):
            t = time.perf_counter()
            df = fx.sql(DASHBOARD_QUERY)
            times.append((time.perf_counter() - t) * 1000)
        assert int(df.calls.sum()) == 1_000_000
        import duckdb

        con = duckdb.connect()
        raw = []
        path = fx.store.fs.glob(f"{fx.history.root}/date=*/*.parquet")[0]
        query = DASHBOARD_QUERY.replace("FROM executions", f"FROM read_parquet('{path}')")
        for _ in range(rounds):
            t = time.perf_counter()
            con.execute(query).df()
            raw.append((time.perf_counter() - t) * 1000)
        fx.close()
    value, baseline = statistics.median(times), statistics.median(raw)
    return {"name": "history_query_1e6_ms", "value": round(value, 1), "unit": "ms",
            "baseline": round(baseline, 1), "ratio": round(value / baseline, 3),
            "goal": "p50 <= 200 ms", "met": value <= 200,
            "note": "p50 of the functions-table query (count, error rate, p50/p95 latency, last "
                    "status per function) over 1e6 executions through fx.sql (listing the store, "
                    "views, DuckDB), vs the same query on the Parquet file in bare DuckDB"}


def run_all() -> list[dict]:
    """In a fresh process, so the other benchmarks' objects do not weigh on the garbage
    collector during the recording benchmark."""
    import json
    import subprocess

    code = (f"import json, sys; sys.path.insert(0, {str(ROOT)!r}); from benchmarks.history "
            "import bench_record_overhead, bench_query_1e6; "
            "print(json.dumps([bench_record_overhead(), bench_query_1e6()]))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])
