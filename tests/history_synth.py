"""Synthetic execution history for tests and benchmarks: N rows written the way compaction
writes them (one Parquet file in a day folder), in seconds instead of invoking N times."""

from __future__ import annotations

import datetime as _dt
import os
import tempfile

import duckdb

from functions_nb.history import COLUMNS
from functions_nb.history_queries import stats_query


def write_synthetic(fx, n: int, day: str | None = None, functions: int = 20) -> str:
    """``n`` executions of ``functions`` functions f0..: every 17th an error, every 10th cold,
    every 50th a generative attempt, durations (i % 1000) / 100 ms, on ``day`` (default today,
    UTC: a fixed day would fall out of the retention, and its files be deleted while written).
    Returns the file path."""
    day = day or _dt.datetime.now(_dt.UTC).date().isoformat()
    values = {
        "id": "'syn-' || i", "function": f"'f' || (i % {functions})", "version": "1",
        "language": "'rust'",
        "tier": "CASE WHEN i % 50 = 0 THEN 'generative' ELSE 'code' END", "attempt": "1",
        "status": "CASE WHEN i % 17 = 0 THEN 'error' ELSE 'ok' END",
        "error_kind": "CASE WHEN i % 17 = 0 THEN 'runtime_error' END",
        "error_message": "CASE WHEN i % 17 = 0 THEN 'boom ' || i END",
        "started_at": f"TIMESTAMP '{day}' + to_milliseconds(i)", "queue_ms": "0.0",
        "duration_ms": "(i % 1000) / 100.0", "cold": "i % 10 = 0", "input": "'[' || i || ']'",
        "output": "'' || (i * 2)",
        "console": "CASE WHEN i % 100 = 0 THEN [{'level': 'log', 'message': 'line ' || i, "
                   "'ts': epoch(TIMESTAMP '" + day + "')}] ELSE [] END",
        "memory_bytes": "65536", "fuel": "NULL", "cascade_id": "NULL", "host": "'synthetic'",
        "pid": "1",
    }
    select = ", ".join(f"CAST({values[k]} AS {v}) AS \"{k}\"" for k, v in COLUMNS.items())
    folder = f"{fx.history.root}/date={day}"
    fx.store.fs.makedirs(folder, exist_ok=True)
    path = f"{folder}/compact-synthetic-{n}.parquet"
    with tempfile.TemporaryDirectory() as tmp:
        local = os.path.join(tmp, "s.parquet")
        con = duckdb.connect()
        con.execute(f"COPY (SELECT {select} FROM range({n}) t(i)) TO '{local}' "
                    "(FORMAT parquet, COMPRESSION zstd)")
        con.close()
        fx.store.fs.put_file(local, path)
    return path


#: What the functions table (and ``GET summary``) asks the history: the statement of
#: ``functions_nb.history_queries``, with ``calls`` and ``error_rate`` columns added.
DASHBOARD_QUERY = (f"SELECT *, count AS calls, errors / nullif(count, 0) AS error_rate "
                   f"FROM ({stats_query()}) ORDER BY function")
