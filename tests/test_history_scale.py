"""History at scale: 1e6 executions queried through the views; compaction of many small
record files into one Parquet file keeps every row exactly once; JSONL history (small
flushes, and files earlier versions wrote) is read and compacted."""

from __future__ import annotations

import time

from functions_nb import Functions

from .conftest import ADD_RS
from .history_synth import DASHBOARD_QUERY, write_synthetic


def test_queries_over_a_million_executions(store):
    fx = Functions(store=store)
    write_synthetic(fx, 1_000_000)
    fx.deploy("rust", ADD_RS, name="add")
    fx.invoke("add", 1, 2)  # plus one real execution, still in a JSONL file
    df = fx.sql(DASHBOARD_QUERY)
    assert len(df) == 21 and df.calls.sum() == 1_000_001
    f0 = df[df.function == "f0"].iloc[0]
    assert f0.calls == 50_000
    # every 17th row failed; f0 holds the i with i % 20 == 0
    assert abs(f0.error_rate - 1 / 17) < 0.002
    assert df[df.function == "add"].iloc[0].last_status == "ok"
    tiers = fx.sql("SELECT tier, count(*) n FROM tier_attempts GROUP BY tier ORDER BY tier")
    assert dict(zip(tiers.tier, tiers.n, strict=True))["generative"] == 20_000
    lines = fx.sql("SELECT count(*) n FROM console WHERE message LIKE 'line %'")
    assert lines.n[0] == 10_000
    fx.close()


def test_compaction_keeps_every_row_once(store):
    fx = Functions(store=store, flush_interval=0.02)
    fx.deploy("rust", ADD_RS, name="add")
    for i in range(30):
        fx.invoke("add", i, 1)
        time.sleep(0.03)  # many small record files
    fx.flush()
    files = fx.store.fs.glob(f"{fx.history.root}/date=*/*.jsonl")
    assert len(files) > 5  # one small JSON-lines file per flush of a few records
    before = fx.sql("SELECT id, output FROM executions ORDER BY id")
    merged = fx.compact_history()
    assert merged == len(files)
    left = fx.store.fs.glob(f"{fx.history.root}/date=*/*")
    assert len(left) == 1 and left[0].rsplit("/", 1)[-1].startswith("compact-")
    after = fx.sql("SELECT id, output FROM executions ORDER BY id")
    assert after.equals(before) and len(after) == 30
    fx.invoke("add", 1, 1)  # new records go to new small files beside the compacted one
    assert fx.sql("SELECT count(*) n FROM executions").n[0] == 31
    # a second client of the same store sees the same rows
    other = Functions(store=store, history=True)
    assert other.sql("SELECT count(DISTINCT id) n FROM executions").n[0] == 31
    other.close()
    fx.close()


def test_cleanup_history_older_than(store):
    fx = Functions(store=store, retention_days=100_000)  # no automatic clean-up here
    write_synthetic(fx, 1000, day="2020-01-01")
    assert fx.sql("SELECT count(*) n FROM executions").n[0] == 1000
    assert fx.cleanup_history(older_than=30) == ["2020-01-01"]
    assert fx.sql("SELECT count(*) n FROM executions").n[0] == 0
    fx.close()


def test_jsonl_history_of_earlier_versions_is_read_and_compacted(store):
    import json

    fx = Functions(store=store)
    fx.deploy("rust", ADD_RS, name="add")
    fx.invoke("add", 1, 2)
    fx.flush()
    day = fx.store.fs.glob(f"{fx.history.root}/date=*")[0]
    row = {"id": "old-1", "function": "add", "version": 1, "language": "rust", "tier": "code",
           "attempt": 1, "status": "ok", "started_at": "2026-11-28 10:00:00.000000",
           "duration_ms": 0.5, "cold": False, "console": [{"level": "log", "message": "m",
                                                           "ts": 1.0}]}
    fx.store.fs.pipe_file(f"{day}/old-000001.jsonl", (json.dumps(row) + "\n").encode())
    assert set(fx.sql("SELECT id FROM executions").id) >= {"old-1"}
    assert fx.compact_history() == 2
    df = fx.sql("SELECT id FROM executions ORDER BY id")
    assert len(df) == 2 and "old-1" in set(df.id)
    assert fx.sql("SELECT message FROM console WHERE id = 'old-1'").message.tolist() == ["m"]
    fx.close()


def test_map_runs_a_batch_in_order_with_progress(store, capsys):
    from .conftest import BOOM_RS

    fx = Functions(store=store)
    fx.deploy("rust", BOOM_RS, name="boom")
    out = fx.map("boom", [0, -1, 1, -2], progress=True)
    assert out[0] == 0 and out[1] == -1 and out[3] == -2
    assert isinstance(out[2], Exception) and "bad input 1" in str(out[2])
    assert "boom: 100%" in capsys.readouterr().err  # the progress bar
    assert fx.sql("SELECT count(*) n FROM executions").n[0] == 4
    fx.close()
