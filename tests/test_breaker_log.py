"""Breaker transitions shared through the store: a breaker lives in the process that calls (a
kernel, the Jupyter server), so a breaker a kernel opened reaches the sidebar only as a recorded
transition (``GET summary``'s ``breaker_last``, ``GET breakers``' ``recorded``), saying whose
breaker it is."""

from __future__ import annotations

import json
import os
import socket
import time

import pytest

from functions_nb import Functions
from functions_nb.breaker import TransitionLog
from functions_nb.config import BreakerConfig
from tests.conftest import BOOM_RS

pytest_plugins = ["pytest_jupyter.jupyter_server"]


@pytest.fixture
def jp_server_config(store):
    return {"ServerApp": {"jpserver_extensions": {"functions_nb.server": True}},
            "FunctionsNB": {"store": store}}


def test_a_kernels_transitions_are_read_by_another_process(store):
    kernel = Functions(store=store, breaker=BreakerConfig(reset_timeout=0.2))
    reader = Functions(store=store)
    try:
        kernel.deploy("rust", BOOM_RS, name="boom")
        assert TransitionLog.newest(reader.store) == {}
        for _ in range(5):
            assert kernel.run("boom", 1).status == "error"
        (opened,) = TransitionLog.newest(reader.store).values()
        assert opened["breaker"] == "boom@1" and opened["version"] == 1
        assert (opened["from"], opened["state"]) == ("closed", "open")
        assert opened["why"] == "5 consecutive failures"
        assert (opened["host"], opened["pid"]) == (socket.gethostname(), os.getpid())
        assert opened["writer"] == kernel.loader.transitions.writer != reader.loader.transitions.writer
        assert opened["process"]  # e.g. kernel, server, pytest

        time.sleep(0.3)  # past reset_timeout: the next calls probe, two successes close it
        assert kernel.run("boom", 0).status == "ok" and kernel.run("boom", 0).status == "ok"
        closed = TransitionLog.newest(reader.store)["boom"]
        assert (closed["from"], closed["state"], closed["why"]) == (
            "half_open", "closed", "2 successful probes")
        assert closed["at"] > opened["at"]
    finally:
        kernel.close()
        reader.close()


def test_old_logs_are_dropped_by_the_reader(store):
    fx = Functions(store=store)
    try:
        path = fx.store.path("breakers", "gone-1-abc.json")
        old = time.time() - 8 * 86400  # beyond the 7-day retention
        fx.store.fs.makedirs(fx.store.path("breakers"), exist_ok=True)
        fx.store.fs.pipe(path, json.dumps({
            "writer": "gone-1-abc", "host": "gone", "pid": 1, "process": "kernel",
            "breakers": {"boom@1": {"at": old, "from": "closed", "to": "open", "why": "x"}}}).encode())
        fx.store.fs.pipe(fx.store.path("breakers", "torn.json"), b"{not json")
        assert TransitionLog.newest(fx.store) == {}
        assert not fx.store.fs.exists(path)
    finally:
        fx.close()


async def test_summary_says_whose_breaker_it_is(jp_fetch, ip, jp_serverapp):
    async def api(*path, method="GET", body=None):
        resp = await jp_fetch("functions-nb", "api", *path, method=method, raise_error=False,
                              body=None if body is None else json.dumps(body))
        return json.loads(resp.body)

    await api("functions", method="POST", body={"language": "rust", "source": BOOM_RS, "name": "boom"})
    kernel = ip.magics_manager.registry["FunctionsMagics"]._fx  # a kernel's client on the store
    for _ in range(5):
        kernel.run("boom", 1)

    (row,) = (await api("summary"))["functions"]
    assert row["breaker"] == "closed"  # the server's own breaker never saw these calls
    last = row["breaker_last"]
    assert last["state"] == "open" and last["breaker"] == "boom@1" and last["server"] is False
    assert last["pid"] == os.getpid() and last["why"] == "5 consecutive failures"
    assert last["at"].endswith(tuple("0123456789")) and "T" in last["at"]  # ISO 8601
    assert row["last_error"]["kind"] == "runtime_error" and row["last_error"]["caller"] is False
    assert "bad input 1" in row["last_error"]["message"]
    breakers = await api("breakers")
    assert breakers["breakers"] == [] and [r["state"] for r in breakers["recorded"]] == ["open"]

    await api("functions", "boom", "invoke", method="POST", body={"args": ["x"]})  # caller mistake
    (row,) = (await api("summary"))["functions"]
    assert row["last_error"]["kind"] == "bad_arguments" and row["last_error"]["caller"] is True
    assert row["caller_errors"] == 1 and row["errors"] == 5  # not the function's error

    for _ in range(5):  # now the server's own breaker opens: the newest transition is its own
        await api("functions", "boom", "invoke", method="POST", body={"args": [1]})
    (row,) = (await api("summary"))["functions"]
    assert row["breaker"] == "open"
    assert row["breaker_last"]["state"] == "open" and row["breaker_last"]["server"] is True
