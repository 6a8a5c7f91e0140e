"""Execution records, DuckDB queries, retention, and many processes on one store."""

from __future__ import annotations

import datetime as dt
import os
import subprocess
import sys
import time

from functions_nb import Functions
from functions_nb.history import COLUMNS

from .conftest import ADD_RS


def test_records_have_every_field(fx):
    fx.deploy("rust", 'fn add(a: i32, b: i32) -> i32 {\n    println!("sum");\n    a + b\n}', name="add")
    fx.invoke("add", 2, 3)
    fx.invoke("add", 4, 5)
    try:
        fx.invoke("add", "x", 1)
    except Exception:
        pass
    df = fx.sql("select * from executions order by started_at")
    assert list(df.columns) == list(COLUMNS)
    assert len(df) == 3
    first, second, bad = df.to_dict("records")
    assert first["status"] == "ok" and first["output"] == "5" and first["input"] == "[2, 3]"
    assert first["cold"] is True and second["cold"] is False
    assert first["tier"] == "code" and first["attempt"] == 1 and first["language"] == "rust"
    assert first["console"][0]["level"] == "log" and first["console"][0]["message"] == "sum"
    assert first["duration_ms"] > 0 and first["queue_ms"] == 0 and first["memory_bytes"] > 0
    assert first["pid"] == os.getpid() and first["host"]
    assert isinstance(first["started_at"], dt.datetime)
    assert bad["status"] == "error" and bad["error_kind"] == "bad_arguments"
    assert "expects i32" in bad["error_message"]
    logs = fx.logs("add", limit=2)
    assert len(logs) == 2 and logs.status.tolist() == ["error", "ok"]


def test_sql_on_empty_store(fx):
    assert fx.sql("select count(*) n from executions").n[0] == 0


def test_large_values_are_truncated(fx):
    fx.deploy("rust", "fn echo(s: String) -> String { s }", name="echo")
    fx.invoke("echo", "x" * 10000)
    out = fx.sql("select output from executions").output[0]
    assert len(out) < 3000 and '"truncated": true' in out


def test_retention_removes_old_days(fx):
    fx.deploy("rust", ADD_RS, name="add")
    fx.invoke("add", 1, 1)
    fx.flush()
    old = fx.store.path("history", "date=2020-01-01")
    fx.store.fs.makedirs(old, exist_ok=True)
    fx.store.fs.pipe_file(f"{old}/x.jsonl", b"")
    assert fx.history.cleanup(days=7) == ["2020-01-01"]
    assert not fx.store.fs.exists(old)
    assert fx.sql("select count(*) n from executions").n[0] == 1


def test_retention_runs_once_the_process_lived_long_enough(tmp_path):
    old = tmp_path / "store" / "history" / "date=2020-01-01"
    old.mkdir(parents=True)
    (old / "x.jsonl").write_bytes(b"")
    fx = Functions(store=str(tmp_path / "store"), flush_interval=0.05)
    try:
        deadline = time.monotonic() + 60
        while old.exists() and time.monotonic() < deadline:
            time.sleep(0.05)
        assert not old.exists()
    finally:
        fx.close()


WORKER = """
import sys
import time
from functions_nb import Functions
fx = Functions(store=sys.argv[1])
for i in range(500):
    assert fx.invoke("add", i, 1) == i + 1
"""


def test_two_processes_lose_no_rows(store):
    fx = Functions(store=store)
    fx.deploy("rust", ADD_RS, name="add")
    procs = [subprocess.Popen([sys.executable, "-c", WORKER, store]) for _ in range(2)]
    for p in procs:
        assert p.wait(120) == 0
    df = fx.sql("select count(*) n, count(distinct id) ids, count(distinct pid) pids "
                "from executions where function = 'add'")
    assert (df.n[0], df.ids[0], df.pids[0]) == (1000, 1000, 2)
    fx.close()
