"""The history's numbers, defined once: what a call, an error, a caller mistake, a latency and
the last status are. ``%functions`` and ``%fn_metrics`` (the widgets), the REST API
(``GET metrics/{name}``, ``GET summary``) and so the JupyterLab sidebar all read them here.

Over the ``executions`` view (one record per invocation and per cascade tier attempt):

- a **call** is a record that ended (not a ``skipped`` tier, not a ``pending`` human task)
  and was not a caller mistake. Calls rejected without running (open breaker, full queue)
  count: the caller asked and got no value. A cascade's tier attempts are calls each.
- a **caller mistake** (``caller_errors``) is a record that failed because of the caller:
  arguments that do not fit the signature (``BadArguments``) or an unknown function or
  version (``FunctionNotFound``), told apart by the record's ``error_kind``. The function
  did not run; it is counted apart, never as the function failing.
- an **error** is a call whose status is not ``ok``: ``error``, ``timeout``, ``aborted`` or
  ``rejected``. The **error rate** is errors / calls (None without calls).
- **latency** (p50/p95/p99, min, max, mean, the histogram, cold vs warm) covers the calls
  that ran: not the rejected ones, whose 0 ms would pull every percentile down.
- the **last status** and **last call** (``last_at``) are the status and start time of the
  newest call across tiers: for a cascade, the final outcome of its last tier attempt.
"""

from __future__ import annotations

import datetime as _dt
from collections.abc import Callable, Iterable
from typing import Any

from .errors import BadArguments, FunctionNotFound
from .models import parse_target

#: Runs DuckDB SQL over ``executions`` and returns a pandas DataFrame (``Functions.sql``).
Sql = Callable[[str], Any]

#: ``error_kind`` of the records that failed by the caller's mistake.
CALLER_ERROR_KINDS: tuple[str, ...] = (BadArguments.kind, FunctionNotFound.kind)

_KINDS = ", ".join(f"'{k}'" for k in CALLER_ERROR_KINDS)
#: Row predicates (SQL over ``executions``), as defined in the module docstring.
ENDED = "status NOT IN ('skipped', 'pending')"
CALLER_ERROR = f"({ENDED} AND coalesce(error_kind IN ({_KINDS}), false))"
CALL = f"({ENDED} AND NOT coalesce(error_kind IN ({_KINDS}), false))"
ERROR = f"({CALL} AND status <> 'ok')"
#: Calls whose ``duration_ms`` is a latency.
TIMED = f"({CALL} AND status <> 'rejected')"
#: A record's outcome for breakdowns: its status, or ``caller_error`` for a caller mistake.
OUTCOME = f"CASE WHEN {CALLER_ERROR} THEN 'caller_error' ELSE status END"

#: The percentiles every surface reports (the metrics view marks them on its histogram).
PERCENTILES = {"p50": 0.5, "p95": 0.95, "p99": 0.99}


def _quote(text: str) -> str:
    return "'" + str(text).replace("'", "''") + "'"


def scope(target: str) -> str:
    """SQL condition selecting ``name`` (every version) or ``name@version``."""
    name, version = parse_target(target)
    return f"function = {_quote(name)}" + (f" AND version = {int(version)}" if version else "")


def of_functions(names: Iterable[str]) -> str:
    """SQL condition selecting every version of each of ``names``."""
    return "function IN (" + (", ".join(_quote(n) for n in names) or "NULL") + ")"


def of_versions(pairs: Iterable[tuple[str, int]]) -> str:
    """SQL condition selecting the given (name, version) pairs."""
    values = ", ".join(f"({_quote(n)}, {int(v)})" for n, v in pairs)
    return f"(function, version) IN (VALUES {values})" if values else "false"


def _aggregates(detail: bool) -> str:
    """Aggregates over the flagged rows of :func:`stats_query` (``call``, ``caller``, ...)."""
    q = ", ".join(str(v) for v in PERCENTILES.values())
    cols = ["count(*) FILTER (WHERE call) AS count",
            "count(*) FILTER (WHERE error) AS errors",
            "count(*) FILTER (WHERE caller) AS caller_errors",
            "count(*) FILTER (WHERE timed) AS timed",
            f"quantile_cont(duration_ms, [{q}]) FILTER (WHERE timed) AS quantiles",
            "arg_max(status, started_at) FILTER (WHERE call) AS last_status",
            "max(started_at) FILTER (WHERE call) AS last_at"]
    if detail:
        cold = "timed AND tier = 'code' AND coalesce(cold, false)"
        warm = "timed AND tier = 'code' AND NOT coalesce(cold, false)"
        cols += ["min(duration_ms) FILTER (WHERE timed) AS min",
                 "max(duration_ms) FILTER (WHERE timed) AS max",
                 "avg(duration_ms) FILTER (WHERE timed) AS mean",
                 f"count(*) FILTER (WHERE {cold}) AS cold_count",
                 f"median(duration_ms) FILTER (WHERE {cold}) AS cold_p50",
                 f"count(*) FILTER (WHERE {warm}) AS warm_count",
                 f"median(duration_ms) FILTER (WHERE {warm}) AS warm_p50",
                 "epoch_us(min(started_at) FILTER (WHERE call)) / 1e6 AS first"]
    return ", ".join(cols)


def _clean(value: Any) -> Any:
    """pandas / numpy values -> plain Python (NaN, NaT -> None; timestamps -> UTC datetimes)."""
    if value is None:
        return None
    try:
        if value != value:  # NaN, NaT
            return None
    except (TypeError, ValueError):  # an array
        pass
    if hasattr(value, "to_pydatetime"):
        value = value.to_pydatetime()
    if isinstance(value, _dt.datetime):
        return value.replace(tzinfo=_dt.UTC) if value.tzinfo is None else value
    if hasattr(value, "tolist"):
        return value.tolist()
    return value


def empty_stats(detail: bool = False) -> dict[str, Any]:
    """The numbers of a function without calls."""
    stats: dict[str, Any] = {"count": 0, "errors": 0, "caller_errors": 0, "error_rate": None,
                             "timed": 0, **dict.fromkeys(PERCENTILES), "last_status": None,
                             "last_at": None}
    if detail:
        stats.update({"min": None, "max": None, "mean": None, "first": None,
                      "cold": {"count": 0, "p50": None}, "warm": {"count": 0, "p50": None}})
    return stats


def _stats(row: dict[str, Any], detail: bool) -> dict[str, Any]:
    row = {k: _clean(v) for k, v in row.items()}
    stats = empty_stats(detail)
    for key in ("count", "errors", "caller_errors", "timed"):
        stats[key] = int(row[key] or 0)
    quantiles = row["quantiles"] if stats["timed"] and row["quantiles"] else []
    for i, key in enumerate(PERCENTILES):
        stats[key] = float(quantiles[i]) if quantiles else None
    stats["error_rate"] = stats["errors"] / stats["count"] if stats["count"] else None
    stats["last_status"] = row["last_status"]
    stats["last_at"] = row["last_at"]
    if detail:
        for key in ("min", "max", "mean", "first"):
            stats[key] = None if row[key] is None else float(row[key])
        for key in ("cold", "warm"):
            stats[key] = {"count": int(row[f"{key}_count"] or 0),
                          "p50": None if row[f"{key}_p50"] is None else float(row[f"{key}_p50"])}
    return stats


def stats_query(where: str = "true", *, detail: bool = False) -> str:
    """The one statement behind :func:`function_stats`: a row per function, columns
    ``function`` and the raw aggregates (``quantiles`` is the list of PERCENTILES)."""
    # each row's classification computed once (DuckDB does not share it between FILTERs)
    flagged = (f"SELECT function, tier, status, duration_ms, started_at, cold, {CALL} AS call, "
               f"{ERROR} AS error, {CALLER_ERROR} AS caller, {TIMED} AS timed FROM executions "
               f"WHERE {where}")
    return f"SELECT function, {_aggregates(detail)} FROM ({flagged}) GROUP BY function"


def function_stats(sql: Sql, where: str = "true", *, detail: bool = False
                   ) -> dict[str, dict[str, Any]]:
    """Function name -> its numbers over the records matching ``where`` (one query):
    ``count`` (calls), ``errors``, ``caller_errors``, ``error_rate``, ``timed`` (calls with
    a latency), ``p50``/``p95``/``p99`` (ms), ``last_status``, ``last_at`` (a UTC datetime).
    ``detail`` adds ``min``, ``max``, ``mean``, ``first`` (unix seconds of the first call)
    and ``cold``/``warm`` (count and p50 of code-tier calls that ran)."""
    frame = sql(stats_query(where, detail=detail))
    return {rec["function"]: _stats(rec, detail) for rec in frame.to_dict("records")}


def stats_of(sql: Sql, target: str, *, detail: bool = False) -> dict[str, Any]:
    """The numbers of ``name`` (every version) or ``name@version`` (see :func:`function_stats`)."""
    name = target.partition("@")[0]
    return function_stats(sql, scope(target), detail=detail).get(name) or empty_stats(detail)


def last_errors(sql: Sql, where: str = "true") -> dict[str, dict[str, Any]]:
    """Function name -> its newest failed record, an error or a caller mistake: ``kind``,
    ``message``, ``status``, ``tier``, ``at`` (a UTC datetime) and ``caller`` (True for a
    caller mistake: the function did not run)."""
    frame = sql(
        "SELECT function, arg_max(struct_pack(kind := error_kind, message := error_message, "
        f"status := status, tier := coalesce(tier, 'code'), caller := {CALLER_ERROR}), started_at) "
        f"AS last, max(started_at) AS at FROM executions WHERE ({ERROR} OR {CALLER_ERROR}) "
        f"AND {where} GROUP BY function")
    found = {}
    for rec in frame.to_dict("records"):
        last = dict(rec["last"])
        found[rec["function"]] = {**last, "caller": bool(last["caller"]), "at": _clean(rec["at"])}
    return found


def iso(when: _dt.datetime | None) -> str | None:
    """A ``last_at`` as JSON shows it: ISO 8601 UTC with milliseconds."""
    if when is None:
        return None
    return when.astimezone(_dt.UTC).replace(tzinfo=None).isoformat(timespec="milliseconds")


__all__ = ["CALL", "CALLER_ERROR", "CALLER_ERROR_KINDS", "ENDED", "ERROR", "OUTCOME",
           "PERCENTILES", "TIMED", "empty_stats", "function_stats", "iso", "last_errors",
           "of_functions",
           "of_versions", "scope", "stats_of", "stats_query"]
