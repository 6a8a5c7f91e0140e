"""Execution history: every execution becomes a row of the DuckDB-queryable ``executions`` table.

Each process appends records to an in-memory buffer (one ``deque.append`` on the hot path);
a background thread writes the buffer every second as a new newline-delimited JSON file
under ``history/date=YYYY-MM-DD/`` in the store (atomically), and once more at exit. Files
are never appended to by two writers, so any number of processes (kernels, the CLI, Dask
workers) share one store without locks and without losing rows. Queries read all files
with DuckDB's ``read_json``. Retention deletes whole day folders older than N days.
"""

from __future__ import annotations

import atexit
import collections
import datetime as _dt
import json
import os
import socket
import threading
import uuid
import weakref
from typing import Any

from .config import LOG_RETENTION_DAYS, RECORD_MAX_CHARS
from .storage import FunctionStore
from .storage.fsutil import is_local, write_atomic

#: Field order of a record tuple as the executor produces it.
RECORD_FIELDS = ("id", "function", "version", "language", "tier", "attempt", "status",
                 "error_kind", "error_message", "started_at", "queue_ms", "duration_ms",
                 "cold", "input", "output", "console", "memory_bytes", "fuel", "cascade_id")

COLUMNS = {
    "id": "VARCHAR", "function": "VARCHAR", "version": "INTEGER", "language": "VARCHAR",
    "tier": "VARCHAR", "attempt": "INTEGER", "status": "VARCHAR", "error_kind": "VARCHAR",
    "error_message": "VARCHAR", "started_at": "TIMESTAMP", "queue_ms": "DOUBLE",
    "duration_ms": "DOUBLE", "cold": "BOOLEAN", "input": "VARCHAR", "output": "VARCHAR",
    "console": "STRUCT(level VARCHAR, message VARCHAR, ts DOUBLE)[]",
    "memory_bytes": "BIGINT", "fuel": "BIGINT", "cascade_id": "VARCHAR", "host": "VARCHAR",
    "pid": "INTEGER",
}

_HOST = socket.gethostname()
#: Arrays longer than this are recorded as dtype, shape and their first elements.
ARRAY_HEAD = 64
#: Every History of this process: a query flushes them all, so it sees this process's writes.
_LIVE: weakref.WeakSet[History] = weakref.WeakSet()


def _truncate_json(value: Any) -> str | None:
    if value is None:
        return None
    try:
        text = json.dumps(value, default=_json_default, allow_nan=True)
    except (TypeError, ValueError):
        text = json.dumps(repr(value))
    if len(text) > RECORD_MAX_CHARS:
        text = json.dumps({"truncated": True, "chars": len(text),
                           "head": text[:RECORD_MAX_CHARS]})
    return text


def _json_default(value: Any) -> Any:
    if isinstance(value, (bytes, bytearray, memoryview)):
        return {"bytes": len(value)}
    if hasattr(value, "tolist"):
        if getattr(value, "ndim", 0) and getattr(value, "size", 0) > ARRAY_HEAD:
            # a large numpy array: its description, not 1e6 numbers to serialise and cut
            return {"array": str(value.dtype), "shape": list(value.shape),
                    "head": value.ravel()[:ARRAY_HEAD].tolist()}
        return value.tolist()
    return repr(value)


#: Views over ``executions`` (documented in the README's history section).
VIEWS = {
    # one row per cascade tier attempt (plain invocations are code attempts without cascade_id)
    "tier_attempts": "SELECT cascade_id, id, function, version, tier, attempt, status, "
                     "error_kind, error_message, started_at, duration_ms FROM executions",
    # one row per console line, with its execution
    "console": "SELECT e.id, e.function, e.version, e.tier, e.started_at, c.level, c.message, "
               "to_timestamp(c.ts) AS ts FROM executions e, unnest(e.console) AS t(c)",
}


def _create_views(con: Any) -> None:
    for name, query in VIEWS.items():
        con.execute(f"CREATE VIEW {name} AS {query}")


class History:
    """Buffered, multi-process-safe execution history over a :class:`FunctionStore`."""

    def __init__(self, store: FunctionStore, *, flush_interval: float = 1.0,
                 retention_days: float = LOG_RETENTION_DAYS) -> None:
        self.store = store
        self.retention_days = retention_days
        self.buffer: collections.deque[tuple] = collections.deque()
        #: Bound for the executor's hot path: one call per execution.
        self.record = self.buffer.append
        self._flush_lock = threading.Lock()
        self._seq = 0
        self._writer = f"{_HOST}-{os.getpid()}-{uuid.uuid4().hex[:6]}"
        self._stop = threading.Event()
        self.flush_interval = flush_interval
        self._thread = threading.Thread(target=self._loop, name="functions-nb-history",
                                        daemon=True)
        self._thread.start()
        ref = weakref.ref(self)
        atexit.register(lambda: (h := ref()) is not None and h.close())
        _LIVE.add(self)

    @property
    def root(self) -> str:
        return self.store.path("history")

    def _loop(self) -> None:
        try:
            self.cleanup()
        except Exception:  # noqa: BLE001 - retention must never stop recording
            pass
        while not self._stop.wait(self.flush_interval):
            try:
                self.flush()
            except Exception:  # noqa: BLE001 - keep the records for the next attempt
                pass

    def flush(self) -> int:
        """Write buffered records as one new file; returns how many were written."""
        with self._flush_lock:
            n = len(self.buffer)
            if not n:
                return 0
            items = [self.buffer.popleft() for _ in range(n)]
            try:
                by_day: dict[str, list[str]] = {}
                for rec in items:
                    row = dict(zip(RECORD_FIELDS, rec, strict=True))
                    started = _dt.datetime.fromtimestamp(row["started_at"], _dt.UTC)
                    row["started_at"] = started.strftime("%Y-%m-%d %H:%M:%S.%f")
                    row["input"] = _truncate_json(row["input"])
                    row["output"] = _truncate_json(row["output"])
                    row["console"] = [{"level": lv, "message": msg, "ts": ts}
                                      for lv, msg, ts in (row["console"] or ())]
                    row["host"] = _HOST
                    row["pid"] = os.getpid()
                    by_day.setdefault(started.strftime("%Y-%m-%d"), []).append(
                        json.dumps(row, default=_json_default))
                for day, lines in by_day.items():
                    self._seq += 1
                    path = f"{self.root}/date={day}/{self._writer}-{self._seq:06d}.jsonl"
                    write_atomic(self.store.fs, path, ("\n".join(lines) + "\n").encode())
            except BaseException:
                self.buffer.extendleft(reversed(items))
                raise
            return n

    def cleanup(self, days: float | None = None) -> list[str]:
        """Delete day folders older than ``days`` (default: the retention setting)."""
        days = self.retention_days if days is None else days
        cutoff = (_dt.datetime.now(_dt.UTC) - _dt.timedelta(days=days)).date()
        removed = []
        fs = self.store.fs
        try:
            entries = fs.ls(self.root, detail=False)
        except FileNotFoundError:
            return removed
        for entry in entries:
            base = entry.rstrip("/").rsplit("/", 1)[-1]
            if not base.startswith("date="):
                continue
            try:
                day = _dt.date.fromisoformat(base[5:])
            except ValueError:
                continue
            if day < cutoff:
                fs.rm(entry, recursive=True)
                removed.append(base[5:])
        return removed

    def close(self) -> None:
        self._stop.set()
        try:
            self.flush()
        except Exception:  # noqa: BLE001 - at exit there is nobody left to tell
            pass

    # queries -----------------------------------------------------------------
    def connect(self) -> Any:
        """A DuckDB connection with the ``executions`` view over all history files."""
        import duckdb

        for history in list(_LIVE):
            history.flush()
        con = duckdb.connect()
        fs = self.store.fs
        files = fs.glob(f"{self.root}/date=*/*.jsonl")
        cols = ", ".join(f"'{k}': '{v}'" for k, v in COLUMNS.items())
        if not files:
            defs = ", ".join(f'"{k}" {v}' for k, v in COLUMNS.items())
            con.execute(f"CREATE TABLE executions ({defs})")
            _create_views(con)
            return con
        if not is_local(fs):
            con.register_filesystem(fs)
            proto = fs.protocol if isinstance(fs.protocol, str) else fs.protocol[0]
            files = [f"{proto}://{f}" for f in files]
        # the files just listed, so DuckDB does not list the store a second time
        paths = ", ".join("'" + f.replace("'", "''") + "'" for f in files)
        con.execute(
            f"CREATE VIEW executions AS SELECT * FROM read_json([{paths}], "
            f"format='newline_delimited', hive_partitioning=false, columns={{{cols}}})")
        _create_views(con)
        return con

    def sql(self, query: str) -> Any:
        """Run ``query`` (DuckDB SQL over ``executions``) and return a pandas DataFrame."""
        con = self.connect()
        try:
            return con.execute(query).df()
        finally:
            con.close()
