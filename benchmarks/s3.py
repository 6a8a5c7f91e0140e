"""S3 round trips for ``make bench``: requests a moto server sees for one cold invoke (a fresh
``Functions``, a machine whose local module cache is empty), counted by the proxy of
``tests/s3server.py``, vs s3fs's plain ``cat_file`` of the same keys (what the store did
before: a HEAD for the size, then the GET). Also counts a deploy's requests."""

from __future__ import annotations

import os
import sys
import tempfile
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
ADD = "fn add(a: i32, b: i32) -> i32 {\n    a + b\n}\n"


def _lists(lines: list[str]) -> int:
    return sum("list-type" in line for line in lines)


def bench_s3_requests() -> dict:
    sys.path.insert(0, str(ROOT))
    from functions_nb import Functions
    from tests.s3server import FaultProxy, MotoServer, s3_storage_options

    with MotoServer() as moto, FaultProxy(("127.0.0.1", moto.port)) as proxy, \
            tempfile.TemporaryDirectory() as tmp:
        bucket = f"bench-{uuid.uuid4().hex[:8]}"
        moto.make_bucket(bucket)
        options = s3_storage_options(proxy.endpoint)
        url = f"s3://{bucket}/store"

        def fresh(history: bool = False) -> Functions:
            return Functions(store=url, storage_options=options, history=history)

        seen = len(proxy.requests)
        fx = fresh()
        info = fx.deploy("rust", ADD, name="add")
        deploy = proxy.requests[seen:]
        assert fx.invoke("add", 2, 3) == 5  # the precompiled module reaches the store
        before = os.environ.get("FUNCTIONS_NB_CACHE")
        os.environ["FUNCTIONS_NB_CACHE"] = str(Path(tmp) / "empty-cache")  # a new machine
        try:
            seen = len(proxy.requests)
            cold = fresh()
            assert cold.invoke("add", 2, 3) == 5
            ours = proxy.requests[seen:]
        finally:
            if before is None:
                os.environ.pop("FUNCTIONS_NB_CACHE")
            else:
                os.environ["FUNCTIONS_NB_CACHE"] = before
        keys = [line.split(" ")[1].split("?")[0].lstrip("/") for line in ours]
        seen = len(proxy.requests)
        plain = fresh().store.fs
        for key in keys:
            plain.cat_file(key)
        naive = proxy.requests[seen:]
        seen = len(proxy.requests)
        logged = fresh(history=True)
        assert logged.invoke("add", 2, 3) == 5
        logged.close()
        with_history = proxy.requests[seen:]
    value, baseline = len(ours), len(naive)
    return {"name": "s3_requests_per_cold_invoke", "value": value, "unit": "requests",
            "baseline": baseline, "ratio": round(value / baseline, 3),
            "goal": "<= 4, no LIST", "met": value <= 4 and _lists(ours) == 0,
            "note": f"fresh Functions (history off), first invoke of {info.target} on S3 (moto "
                    f"on loopback, empty local module cache): {value} requests "
                    f"({', '.join(line.split(' ')[0] for line in ours)}; {_lists(ours)} LIST) vs "
                    f"s3fs cat_file of the same {len(keys)} keys with its defaults "
                    f"({baseline}); a deploy of new code: {len(deploy)} requests "
                    f"({_lists(deploy)} LIST); with history on the History adds "
                    f"{len(with_history) - value} ({_lists(with_history)} LIST: its retention "
                    "clean-up lists history/ once per process; one PUT per flush)"}


def run_all() -> list[dict]:
    return [bench_s3_requests()]


if __name__ == "__main__":
    for row in run_all():
        print(row)
