"""``make bench``: functions-nb against raw baselines measured in the same process.

Writes ``bench-results.json`` at the repository root: a list of
``{"name", "value", "unit", "baseline", "ratio"}``; ratio = value / baseline.
Timings on a shared machine are noisy: rounds are interleaved (ours, raw, ours, raw …)
and the median round is reported.
"""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import wasmtime

from functions_nb import Functions

ROOT = Path(__file__).resolve().parent.parent
ADD = "fn add(a: i32, b: i32) -> i32 {\n    a + b\n}\n"


def per_call_us(fn, n: int) -> float:
    start = time.perf_counter()
    for _ in range(n):
        fn()
    return (time.perf_counter() - start) / n * 1e6


def raw_wasmtime_add(code: bytes):
    """The same export called the plain wasmtime-py way: ``Func.__call__``."""
    engine = wasmtime.Engine()
    module = wasmtime.Module(engine, code)
    store = wasmtime.Store(engine)
    imports = [wasmtime.Func(store, imp.type, lambda *a: None) for imp in module.imports]
    instance = wasmtime.Instance(store, module, imports)
    func = instance.exports(store)["add"]
    assert func(store, 2, 3) == 5
    return lambda: func(store, 2, 3)


def bench_warm(fx: Functions, rounds: int = 15, n: int = 5000) -> dict:
    info = fx.info("add")
    raw = raw_wasmtime_add(fx.store.get_code(info))
    invoke = fx.invoke

    def ours():
        invoke("add", 2, 3)

    for _ in range(2000):
        ours()
        raw()
    mine, base = [], []
    for _ in range(rounds):
        mine.append(per_call_us(ours, n))
        base.append(per_call_us(raw, n))
    value, baseline = statistics.median(mine), statistics.median(base)
    return {"name": "invoke_warm_vs_raw_wasmtime", "value": round(value, 3), "unit": "us/call",
            "baseline": round(baseline, 3), "ratio": round(value / baseline, 3),
            "note": "warm fx.invoke('add', 2, 3) with history on vs wasmtime-py Func.__call__"}


COLD = """
import sys, time
t = time.perf_counter()
from functions_nb import Functions
fx = Functions(store=sys.argv[1])
assert fx.invoke("add", 2, 3) == 5
print((time.perf_counter() - t) * 1000)
"""
COLD_RAW = """
import sys, time
t = time.perf_counter()
import wasmtime
engine = wasmtime.Engine()
module = wasmtime.Module.from_file(engine, sys.argv[1])
store = wasmtime.Store(engine)
imports = [wasmtime.Func(store, i.type, lambda *a: None) for i in module.imports]
assert wasmtime.Instance(store, module, imports).exports(store)["add"](store, 2, 3) == 5
print((time.perf_counter() - t) * 1000)
"""


def bench_cold(fx: Functions, wasm_path: str, rounds: int = 5) -> dict:
    def run(code: str, arg: str) -> float:
        out = subprocess.run([sys.executable, "-c", code, arg], capture_output=True, text=True,
                             check=True)
        return float(out.stdout.strip().splitlines()[-1])

    mine, base = [], []
    for _ in range(rounds):
        mine.append(run(COLD, fx.store.url))
        base.append(run(COLD_RAW, wasm_path))
    value, baseline = statistics.median(mine), statistics.median(base)
    return {"name": "cold_invoke_fresh_process_ms", "value": round(value, 1), "unit": "ms",
            "baseline": round(baseline, 1), "ratio": round(value / baseline, 3),
            "note": "fresh process: import + open store + invoke a deployed function, vs "
                    "import wasmtime + compile + instantiate + call the same .wasm"}


def bench_rerun(fx: Functions, compile_ms: float, rounds: int = 50) -> dict:
    """Re-run the unchanged ``%%function`` cell in a real IPython shell."""
    from IPython.core.interactiveshell import InteractiveShell

    shell = InteractiveShell.instance()
    shell.run_line_magic("load_ext", "functions_nb")
    shell.magics_manager.registry["FunctionsMagics"]._fx = fx
    cell = f"%%function rust add --quiet\n{ADD}"
    assert shell.run_cell(cell).success
    times = []
    for _ in range(rounds):
        t = time.perf_counter()
        shell.run_cell(cell)
        times.append((time.perf_counter() - t) * 1000)
    assert shell.magics_manager.registry["FunctionsMagics"].last.cached
    value = statistics.median(times)
    return {"name": "cell_rerun_cached_ms", "value": round(value, 3), "unit": "ms",
            "baseline": round(compile_ms, 1), "ratio": round(value / compile_ms, 4),
            "note": "re-running an unchanged %%function cell in IPython vs the first compile "
                    "(goal <= 20 ms)"}


def bench_storage(tmp: Path, code: bytes) -> list[dict]:
    """Cold invoke (fresh client, empty loader) on a local folder vs S3 (moto on loopback),
    and a loader cache hit."""
    sys.path.insert(0, str(ROOT))
    from tests.s3server import MotoServer, s3_storage_options

    def cold(url: str, options: dict | None, rounds: int = 9) -> float:
        times = []
        for _ in range(rounds):
            t = time.perf_counter()
            fx = Functions(store=url, storage_options=options, history=False)
            assert fx.invoke("add", 2, 3) == 5
            times.append((time.perf_counter() - t) * 1000)
        return statistics.median(times)

    def raw_cold(rounds: int = 9) -> float:
        times = []
        for _ in range(rounds):
            t = time.perf_counter()
            raw_wasmtime_add(code)()
            times.append((time.perf_counter() - t) * 1000)
        return statistics.median(times)

    with MotoServer() as moto:
        moto.make_bucket("bench")
        options = s3_storage_options(moto.endpoint)
        s3_url, local_url = "s3://bench/store", str(tmp / "store")
        Functions(store=s3_url, storage_options=options, history=False).deploy("rust", ADD, name="add")
        local, s3, raw = [], [], []
        for _ in range(3):
            local.append(cold(local_url, None))
            s3.append(cold(s3_url, options))
            raw.append(raw_cold())
        local_ms, s3_ms, raw_ms = (statistics.median(x) for x in (local, s3, raw))
    fx = Functions(store=local_url, history=False)
    fx.invoke("add", 2, 3)
    hit = statistics.median(per_call_us(lambda: fx.loader.get("add"), 20000) for _ in range(5))
    call = statistics.median(per_call_us(raw_wasmtime_add(code), 5000) for _ in range(5))
    return [
        {"name": "cold_invoke_local_ms", "value": round(local_ms, 2), "unit": "ms",
         "baseline": round(raw_ms, 2), "ratio": round(local_ms / raw_ms, 3),
         "note": "fresh Functions + first invoke on a local folder vs raw wasmtime "
                 "compile + instantiate + call of the same bytes"},
        {"name": "cold_invoke_s3_ms", "value": round(s3_ms, 2), "unit": "ms",
         "baseline": round(local_ms, 2), "ratio": round(s3_ms / local_ms, 3),
         "note": "the same on S3 (s3fs, moto server on loopback) vs the local folder"},
        {"name": "loader_cache_hit_us", "value": round(hit, 3), "unit": "us",
         "baseline": round(call, 3), "ratio": round(hit / call, 4),
         "note": "resolving 'add' from the loader's LRU vs one raw wasmtime-py call"},
    ]


def main() -> int:
    with tempfile.TemporaryDirectory(prefix="fnb-bench-") as tmp:
        os.environ["FUNCTIONS_NB_CACHE"] = str(Path(tmp) / "cache")
        fx = Functions(store=str(Path(tmp) / "store"))
        t = time.perf_counter()
        info = fx.deploy("rust", ADD, name="add")
        compile_ms = (time.perf_counter() - t) * 1000
        wasm_path = str(Path(tmp) / "add.wasm")
        Path(wasm_path).write_bytes(fx.store.get_code(info))
        fx.invoke("add", 2, 3)
        results = [bench_warm(fx), bench_cold(fx, wasm_path), bench_rerun(fx, compile_ms)]
        results += bench_storage(Path(tmp), fx.store.get_code(info))
        fx.close()
        sys.path.insert(0, str(ROOT))
        from benchmarks.languages import run_all

        results += run_all(str(Path(tmp) / "lang-store"), tmp)
        from benchmarks.history import run_all as history_rows

        results += history_rows()
        from benchmarks.startup import run_all as startup_rows

        results += startup_rows()
        from benchmarks.cluster import run_all as distributed_rows

        results += distributed_rows()
        from benchmarks.s3 import run_all as s3_rows

        results += s3_rows()
        from benchmarks.models import run_all as onnx_rows

        results += onnx_rows()
        from benchmarks.python_wasi import run_all as wasi_python_rows

        results += wasi_python_rows(str(Path(tmp) / "wasi-python-store"))
    out = ROOT / "bench-results.json"
    out.write_text(json.dumps(results, indent=1) + "\n")
    for r in results:
        goal = f"  goal {r['goal']}: {'met' if r.get('met') else 'NOT met'}" if "goal" in r else ""
        print(f"{r['name']:<32} {r['value']!s:>10} {r['unit']:<8} baseline {r['baseline']!s:>10}  "
              f"ratio {r['ratio']}{goal}")
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
