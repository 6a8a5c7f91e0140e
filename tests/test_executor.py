"""Concurrency limit, bounded queue, LRU loader cache, precompiled-module cache."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time

import pytest

from functions_nb import Functions, QueueFull
from functions_nb.executor import ID_BLOCK, Executor

from .conftest import ADD_RS, SPIN_RS


def test_queue_full_is_rejected(store):
    fx = Functions(store=store, max_concurrency=1, max_queue=1)
    fx.deploy("rust", SPIN_RS, name="spin", timeout=5)
    results = []
    threads = [threading.Thread(target=lambda: results.append(fx.run("spin", 1)))
               for _ in range(2)]
    for t in threads:
        t.start()
        time.sleep(0.1)
    deadline = time.monotonic() + 5
    while len(fx.running()) < 2 and time.monotonic() < deadline:
        time.sleep(0.01)
    assert fx.executor.snapshot()["running"] == 1 and fx.executor.snapshot()["waiting"] == 1
    with pytest.raises(QueueFull, match="queue is full"):
        fx.invoke("spin", 1)
    for entry in fx.running():
        fx.abort(entry["id"])
    for t in threads:
        t.join(5)
    assert sorted(r.status for r in results) == ["aborted", "aborted"]
    queued = [r for r in results if r.queue_ms > 0]
    assert queued, "the second call waited in the queue"
    fx.close()


def test_lru_cache_hits_misses_evictions(store):
    fx = Functions(store=store, cache_size=2)
    for name in ("f1", "f2", "f3"):
        fx.deploy("rust", ADD_RS.replace("add", name), name=name)
    fx.invoke("f1", 1, 1)
    fx.invoke("f1", 1, 1)
    fx.invoke("f2", 1, 1)
    fx.invoke("f3", 1, 1)  # evicts f1
    snap = fx.loader.snapshot()
    assert snap["misses"] == 3 and snap["hits"] >= 1 and snap["evictions"] == 1
    assert snap["loaded"] == 2
    assert fx.invoke("f1", 2, 2) == 4  # reloaded
    assert fx.loader.snapshot()["misses"] == 4
    fx.close()


def test_latest_follows_deploys_and_pins(fx):
    fx.deploy("rust", ADD_RS, name="add")
    assert fx.invoke("add", 2, 3) == 5
    info = fx.deploy("rust", ADD_RS.replace("a + b", "a * b"), name="add")
    assert info.version == 2
    assert fx.invoke("add", 2, 3) == 6
    assert fx.invoke("add@1", 2, 3) == 5
    fx.rollback("add", 1)
    assert fx.invoke("add", 2, 3) == 5


PROBE = """
import sys
from functions_nb import Functions
from functions_nb.runtimes.wasm import runtime
fx = Functions(store=sys.argv[1])
print(fx.run("add", 2, 3).status, runtime().compiles)
"""


def test_precompiled_module_shared_through_store(store, tmp_path):
    fx = Functions(store=store)
    fx.deploy("rust", ADD_RS, name="add")
    fx.close()
    env = {**os.environ, "FUNCTIONS_NB_CACHE": str(tmp_path / "cache-a")}
    out = subprocess.run([sys.executable, "-c", PROBE, store], env=env, capture_output=True,
                         text=True, check=True).stdout.split()
    assert out == ["ok", "1"]  # first process compiles and shares the module
    assert any(fx.store.fs.ls(fx.store.path("modcache")))
    env["FUNCTIONS_NB_CACHE"] = str(tmp_path / "cache-b")  # a fresh machine: empty local cache
    out = subprocess.run([sys.executable, "-c", PROBE, store], env=env, capture_output=True,
                         text=True, check=True).stdout.split()
    assert out == ["ok", "0"]  # no compile: deserialized from the store's module cache


def test_execution_ids_unique_and_in_order_across_blocks_and_threads():
    """Ids come from blocks made ahead: the prefix and a counter, in order within a thread,
    never repeated by threads taking them at once (a block refilled under contention)."""
    ex = Executor()
    n = ID_BLOCK * 2 + 5
    ids = [ex.new_id() for _ in range(n)]
    prefix = ids[0].rsplit("-", 1)[0] + "-"
    assert all(i.startswith(prefix) for i in ids)
    assert [int(i.rsplit("-", 1)[1], 16) for i in ids] == list(range(1, n + 1))
    taken: list[list[str]] = [[] for _ in range(4)]

    def take(out: list[str]) -> None:
        for _ in range(ID_BLOCK + 100):
            out.append(ex.new_id())

    threads = [threading.Thread(target=take, args=(out,)) for out in taken]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    every = [i for out in taken for i in out]
    assert len(set(every)) == len(every) == 4 * (ID_BLOCK + 100)
    assert not set(every) & set(ids)
    for out in taken:  # each thread saw its ids in increasing order
        counters = [int(i.rsplit("-", 1)[1], 16) for i in out]
        assert counters == sorted(counters)


WORK_RS = """fn work(n: u64) -> u64 {
    let mut x = 1u64;
    for _ in 0..n {
        x = unsafe { std::ptr::read_volatile(&x) }.wrapping_mul(31).wrapping_add(7);
    }
    x
}
"""


def test_slots_shared_by_threads_all_come_back(store):
    """Eight threads calling at once through two slots: every call runs, some queue, and
    afterwards every slot is free and nobody waits."""
    fx = Functions(store=store, max_concurrency=2, max_queue=100)
    try:
        fx.deploy("rust", WORK_RS, name="work", timeout=30)
        want = fx.invoke("work", 200_000)
        done: list = []

        def calls() -> None:
            for _ in range(15):
                done.append(fx.run("work", 200_000))

        threads = [threading.Thread(target=calls) for _ in range(8)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(120)
        assert len(done) == 8 * 15
        assert {(r.status, r.value) for r in done} == {("ok", want)}
        assert any(r.queue_ms > 0 for r in done)
        snap = fx.executor.snapshot()
        assert (snap["running"], snap["waiting"], snap["max_concurrency"]) == (0, 0, 2)
        assert fx.running() == []
    finally:
        fx.close()
