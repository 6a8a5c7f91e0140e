"""Runaway code, memory bombs and aborts are stopped; the process lives on."""

from __future__ import annotations

import time

import pytest

from functions_nb import Aborted, FunctionTimeout

from .conftest import ADD_RS, SPIN_RS, abort_while_running


def test_runaway_loop_stopped_at_timeout(fx):
    fx.deploy("rust", SPIN_RS, name="spin", timeout=0.3)
    fx.deploy("rust", ADD_RS, name="add")
    started = time.monotonic()
    with pytest.raises(FunctionTimeout, match="0.3 s time limit"):
        fx.invoke("spin", 1)
    elapsed = time.monotonic() - started
    assert 0.25 <= elapsed < 5.0  # stopped near its limit, not at the 30 s default
    # per-call override
    started = time.monotonic()
    with pytest.raises(FunctionTimeout):
        fx.invoke("spin", 1, timeout=0.1)
    assert time.monotonic() - started < 5.0
    assert fx.invoke("add", 1, 2) == 3
    ex = fx.run("spin", 1)
    assert ex.status == "timeout" and ex.cold  # a fresh instance after the timeout


def test_abort_by_execution_id(fx):
    fx.deploy("rust", SPIN_RS, name="spin", timeout=30)
    running, ex = abort_while_running(fx, "spin", 1)
    assert running["function"] == "spin"
    assert ex.status == "aborted" and isinstance(ex.error, Aborted)
    assert ex.duration_ms < 5000
    assert fx.abort("no-such-id") is False
    df = fx.sql(f"select status from executions where id = '{ex.id}'")
    assert df.status.tolist() == ["aborted"]
