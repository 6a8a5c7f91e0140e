"""Requests a deploy and a cold invoke send to S3, counted by a proxy in front of a real moto
server: a fixed small number of GETs and PUTs of known keys, never a LIST."""

from __future__ import annotations

import uuid

import pytest

from functions_nb import Functions

from .conftest import ADD_RS
from .s3server import FaultProxy, s3_storage_options


@pytest.fixture
def proxy(moto):
    with FaultProxy(("127.0.0.1", moto.port)) as p:
        yield p


@pytest.fixture
def bucket(moto):
    name = f"fnb-{uuid.uuid4().hex[:10]}"
    moto.make_bucket(name)
    return name


def fresh(proxy: FaultProxy, bucket: str, **kwargs) -> Functions:
    return Functions(store=f"s3://{bucket}/team", storage_options=s3_storage_options(proxy.endpoint),
                     history=False, **kwargs)


def during(proxy: FaultProxy, call) -> list[tuple[str, str]]:
    """(method, path under the store) of each request ``call()`` sends."""
    start = len(proxy.requests)
    call()
    out = []
    for line in proxy.requests[start:]:
        method, target, _ = line.split(" ")
        out.append((method, target.split("/team/", 1)[1] if "/team/" in target else target))
    return out


def is_list(request: tuple[str, str]) -> bool:
    return "list-type" in request[1] or request[1].endswith("/")


def test_cold_invoke_reads_four_known_keys(proxy, bucket, tmp_path, monkeypatch):
    fx = fresh(proxy, bucket)
    info = fx.deploy("rust", ADD_RS, name="add")
    assert fx.invoke("add", 1, 1) == 2  # the precompiled module is now in the store too
    blob = f"blobs/{info.code_sha256}"

    # a new machine: nothing in its local module cache
    monkeypatch.setenv("FUNCTIONS_NB_CACHE", str(tmp_path / "empty-cache"))
    seen: list = []
    assert during(proxy, lambda: seen.append(fresh(proxy, bucket))) == []  # opening: no request
    got = during(proxy, lambda: seen.append(seen[0].invoke("add", 2, 3)))
    assert seen[1] == 5
    assert [m for m, _ in got] == ["GET"] * 4 and not any(is_list(r) for r in got), got
    assert [p for _, p in got][:3] == ["functions/add/latest.json", "functions/add/versions/1.json",
                                       blob]
    assert got[3][1].startswith(f"modcache/{info.code_sha256}")

    # the same machine again (module in its local cache): still 4, the last one checks that
    # the store has the module (one ranged GET, no HEAD + LIST)
    again = during(proxy, lambda: fresh(proxy, bucket).invoke("add", 2, 3))
    assert [m for m, _ in again] == ["GET"] * 4 and not any(is_list(r) for r in again), again
    assert again[3][1] == got[3][1]

    pinned = during(proxy, lambda: fresh(proxy, bucket).invoke("add@1", 2, 3))
    assert [p for _, p in pinned][:2] == ["functions/add/versions/1.json", blob]
    assert len(pinned) == 3 and not any(is_list(r) for r in pinned)


def test_deploy_is_seven_requests_without_listing(proxy, bucket):
    fx = fresh(proxy, bucket)
    box: list = []
    got = during(proxy, lambda: box.append(fx.deploy("rust", ADD_RS, name="add")))
    info = box[0]
    h = info.content_hash
    assert got == [
        ("GET", f"functions/add/hashes/{h}.json"),    # identical code deployed before?
        ("GET", f"blobs/{info.code_sha256}"),         # this code stored before (any function)?
        ("PUT", f"blobs/{info.code_sha256}"),
        ("GET", "functions/add/latest.json"),         # the next version number
        ("PUT", "functions/add/versions/1.json"),     # conditional: the commit point
        ("PUT", f"functions/add/hashes/{h}.json"),
        ("PUT", "functions/add/latest.json"),
    ], got
    # the same code again: found by its hash, nothing written
    same = during(proxy, lambda: fx.deploy("rust", ADD_RS, name="add"))
    assert same == [("GET", f"functions/add/hashes/{h}.json"), ("GET", "functions/add/latest.json")]
    # new code in a new process: version 2, seven requests again
    other = fresh(proxy, bucket)
    new = during(proxy, lambda: box.append(other.deploy("rust", ADD_RS.replace("a + b", "a - b"),
                                                        name="add")))
    assert box[-1].version == 2 and len(new) == 7 and not any(is_list(r) for r in new), new
    assert ("PUT", "functions/add/versions/2.json") in new


def test_version_numbers_after_a_rollback(proxy, bucket):
    fx = fresh(proxy, bucket)
    for k in range(5):
        fx.deploy("rust", ADD_RS.replace("a + b", f"a + b + {k}"), name="add")
    fx.rollback("add", 1)
    # latest is 1: numbers 2, 3, 4 are tried (taken), then the versions are listed once
    info = fresh(proxy, bucket).deploy("rust", ADD_RS.replace("a + b", "a * b"), name="add")
    assert info.version == 6 and fx.versions("add") == [1, 2, 3, 4, 5, 6]
    assert fresh(proxy, bucket).invoke("add", 3, 4) == 12
    fx.rollback("add", 5)
    box: list = []
    one_miss = during(proxy, lambda: box.append(
        fresh(proxy, bucket).deploy("rust", ADD_RS.replace("a + b", "a - b"), name="add")))
    assert box[0].version == 7 and not any(is_list(r) for r in one_miss)
    puts = [p for m, p in one_miss if m == "PUT" and "/versions/" in p]
    assert puts == ["functions/add/versions/6.json", "functions/add/versions/7.json"]  # 6 taken


def test_a_missing_bucket_is_created_by_the_first_write(proxy, moto):
    """Opening a store sends nothing, so the bucket is made when a write finds it missing."""
    name = f"fnb-new-{uuid.uuid4().hex[:8]}"
    options = s3_storage_options(proxy.endpoint)
    options["client_kwargs"]["region_name"] = "eu-west-1"  # us-east-1 takes no location
    fx = Functions(store=f"s3://{name}/team", storage_options=options, history=False)
    fx.deploy("rust", ADD_RS, name="add")
    assert fresh(proxy, name).invoke("add", 20, 22) == 42
    assert name in {b["Name"] for b in moto.client().list_buckets()["Buckets"]}
