"""Start-up and exit stay light: what ``import functions_nb``, a process that invokes once and
exits, and ``func invoke`` load; the history's kept DuckDB connection (reused, refreshed when
the files change, closed with the client). Speed itself is measured by ``make bench``."""

from __future__ import annotations

import json
import subprocess
import sys
import time

import duckdb

from functions_nb import Functions
from functions_nb.history import PARQUET_MIN_ROWS
from functions_nb.models import ExecutionRecord

from .conftest import ADD_RS

#: Modules a process that only invokes must not load (the features that need them do).
HEAVY = ("pandas", "pyarrow", "duckdb", "fsspec.asyn", "aiohttp", "pydantic_ai", "dask",
         "distributed", "jupyter_server", "IPython")

#: Registered before anything else, so it runs after every other exit handler (the
#: history's flush included) and sees what the whole process loaded.
REPORT_AT_EXIT = (
    "import atexit, json, sys\n"
    "atexit.register(lambda: print('LOADED ' + json.dumps(sorted(sys.modules))))\n")


def run_python(code: str, *args: str) -> subprocess.CompletedProcess:
    proc = subprocess.run([sys.executable, "-c", code, *args], capture_output=True, text=True,
                          timeout=300)
    assert proc.returncode == 0, proc.stderr
    return proc


def loaded(proc: subprocess.CompletedProcess) -> set[str]:
    line = next(x for x in proc.stdout.splitlines() if x.startswith("LOADED "))
    return set(json.loads(line[len("LOADED "):]))


def deployed(store: str) -> Functions:
    fx = Functions(store=store)
    fx.deploy("rust", ADD_RS, name="add")
    return fx


def test_import_loads_nothing_heavy():
    mods = loaded(run_python(REPORT_AT_EXIT + "import functions_nb\n"))
    assert "functions_nb" in mods
    assert not mods & {*HEAVY, "fsspec", "asyncio", "wasmtime", "functions_nb.client"}
    # the public names still resolve (on first use)
    mods = loaded(run_python(REPORT_AT_EXIT + "from functions_nb import Functions, doctor, "
                             "CompileError\nassert callable(doctor)\n"))
    assert "functions_nb.client" in mods and not mods & set(HEAVY)


def test_invoke_and_exit_writes_history_without_pandas(store):
    fx = deployed(store)
    code = REPORT_AT_EXIT + (
        "import os, sys\nfrom functions_nb import Functions\n"
        "fx = Functions(store=sys.argv[1])\n"
        "assert fx.invoke('add', 2, 3) == 5\nprint('PID', os.getpid())\n")
    proc = run_python(code, store)
    mods = loaded(proc)
    assert "wasmtime" in mods and not mods & set(HEAVY)
    # a local store's known files are read and the record written with os: no fsspec (its
    # entry-point scan and asyncio are most of a short process's start-up), and retention
    # waits for a process that lives a flush interval; the value records are NamedTuples and
    # slots classes, not dataclasses (importing dataclasses, with inspect, and generating
    # their methods was about half of this process's own start-up)
    assert not mods & {"fsspec", "asyncio", "dataclasses", "inspect"}
    # a Rust module imports only the runtime's own functions: no language registry, no
    # compilers' modules, no build sandbox on the invoke path
    assert not {m for m in mods if m.startswith("functions_nb.languages")}
    pid = int(next(x for x in proc.stdout.splitlines() if x.startswith("PID ")).split()[1])
    # the record flushed at exit, read by another process (this one)
    rows = fx.sql(f"SELECT function, status, input, output FROM executions WHERE pid = {pid}")
    assert rows.to_dict("records") == [
        {"function": "add", "status": "ok", "input": "[2, 3]", "output": "5"}]
    assert fx.store.fs.glob(f"{fx.history.root}/date=*/*.jsonl")
    fx.close()


def test_cli_invoke_loads_no_dataframes_or_duckdb(store):
    deployed(store).close()
    code = REPORT_AT_EXIT + (
        "import sys\nfrom functions_nb.cli import main\n"
        "sys.exit(main(['--store', sys.argv[1], 'invoke', 'add', '[2, 3]']))\n")
    proc = run_python(code, store)
    assert proc.stdout.splitlines()[0] == "5"
    assert not loaded(proc) & {"pandas", "pyarrow", "duckdb", "fsspec", "asyncio", "aiohttp",
                               "dataclasses"}


def test_sql_sees_this_process_records_at_once(store):
    fx = deployed(store)
    fx.history.list_ttl = 3600.0  # not by listing again later: by knowing what it wrote
    assert fx.sql("SELECT count(*) n FROM executions").n[0] == 0
    fx.invoke("add", 1, 2)
    fx.flush()
    assert fx.sql("SELECT count(*) n FROM executions").n[0] == 1
    fx.invoke("add", 2, 2)  # still buffered: the query flushes it first
    assert sorted(fx.sql("SELECT output FROM executions").output) == ["3", "4"]
    other = Functions(store=store)  # another client of this process, same store
    other.invoke("add", 3, 3)
    assert fx.sql("SELECT count(*) n FROM executions").n[0] == 3
    other.close()
    fx.close()


def test_sql_sees_another_process_file_after_the_listing_ttl(store):
    fx = deployed(store)
    fx.history.list_ttl = 0.2
    con = fx.history.connection()
    assert fx.sql("SELECT count(*) n FROM executions").n[0] == 0
    run_python("import sys\nfrom functions_nb import Functions\n"
               "assert Functions(store=sys.argv[1]).invoke('add', 2, 3) == 5\n", store)
    time.sleep(0.25)
    assert fx.sql("SELECT count(*) n FROM executions").n[0] == 1
    assert fx.history.connection() is con
    fx.close()


def test_sql_reads_again_when_another_process_compacted(store):
    """Its views named small files that another process's compaction deleted: the query
    lists again and reads the compacted file, every row once."""
    fx = deployed(store)
    fx.history.list_ttl = 3600.0
    for i in range(3):
        fx.invoke("add", i, 1)
        fx.flush()
    assert fx.sql("SELECT count(*) n FROM executions").n[0] == 3
    run_python("import sys\nfrom functions_nb import Functions\n"
               "assert Functions(store=sys.argv[1], history=True).compact_history() == 3\n",
               store)
    assert fx.sql("SELECT count(*) n, count(DISTINCT id) d FROM executions").iloc[0].tolist() \
        == [3, 3]
    fx.close()


def test_kept_connection_is_reused_and_closed_with_the_client(store):
    fx = Functions(store=store)
    con = fx.history.connection()
    fx.sql("CREATE TEMP TABLE kept AS SELECT 42 AS x")
    assert fx.sql("SELECT x FROM kept").x[0] == 42  # same connection, same session
    assert fx.sql("SELECT count(*) n FROM executions").n[0] == 0
    assert fx.history.connection() is con
    fx.close()
    try:
        con.execute("SELECT 1")
    except duckdb.ConnectionException:
        pass
    else:
        raise AssertionError("the kept connection is still open after fx.close()")


def test_large_batches_write_parquet_small_ones_json_lines(store):
    fx = Functions(store=store)
    now = time.time()
    for i in range(PARQUET_MIN_ROWS):
        fx.history.record(ExecutionRecord(
            id=f"big-{i}", function="f", version=1, language="rust", tier="code", attempt=1,
            status="ok", error_kind=None, error_message=None, started_at=now, queue_ms=0.0,
            duration_ms=0.5, cold=False, input=[i], output=i,
            console=[("log", f"line {i}", now)] if i == 7 else None))
    fx.flush()
    fx.history.record(ExecutionRecord(
        id="small-1", function="f", version=1, language="rust", tier="code", attempt=1,
        status="error", error_kind="runtime_error", error_message="boom \u2603",
        started_at=now, queue_ms=0.0, duration_ms=0.25, cold=True, input={"a": [1, 2]},
        output=None, console=[("warn", "careful", now)]))
    fx.flush()
    names = [f.rsplit(".", 1)[-1] for f in fx.store.fs.glob(f"{fx.history.root}/date=*/*")]
    assert sorted(names) == ["jsonl", "parquet"]

    def rows() -> list[dict]:
        df = fx.sql("SELECT id, status, coalesce(error_message, '-') AS error_message, input, "
                    "cold, epoch_us(started_at) AS us "
                    "FROM executions WHERE id IN ('big-7', 'small-1') ORDER BY id")
        return df.to_dict("records")

    expected = [
        {"id": "big-7", "status": "ok", "error_message": "-", "input": "[7]", "cold": False,
         "us": int(now * 1e6)},
        {"id": "small-1", "status": "error", "error_message": "boom \u2603",
         "input": '{"a": [1, 2]}', "cold": True, "us": int(now * 1e6)}]
    assert rows() == expected
    lines = fx.sql("SELECT id, level, message FROM console ORDER BY id").to_dict("records")
    assert lines == [{"id": "big-7", "level": "log", "message": "line 7"},
                     {"id": "small-1", "level": "warn", "message": "careful"}]
    assert fx.compact_history() == 2  # both kinds folded into one Parquet file
    assert rows() == expected
    assert fx.sql("SELECT count(*) n FROM executions").n[0] == PARQUET_MIN_ROWS + 1
    fx.close()



def test_cli_builds_only_the_named_subcommand():
    from functions_nb.cli import SUBCOMMANDS, _command_of, build_parser

    assert _command_of(["--store", "/x", "invoke", "add", "[2, 3]"]) == "invoke"
    assert _command_of(["--store=/x", "human", "ls"]) == "human"
    assert _command_of(["-h", "invoke"]) is None and _command_of(["nosuch"]) is None
    only = build_parser(only="invoke")
    assert only.parse_args(["--store", "/x", "invoke", "add"]).func.__name__ == "cmd_invoke"
    listed = build_parser().format_help()
    assert all(name in listed for name in SUBCOMMANDS)
    assert "deploy" not in only.format_help()


def test_func_command_exits_quickly_yet_flushes_and_keeps_exit_codes(store):
    """``func`` (the console script) skips the interpreter's teardown but still runs the exit
    handlers: the history record of its call is written; exit codes are main()'s."""
    from pathlib import Path

    func = str(Path(sys.executable).with_name("func"))
    fx = deployed(store)
    proc = subprocess.run([func, "--store", store, "invoke", "add", "[2, 3]"],
                          capture_output=True, text=True, timeout=300)
    assert (proc.returncode, proc.stdout) == (0, "5\n")
    assert fx.sql("SELECT count(*) AS n FROM executions WHERE function = 'add'").n[0] == 1
    bad = subprocess.run([func, "--store", store, "invoke", "nope"], capture_output=True,
                         text=True, timeout=300)
    assert bad.returncode == 1 and bad.stderr.startswith("error: FunctionNotFound")
    usage = subprocess.run([func, "nosuch"], capture_output=True, text=True, timeout=300)
    assert usage.returncode == 2 and "invalid choice: 'nosuch'" in usage.stderr
    helped = subprocess.run([func, "--help"], capture_output=True, text=True, timeout=300)
    assert helped.returncode == 0 and "invoke" in helped.stdout
    fx.close()


def test_a_go_call_loads_its_glue_but_not_the_build_machinery(store):
    """A Go module imports WASI, so its language's glue is loaded, but not the compilers'
    sandbox, subprocess or dataclasses (a fresh process's first Go call was ~45 ms, most of
    it importing the build machinery). The child keeps its history's retention pass (which
    lists the store through fsspec, with asyncio) from starting while a first compile of
    the module keeps it alive past one flush interval."""
    fx = Functions(store=store)
    fx.deploy("go", "func Twice(x int32) int32 {\n\treturn x + x\n}\n", name="Twice")
    fx.close()
    code = REPORT_AT_EXIT + (
        "import sys\nfrom functions_nb import Functions\n"
        "fx = Functions(store=sys.argv[1], flush_interval=3600)\n"  # no retention listing
        "assert fx.invoke('Twice', 21) == 42\n")
    mods = loaded(run_python(code, store))
    assert "functions_nb.languages.go" in mods
    assert not mods & {"functions_nb.runtimes.host.sandbox", "subprocess", "dataclasses"}
