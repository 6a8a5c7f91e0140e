"""Read-only SQL over the execution history: the DuckDB connection the REST API's ``/sql``
route and the agentic tier's ``query_history`` tool run their queries on.

Read-only by construction, not by looking at the query's text. Each query gets a fresh
in-memory DuckDB database whose ``executions`` view (and :data:`~functions_nb.history.VIEWS`)
is created first; then DuckDB's own settings close it:

- ``allowed_paths`` = exactly the history files the views read, then
  ``enable_external_access = false``: no other file, URL or bucket key can be read or
  written, in any spelling (``read_csv``, ``FROM '/path'``, ``query('…')``, ``glob``,
  ``COPY``, ``ATTACH``, ``EXPORT``), and extensions can be neither installed nor loaded;
- extension autoloading and autoinstalling off, Python replacement scans off (a query cannot
  read the server's Python variables);
- ``memory_limit``, ``threads`` and no spilling to a temporary directory;
- ``lock_configuration = true``: ``SET`` / ``RESET`` / ``PRAGMA`` cannot undo any of it;
- DuckDB's parser must find exactly one ``SELECT`` statement (no write, not even to the
  throwaway database); a deadline interrupts the query.

With a remote store (S3 and other fsspec stores) the store's filesystem is registered with
DuckDB before the lock, and the allowed paths are the history objects' URLs: other keys of
the bucket, local files and other URLs stay refused.

The SDK's ``Functions.sql`` is full DuckDB (it runs in the user's own process) and does not
use this module.
"""

from __future__ import annotations

import functools
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from .errors import BadArguments
from .history import History, _sql_list

#: Defaults: seconds a query may run, DuckDB memory (MB), DuckDB threads.
TIMEOUT = 10.0
MEMORY_MB = 256
THREADS = 1
#: Rows fetched from DuckDB at a time while counting a result.
BATCH_ROWS = 2048


class HistoryQueryError(BadArguments):
    """A history query DuckDB could not run (a parser, binder or run-time error)."""

    kind = "sql_error"


class ReadOnlyRefused(HistoryQueryError):
    """The query tried something the read-only connection does not allow."""

    kind = "read_only"


class QueryTimeout(HistoryQueryError):
    """The query ran past its deadline and was interrupted."""

    kind = "sql_timeout"


@dataclass(frozen=True)
class QueryResult:
    """The columns, the total row count and the first rows (a pandas DataFrame)."""

    columns: list[str]
    row_count: int
    frame: Any


def connect(history: History, *, memory_mb: int = MEMORY_MB, threads: int = THREADS) -> Any:
    """A locked, read-only DuckDB connection over ``history`` (see the module docstring)."""
    import duckdb

    con = duckdb.connect(config={
        "autoload_known_extensions": False, "autoinstall_known_extensions": False,
        "allow_community_extensions": False, "python_enable_replacements": False,
        "memory_limit": f"{int(memory_mb)}MB", "threads": int(threads),
        "max_temp_directory_size": "0B",
    })
    try:
        files = history.create_views(con)  # registers a remote store's fsspec filesystem
        con.execute(f"SET allowed_paths = {_sql_list(files)}")
        con.execute("SET enable_external_access = false")
        con.execute("SET lock_configuration = true")
    except BaseException:
        con.close()
        raise
    return con


def query(history: History, sql: str, *, max_rows: int = 1000, timeout: float = TIMEOUT,
          memory_mb: int = MEMORY_MB, threads: int = THREADS) -> QueryResult:
    """Run one SELECT over the history on a read-only connection; ``max_rows`` rows are
    kept, all are counted. Raises :class:`ReadOnlyRefused`, :class:`QueryTimeout` or
    :class:`HistoryQueryError` (all ``BadArguments``: the caller's query)."""
    import duckdb

    for retry in (True, False):
        con = connect(history, memory_mb=memory_mb, threads=threads)
        try:
            return _run(con, sql, max_rows, timeout)
        except duckdb.IOException:
            if not retry:  # a compaction replaced files between listing and reading
                raise HistoryQueryError("the history changed while it was read; try again") from None
        finally:
            con.close()
    raise AssertionError("unreachable")


def _run(con: Any, sql: str, max_rows: int, timeout: float) -> QueryResult:
    import duckdb
    import pyarrow as pa

    try:
        statements = con.extract_statements(sql)
    except duckdb.Error as exc:
        raise HistoryQueryError(f"{type(exc).__name__}: {exc}") from None
    if len(statements) != 1 or statements[0].type != duckdb.StatementType.SELECT:
        kinds = ", ".join(s.type.name for s in statements) or "none"
        raise ReadOnlyRefused("refused: history queries run exactly one SELECT statement "
                              f"(this text has: {kinds})")
    timer = threading.Timer(timeout, con.interrupt)
    timer.daemon = True
    timer.start()
    try:
        reader = con.sql(statements[0].query).to_arrow_reader(BATCH_ROWS)
        kept: list[Any] = []
        count = 0
        for batch in reader:
            if count < max_rows:
                kept.append(batch.slice(0, max_rows - count))
            count += batch.num_rows
        frame = pa.Table.from_batches(kept, schema=reader.schema).to_pandas()
    except duckdb.InterruptException:
        raise QueryTimeout(f"the query ran longer than {timeout:g} s and was stopped") from None
    except duckdb.OutOfMemoryException as exc:
        raise HistoryQueryError(f"the query needs more than its memory limit: {exc}") from None
    except duckdb.PermissionException as exc:
        raise ReadOnlyRefused(f"refused: history queries read only the executions table and "
                              f"its views ({exc})") from None
    except duckdb.Error as exc:
        raise HistoryQueryError(f"{type(exc).__name__}: {exc}") from None
    finally:
        timer.cancel()
    return QueryResult([str(c) for c in frame.columns], count, frame)


def reader(history: History | None) -> Callable[..., QueryResult] | None:
    """``query`` bound to ``history`` (what tiers get as ``services.sql``), or None."""
    return None if history is None else functools.partial(query, history)
