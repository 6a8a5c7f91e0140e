"""Start-up benchmarks for ``make bench``: what a new process, the CLI, ``import`` and a history
query cost, each measured side by side with a peer in the same run.

- ``cold_process_vs_extism``: a whole process (spawn -> exit) that imports functions-nb, opens
  the store, calls a deployed Rust ``add`` once (history on: its record is flushed at exit)
  vs the same with Extism's Python SDK and a plugin of the same function built here by the
  same rustc against Extism's kernel imports (``extism:host/env``, no PDK crate).
- ``cli_invoke_vs_raw``: ``func invoke add '[2, 3]'`` vs ``python -c`` loading the
  precompiled module with wasmtime-py and calling it.
- ``import_vs_wasmtime``: ``python -c "import functions_nb"`` vs ``python -c "import wasmtime"``
  (and, without a goal, ``from functions_nb import Functions``, which loads the SDK).
- ``sql_vs_kept_duckdb``: ``fx.sql`` of the functions-table query over 1e5 executions vs the
  same query on a kept DuckDB connection reading the same file.

Processes are timed from spawn to exit, rounds interleaved (ours, peer, ours, …); the ratio
is of the minimum round (load on a shared machine only adds time), and each note gives the
medians too. Child processes use byte-compiled modules, as an installed package does:
``PYTHONDONTWRITEBYTECODE`` is dropped and a warm-up run fills a private ``PYTHONPYCACHEPREFIX``.
"""

from __future__ import annotations

import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
ADD = "fn add(a: i32, b: i32) -> i32 {\n    a + b\n}\n"

#: The Extism plugin: reads two little-endian i32 from its input, writes their sum (4 bytes).
EXTISM_ADD = """#![no_std]
#[panic_handler]
fn panic(_: &core::panic::PanicInfo) -> ! { core::arch::wasm32::unreachable() }

#[link(wasm_import_module = "extism:host/env")]
extern "C" {
    fn input_length() -> u64;
    fn input_load_u64(offs: u64) -> u64;
    fn alloc(length: u64) -> u64;
    fn store_u64(offs: u64, data: u64);
    fn output_set(offs: u64, length: u64);
}

#[no_mangle]
pub extern "C" fn add() -> i32 {
    unsafe {
        if input_length() != 8 {
            return 1;
        }
        let x = input_load_u64(0);
        let sum = (x as u32 as i32).wrapping_add((x >> 32) as u32 as i32);
        let out = alloc(8);
        store_u64(out, sum as u32 as u64);
        output_set(out, 4);
    }
    0
}
"""

COLD = """
import sys
from functions_nb import Functions
fx = Functions(store=sys.argv[1])
assert fx.invoke("add", 2, 3) == 5
"""
COLD_EXTISM = """
import struct, sys
import extism
with open(sys.argv[1], "rb") as fh:
    plugin = extism.Plugin(fh.read(), wasi=False)
assert struct.unpack("<i", plugin.call("add", struct.pack("<ii", 2, 3)))[0] == 5
"""
RAW_PRECOMPILED = """
import sys
import wasmtime
engine = wasmtime.Engine()
module = wasmtime.Module.deserialize_file(engine, sys.argv[1])
store = wasmtime.Store(engine)
imports = [wasmtime.Func(store, i.type, lambda *a: None) for i in module.imports]
print(wasmtime.Instance(store, module, imports).exports(store)["add"](store, 2, 3))
"""


def child_env(tmp: Path) -> dict[str, str]:
    env = dict(os.environ)
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    env["PYTHONPYCACHEPREFIX"] = str(tmp / "pycache")
    env["FUNCTIONS_NB_CACHE"] = str(tmp / "cache")
    return env


def spawn_ms(cmd: list[str], env: dict[str, str]) -> float:
    """Wall time of one process, spawn to exit (it must succeed)."""
    t = time.perf_counter()
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True)
    ms = (time.perf_counter() - t) * 1000
    if proc.returncode != 0:
        raise RuntimeError(f"{cmd[:3]} failed: {proc.stderr.strip()[-800:]}")
    return ms


def side_by_side(*cmds: list[str], env: dict[str, str], rounds: int) -> list[list[float]]:
    """Each command's wall times over ``rounds`` interleaved rounds (after one warm-up run
    each: byte-compile, fill the module cache), in the order given."""
    for cmd in cmds:
        spawn_ms(cmd, env)
    times: list[list[float]] = [[] for _ in cmds]
    for _ in range(rounds):
        for cmd, out in zip(cmds, times, strict=True):
            out.append(spawn_ms(cmd, env))
    return times


def row(name: str, mine: list[float], base: list[float], goal: float | None, note: str,
        unit: str = "ms") -> dict:
    value, baseline = min(mine), min(base)
    ratio = value / baseline
    spread = statistics.median(mine) / value
    out = {"name": name, "value": round(value, 2), "unit": unit, "baseline": round(baseline, 2),
           "ratio": round(ratio, 3),
           "note": f"{note}; min of {len(mine)} interleaved rounds (medians "
                   f"{statistics.median(mine):.1f} vs {statistics.median(base):.1f} {unit}; "
                   f"median/min {spread:.2f} for ours)"}
    if goal is not None:
        out.update(goal=f"<= {goal}", met=ratio <= goal)
    return out


def build_extism_plugin(tmp: Path) -> Path:
    """The Extism ``add`` plugin, built by the rustc functions-nb's Rust uses."""
    from functions_nb.languages.rust import LINKER, RUSTC, TARGET, compiler_env, sysroot

    src = tmp / "extism_add.rs"
    src.write_text(EXTISM_ADD.replace('extern "C" {', 'unsafe extern "C" {')
                   .replace("#[no_mangle]", "#[unsafe(no_mangle)]"))
    out = tmp / "extism_add.wasm"
    proc = subprocess.run([RUSTC, "--edition", "2024", "--crate-type", "cdylib", "--target",
                           TARGET, "--sysroot", str(sysroot()), "-C", f"linker={LINKER}",
                           "-C", "opt-level=2", "-C", "panic=abort", "-C", "strip=symbols",
                           "-o", str(out), str(src)],
                          capture_output=True, text=True, env={**os.environ, **compiler_env()})
    if proc.returncode != 0:
        raise RuntimeError(f"rustc failed building the Extism plugin: {proc.stderr[-800:]}")
    return out


def bench_cold_process(store: str, tmp: Path, env: dict[str, str], rounds: int) -> dict:
    name, goal = "cold_process_vs_extism", 2
    ours = [sys.executable, "-c", COLD, store]
    try:
        import extism  # noqa: F401 - the peer must be installed (the bench extra)

        plugin = build_extism_plugin(tmp)
        mine, base, floor = side_by_side(ours, [sys.executable, "-c", COLD_EXTISM, str(plugin)],
                                         [sys.executable, "-c", "import wasmtime"],
                                         env=env, rounds=rounds)
    except (ImportError, RuntimeError) as exc:
        return {"name": name, "value": None, "unit": "ms", "baseline": None, "ratio": None,
                "goal": f"<= {goal}", "met": False,
                "note": f"not measured: {type(exc).__name__}: {exc} "
                        "(pip install 'functions-nb[bench]')"}
    return row(name, mine, base, goal,
               "whole process, spawn -> exit: import functions_nb, Functions(store), first "
               "fx.invoke('add', 2, 3) of a deployed Rust add (history on, flushed at exit) vs "
               "import extism, Plugin(the same add built by the same rustc), plugin.call; "
               f"a process that only imports wasmtime-py (the engine binding ours runs on) "
               f"takes {min(floor):.1f} ms in the same rounds ({min(floor) / min(base):.2f}x "
               "the Extism process)")


def bench_cli(store: str, tmp: Path, env: dict[str, str], rounds: int, code: bytes) -> dict:
    import wasmtime

    cwasm = tmp / "add.cwasm"
    cwasm.write_bytes(wasmtime.Module(wasmtime.Engine(), code).serialize())
    func = Path(sys.executable).with_name("func")
    cli = [str(func)] if func.exists() else [sys.executable, "-m", "functions_nb.cli"]
    mine, base = side_by_side([*cli, "--store", store, "invoke", "add", "[2, 3]"],
                              [sys.executable, "-c", RAW_PRECOMPILED, str(cwasm)], env=env,
                              rounds=rounds)
    return row("cli_invoke_vs_raw", mine, base, 1.5,
               "whole process: `func invoke add '[2, 3]'` (history on) vs python -c that "
               "deserializes the precompiled module with wasmtime-py, instantiates and calls it")


def bench_import(env: dict[str, str], rounds: int) -> list[dict]:
    wasmtime_cmd = [sys.executable, "-c", "import wasmtime"]
    mine, base = side_by_side([sys.executable, "-c", "import functions_nb"], wasmtime_cmd,
                              env=env, rounds=rounds)
    sdk, base2 = side_by_side([sys.executable, "-c", "from functions_nb import Functions"],
                              wasmtime_cmd, env=env, rounds=rounds)
    rows = [row("import_vs_wasmtime", mine, base, 1.3,
                "whole process: python -c 'import functions_nb' vs python -c 'import wasmtime'")]
    return [*rows, row("import_sdk_vs_wasmtime", sdk, base2, None,
                       "whole process: python -c 'from functions_nb import Functions' (the "
                       "SDK class and what it imports; the store, runtimes and DuckDB load "
                       "when used) vs python -c 'import wasmtime'; no goal")]


def bench_sql(rounds: int = 7, per_round: int = 15) -> dict:
    sys.path.insert(0, str(ROOT))
    import duckdb

    from functions_nb import Functions
    from tests.history_synth import DASHBOARD_QUERY, write_synthetic

    with tempfile.TemporaryDirectory(prefix="fnb-sql-") as tmp:
        fx = Functions(store=tmp)
        path = write_synthetic(fx, 100_000)
        raw_query = DASHBOARD_QUERY.replace("FROM executions", f"FROM read_parquet('{path}')")
        con = duckdb.connect()
        assert len(fx.sql(DASHBOARD_QUERY)) == len(con.execute(raw_query).df()) == 20
        mine, base = [], []
        for _ in range(rounds):
            for _ in range(per_round):
                t = time.perf_counter()
                fx.sql(DASHBOARD_QUERY)
                mine.append((time.perf_counter() - t) * 1000)
                t = time.perf_counter()
                con.execute(raw_query).df()
                base.append((time.perf_counter() - t) * 1000)
        con.close()
        fx.close()
    value, baseline = statistics.median(mine), statistics.median(base)
    return {"name": "sql_vs_kept_duckdb", "value": round(value, 2), "unit": "ms",
            "baseline": round(baseline, 2), "ratio": round(value / baseline, 3),
            "goal": "<= 1.5", "met": value / baseline <= 1.5,
            "note": "median of fx.sql(functions-table query) over 1e5 executions (history on: "
                    "flush, store listing at most once a second, the kept connection, pandas) "
                    "vs the same query and .df() on a kept DuckDB connection reading the same "
                    f"Parquet file; {len(mine)} interleaved queries (mins {min(mine):.2f} vs "
                    f"{min(base):.2f} ms)"}


def run_all(rounds: int = 9) -> list[dict]:
    from functions_nb import Functions

    with tempfile.TemporaryDirectory(prefix="fnb-startup-") as name:
        tmp = Path(name)
        env = child_env(tmp)
        store = str(tmp / "store")
        fx = Functions(store=store, history=False)
        info = fx.deploy("rust", ADD, name="add")
        code = fx.store.get_code(info)
        fx.close()
        results = [bench_cold_process(store, tmp, env, rounds),
                   bench_cli(store, tmp, env, rounds, code), *bench_import(env, rounds)]
    results.append(bench_sql())
    return results


if __name__ == "__main__":
    import json

    for r in run_all():
        print(json.dumps(r))
