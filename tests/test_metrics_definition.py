"""One definition of the history's numbers: ``%fn_metrics`` / ``%functions`` (magics), their
widgets, ``GET metrics/{name}`` and ``GET summary`` (REST) report the same calls, errors,
caller mistakes, latency percentiles and last status over the same history."""

from __future__ import annotations

import datetime as _dt
import json
import time

import pytest

from functions_nb import Functions
from functions_nb.models import ExecutionRecord
from functions_nb.widgets.functions import FunctionsTable
from functions_nb.widgets.metrics import MetricsView
from tests.conftest import ADD_RS

pytest_plugins = ["pytest_jupyter.jupyter_server"]


@pytest.fixture
def jp_server_config(tmp_path):
    return {"ServerApp": {"jpserver_extensions": {"functions_nb.server": True}},
            "FunctionsNB": {"store": str(tmp_path / "store")}}


@pytest.fixture
def api(jp_fetch):
    async def call(*path, method="GET", body=None):
        resp = await jp_fetch("functions-nb", "api", *path, method=method,
                              body=None if body is None else json.dumps(body))
        return json.loads(resp.body)
    return call


#: (seconds after the first record, tier, status, error_kind, duration_ms) of ``add``'s history:
#: 6 calls (3 ok, 3 errors), 2 caller mistakes, a skipped tier and a pending human task.
MIX = [
    (0, "code", "ok", None, 2.0),
    (1, "code", "error", "runtime_error", 6.0),
    (2, "code", "ok", None, 4.0),
    (3, "code", "timeout", "timeout", 8.0),
    (4, "code", "rejected", "circuit_open", 0.0),    # did not run: no latency
    (5, "generative", "ok", None, 10.0),              # the newest call: a cascade's last tier
    (6, "agentic", "skipped", "skipped", 0.0),
    (7, "human", "pending", None, 0.0),
    (8, "code", "error", "bad_arguments", 0.05),      # BadArguments: the caller's mistake
    (9, "code", "error", "not_found", 0.0),           # FunctionNotFound: the caller's mistake
]
BASE = float(int(time.time()) - 120)  # whole seconds: timestamps compare exactly
EXPECTED = {"count": 6, "errors": 3, "caller_errors": 2, "error_rate": 0.5,
            # quantile_cont over the 5 calls that ran: 2, 4, 6, 8, 10 ms
            "p50": 6.0, "p95": 9.6, "p99": 9.92, "last_status": "ok"}
LAST_AT = _dt.datetime.fromtimestamp(BASE + 5, _dt.UTC)


def record_mix(fx: Functions, name: str = "add") -> None:
    for i, (dt, tier, status, kind, ms) in enumerate(MIX):
        fx.history.record(ExecutionRecord(
            id=f"mix-{i}", function=name, version=1, language="rust", tier=tier, attempt=1,
            status=status, error_kind=kind, error_message=kind, started_at=BASE + dt,
            queue_ms=0.0, duration_ms=ms, cold=False, input=(i, 1), output=None, console=None))
    fx.flush()


def numbers(source: dict) -> dict:
    return {k: source[k] for k in EXPECTED}


async def test_every_surface_reports_the_same_numbers(api, ip, jp_serverapp):
    await api("functions", method="POST", body={"language": "rust", "source": ADD_RS, "name": "add"})
    fx = ip.magics_manager.registry["FunctionsMagics"]._fx  # a kernel's client on the store
    record_mix(fx)

    # the magics return the widgets
    metrics = ip.run_line_magic("fn_metrics", "add")
    table = ip.run_line_magic("functions", "")
    assert isinstance(metrics, MetricsView) and isinstance(table, FunctionsTable)
    (row,) = table.rows
    table_numbers = {"count": row["calls"], "errors": row["errors"],
                     "caller_errors": row["caller_errors"], "error_rate": row["error_rate"],
                     "p50": row["p50_ms"], "p95": row["p95_ms"], "p99": EXPECTED["p99"],
                     "last_status": row["last_status"]}
    # the REST API, answered by the server's own client on the same store
    rest = await api("metrics", "add")
    summary = await api("summary")
    (fn,) = summary["functions"]

    assert numbers(metrics.stats) == pytest.approx(EXPECTED)
    for other in (table_numbers, numbers(rest), numbers(fn)):
        assert other == numbers(metrics.stats)  # identical, not merely close
    assert metrics.stats["last_at"] == row["last_call"] == LAST_AT
    assert rest["last_at"] == fn["last_at"] == LAST_AT.replace(tzinfo=None).isoformat(
        timespec="milliseconds")

    # caller mistakes are shown as such, never as the function failing
    assert metrics.stats["tiers"]["code"] == {"ok": 2, "error": 1, "timeout": 1, "rejected": 1,
                                              "caller_error": 2}
    assert "2 caller mistakes" in metrics.html() and "3 errors (50.0%)" in metrics.html()
    assert sum(m["errors"] for m in metrics.stats["per_minute"]) == 3
    assert sum(m["calls"] for m in metrics.stats["per_minute"]) == 6
    assert "caller mistakes" in table.html()
    # latency covers the calls that ran: the rejected call's 0 ms is not in it
    assert metrics.stats["timed"] == 5 and metrics.stats["min"] == 2.0

    # the API documents the fields it answers
    doc = await api("openapi.json")
    props = doc["paths"]["/metrics/{name}"]["get"]["responses"]["200"]["content"][
        "application/json"]["schema"]["properties"]
    assert set(rest) <= set(props) and "caller_errors" in props


def test_a_real_bad_arguments_call_is_a_caller_mistake(fx):
    """Through the executor: a call whose arguments do not fit the signature is recorded as a
    caller mistake (the breaker ignores it too), not as an error of the function."""
    fx.deploy("rust", ADD_RS, name="add")
    assert fx.invoke("add", 2, 3) == 5
    ex = fx.run("add", "two", 3)
    assert type(ex.error).__name__ == "BadArguments"
    fx.flush()
    stats = MetricsView(fx, "add").stats
    assert (stats["count"], stats["errors"], stats["caller_errors"]) == (1, 0, 1)
    assert stats["last_status"] == "ok" and stats["error_rate"] == 0.0
    (row,) = FunctionsTable(fx).rows
    assert (row["calls"], row["errors"], row["caller_errors"]) == (1, 0, 1)
