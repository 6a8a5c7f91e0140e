"""fx.map on a Dask LocalCluster (worker processes): order, per-input failures, complete history
from the workers, S3 as the shared store, and a worker killed mid-map."""

from __future__ import annotations

import glob
import inspect
import os
import signal
import threading
import time

import pytest

from functions_nb import Functions
from functions_nb.distributed import MapResults, auto_chunk_size, execution_id, map_on_cluster
from functions_nb.errors import FunctionNotFound, InvocationError
from functions_nb.mapping import ClusterMap

from .conftest import ADD_RS, BOOM_RS

distributed = pytest.importorskip("distributed")

# about 0.7 ms per call: a map of a few thousand inputs keeps both workers busy for seconds
SLOW_RS = """fn slow(x: i32) -> i32 {
    let mut acc: u64 = x as u64;
    for _ in 0..500000u32 {
        acc = unsafe { std::ptr::read_volatile(&acc) }.wrapping_mul(31).wrapping_add(1);
    }
    x + 1 + (acc & 0) as i32
}
"""


@pytest.fixture(scope="module")
def client():
    cluster = distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True,
                                       dashboard_address=":0")
    c = distributed.Client(cluster, set_as_default=False)  # map_on_cluster must not need a default
    yield c
    c.close()
    cluster.close()


def worker_pids(client) -> set[int]:
    return set(client.run(os.getpid).values())


def history_files(store: str) -> list[str]:
    return sorted(glob.glob(os.path.join(store, "history", "date=*", "*")))


def written_by(files: list[str], pid: int) -> list[str]:
    return [f for f in files if f"-{pid}-" in os.path.basename(f)]


def history_of(fx: Functions, res: MapResults):
    return fx.sql(f"SELECT count(*) AS rows, count(DISTINCT id) AS ids, "
                  f"count(DISTINCT id) FILTER (WHERE status = 'ok') AS ok_ids, "
                  f"list(DISTINCT pid) AS pids FROM executions WHERE {res.where}").iloc[0]


def test_chunks_not_one_task_per_input():
    assert auto_chunk_size(10_000, 2) == 625  # 16 tasks for 2 worker threads
    assert auto_chunk_size(50, 2) == 50 and auto_chunk_size(2_000_000, 2) == 5000
    assert execution_id("map-x", 7) == "map-x-7"


def test_map_in_order_with_complete_history_from_workers(client, store):
    fx = Functions(store=store)
    info = fx.deploy("rust", ADD_RS, name="add")
    inputs = [(i, 2 * i) for i in range(2000)]
    res = map_on_cluster(client, store, None, info.target, inputs, progress=True)
    assert isinstance(res, MapResults) and res == [3 * i for i in range(2000)]
    assert res.errors == {}
    # every worker wrote its rows before its chunk returned: complete at once, no waiting
    h = history_of(fx, res)
    assert h.rows == h.ids == h.ok_ids == 2000
    pids = set(h.pids)
    assert os.getpid() not in pids and pids <= worker_pids(client) and len(pids) == 2
    row = fx.sql(f"SELECT input, output, function, version FROM executions "
                 f"WHERE id = '{execution_id(res.map_id, 1234)}'").iloc[0]
    assert (row.input, row.output, row.function, row.version) == ("[1234, 2468]", "3702", "add", 1)
    fx.close()


def test_failing_input_fails_alone(client, store):
    fx = Functions(store=store)
    fx.deploy("rust", BOOM_RS, name="boom")
    inputs = [-i for i in range(600)]
    inputs[417] = 5
    res = map_on_cluster(client, store, None, "boom@1", inputs, progress=False, chunk_size=100)
    assert list(res.errors) == [417] and isinstance(res[417], InvocationError)
    assert "bad input 5" in str(res[417])
    assert [r for i, r in enumerate(res) if i != 417] == [x for i, x in enumerate(inputs) if i != 417]
    df = fx.sql(f"SELECT status, count(DISTINCT id) n FROM executions WHERE {res.where} GROUP BY ALL")
    assert dict(zip(df.status, df.n, strict=True)) == {"ok": 599, "error": 1}
    with pytest.raises(InvocationError, match="bad input 5"):
        map_on_cluster(client, store, None, "boom@1", inputs, progress=False, raise_errors=True,
                       chunk_size=100)
    with pytest.raises(FunctionNotFound):  # a caller error: raised at once, not retried
        map_on_cluster(client, store, None, "boom@7", inputs, progress=False)
    fx.close()


def test_map_with_s3_store(client):
    from .s3server import MotoServer, s3_storage_options

    with MotoServer() as moto:
        moto.make_bucket("fx-map")
        options = s3_storage_options(moto.endpoint)
        url = "s3://fx-map/store"
        fx = Functions(store=url, storage_options=options)
        fx.deploy("rust", ADD_RS, name="add")
        res = map_on_cluster(client, url, options, "add@1", [(i, 1) for i in range(2000)],
                             progress=False, map_id="s3-run")
        assert res == [i + 1 for i in range(2000)] and res.map_id == "s3-run"
        h = history_of(fx, res)
        assert h.rows == h.ids == h.ok_ids == 2000
        assert set(h.pids) <= worker_pids(client) and os.getpid() not in set(h.pids)
        # the workers wrote into the bucket, not into a local folder
        assert fx.store.fs.glob("fx-map/store/history/date=*/*")
        fx.close()


@pytest.mark.skipif("cluster" not in inspect.signature(Functions).parameters,
                    reason="Functions(cluster=...) not wired into the client yet")
def test_functions_map_uses_the_cluster(client, store):
    fx = Functions(store=store, cluster=client)
    fx.deploy("rust", ADD_RS, name="add")
    res = fx.map("add", [(i, i) for i in range(500)], progress=False)
    assert res == [2 * i for i in range(500)]
    pids = set(fx.sql(f"SELECT DISTINCT pid FROM executions WHERE {res.where}").pid)
    assert pids and pids <= worker_pids(client)
    local = Functions(store=store)  # same store, no cluster: runs here, same ids scheme
    res2 = local.map("add", [(1, 2)] * 3, progress=False, map_id="here")
    assert res2 == [3, 3, 3] and res2.map_id == "here"
    assert set(local.sql("SELECT pid FROM executions WHERE starts_with(id, 'here-')").pid) == {os.getpid()}
    by_address = Functions(store=store, cluster=client.scheduler.address)  # its own Client
    assert by_address.map("add", [(2, 2)] * 300, progress=False) == [4] * 300
    assert by_address._dask is not client
    by_address.close()
    fx.close()
    local.close()


def test_history_is_written_per_worker_not_per_chunk(client, store):
    fx = Functions(store=store)
    fx.deploy("rust", ADD_RS, name="add")
    n, size = 2000, 50  # 40 chunks
    # a background interval longer than the map: what is in the store came from the final step
    res = map_on_cluster(client, store, None, "add@1", [(i, 1) for i in range(n)],
                         progress=False, chunk_size=size, options={"flush_interval": 3600})
    assert res == [i + 1 for i in range(n)]
    h = history_of(fx, res)
    assert h.rows == h.ids == h.ok_ids == n  # queryable as soon as map returns
    pids = set(h.pids)
    files = history_files(store)
    per_worker = {pid: written_by(files, pid) for pid in pids}
    assert all(len(f) == 1 for f in per_worker.values()), per_worker  # one file per worker
    assert len(files) == len(pids) <= 2 < n // size
    fx.close()


def test_records_a_dead_worker_never_wrote_are_recorded_again(client, store):
    """The rule behind 'every record is queryable when map returns': a chunk whose worker
    process is gone when the map asks the workers to write their records is run again."""
    fx = Functions(store=store)
    fx.deploy("rust", ADD_RS, name="add")
    n = 1200
    job = ClusterMap(client, Functions, store, None, "add@1", [(i, 2) for i in range(n)],
                     chunk_size=100, map_id="dead-before-flush",
                     options={"flush_interval": 3600})
    assert job.gather() == [i + 2 for i in range(n)]
    assert history_files(store) == []  # every record is still in a worker's buffer
    victim_process = sorted(job.ran)[0]
    victim_chunks = len(job.ran[victim_process])
    victim = int(victim_process.split("-")[0])
    os.kill(victim, signal.SIGKILL)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:  # the nanny has started a new worker process
        pids = set(client.run(os.getpid, on_error="return").values())
        if victim not in pids and len(pids) == 2:
            break
        time.sleep(0.1)
    job.settle()
    h = history_of(fx, job.results)
    assert h.rows == h.ids == h.ok_ids == n, h.to_dict()
    assert victim not in set(h.pids)
    assert victim_chunks >= 1
    fx.close()


def test_a_closing_worker_writes_its_records(store):
    fx = Functions(store=store)
    fx.deploy("rust", ADD_RS, name="add")
    with distributed.LocalCluster(n_workers=1, threads_per_worker=1, processes=True,
                                  dashboard_address=":0") as cluster, \
            distributed.Client(cluster, set_as_default=False) as c:
        job = ClusterMap(c, Functions, store, None, "add@1", [(i, 0) for i in range(300)],
                         chunk_size=100,
                         options={"flush_interval": 3600})
        assert job.gather() == list(range(300))  # no settle: the records stay in the worker
        assert history_files(store) == []
        c.close()
        cluster.close()  # the worker process exits: its History writes them
    assert history_of(fx, job.results).rows == 300
    fx.close()


def test_worker_killed_mid_map_is_survived(client, store):
    """Runs last: kills a worker while it runs a chunk whose first rows it has already written
    (the nanny starts a new worker). Dask runs that chunk again elsewhere; its rows are
    recorded twice under the same ids."""
    fx = Functions(store=store)
    fx.history.list_ttl = 0  # the poller below must see the workers' files as they land
    fx.deploy("rust", SLOW_RS, name="slow")
    n, size, map_id = 3000, 300, "killed-map"  # 10 chunks of ~0.2 s
    box: dict = {}

    def run():
        try:  # workers write history every 50 ms here, so a running chunk has rows in the store
            box["res"] = map_on_cluster(client, store, None, "slow@1", list(range(n)),
                                        progress=False, chunk_size=size, map_id=map_id,
                                        options={"flush_interval": 0.05})
        except BaseException as exc:  # reported by the main thread
            box["err"] = exc

    pids = client.run(os.getpid)
    victim = sorted(pids)[0]
    thread = threading.Thread(target=run)
    thread.start()
    deadline, hit = time.monotonic() + 30, None
    while hit is None and time.monotonic() < deadline and thread.is_alive():
        running = {int(str(k).rsplit("-", 1)[1]) for k in client.processing([victim]).get(victim, ())
                   if map_id in str(k)}
        written = fx.sql(f"SELECT id FROM executions WHERE starts_with(id, '{map_id}-') "
                         f"AND pid = {pids[victim]}").id
        done = {int(i.rsplit("-", 1)[1]) for i in written}
        for k in running:  # a chunk the victim runs now and has written part of
            part = done & set(range(k * size, (k + 1) * size))
            if 0 < len(part) < size // 2:
                hit = k, len(part)
        if hit is None:
            time.sleep(0.02)
    assert hit is not None and thread.is_alive(), "never caught the victim mid-chunk"
    os.kill(pids[victim], signal.SIGKILL)
    thread.join(60)
    assert not thread.is_alive() and "err" not in box, box.get("err")
    res = box["res"]
    assert res == [x + 1 for x in range(n)]
    h = history_of(fx, res)
    # the rerun chunk recorded its first rows again: more rows than inputs, but one distinct
    # successful id per input
    assert h.ok_ids == h.ids == n and h.rows >= n + hit[1], (h.to_dict(), hit)
    assert pids[victim] in set(h.pids) and len(set(h.pids)) >= 2
    client.wait_for_workers(2, timeout=30)
    fx.close()
