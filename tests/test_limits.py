"""Runaway code, memory bombs and aborts are stopped; the process lives on."""

from __future__ import annotations

import time

import pytest

from functions_nb import Aborted, FunctionTimeout, LimitExceeded

from .conftest import ADD_RS, BOMB_RS, SPIN_RS, abort_while_running


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


def test_zig_runaway_loop(fx):
    src = "fn spin(n: u32) u32 {\n    var x: u32 = n;\n    while (true) {\n" \
          "        x = @as(*volatile u32, &x).* *% 31;\n    }\n}\n"
    fx.deploy("zig", src, name="spin", timeout=0.2)
    with pytest.raises(FunctionTimeout):
        fx.invoke("spin", 1)


def test_memory_bomb_hits_limit(fx):
    fx.deploy("rust", BOMB_RS, name="bomb", memory_mb=16)
    with pytest.raises(LimitExceeded, match="memory limit of 16 MB"):
        fx.invoke("bomb", 64)
    assert fx.invoke("bomb", 4) == 4  # the next call works


def test_zig_memory_bomb(fx):
    src = """const std = @import("std");
fn bomb(alloc: std.mem.Allocator, mb: u32) !u32 {
    var n: u32 = 0;
    while (n < mb) : (n += 1) {
        const block = try alloc.alloc(u8, 1 << 20);
        @memset(block, 1);
    }
    return n;
}
"""
    fx.deploy("zig", src, name="bomb", memory_mb=16)
    with pytest.raises(LimitExceeded, match="16 MB"):
        fx.invoke("bomb", 64)
    assert fx.invoke("bomb", 2) == 2


def test_abort_by_execution_id(fx):
    fx.deploy("rust", SPIN_RS, name="spin", timeout=30)
    running, ex = abort_while_running(fx, "spin", 1)
    assert running["function"] == "spin"
    assert ex.status == "aborted" and isinstance(ex.error, Aborted)
    assert ex.duration_ms < 5000
    assert fx.abort("no-such-id") is False
    df = fx.sql(f"select status from executions where id = '{ex.id}'")
    assert df.status.tolist() == ["aborted"]
