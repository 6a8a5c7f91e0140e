"""The store on S3: s3fs against a real moto S3 server on 127.0.0.1 (server mode).

A fault proxy between s3fs and moto makes "the server went away mid-deploy" happen at an
exact request without losing moto's state.
"""

from __future__ import annotations

import os
import subprocess
import sys
import uuid
import warnings
from pathlib import Path

import pytest

from functions_nb import Functions, StorageError
from functions_nb.errors import StaleFunctionWarning

from .conftest import ADD_RS
from .s3server import FaultProxy, s3_storage_options


@pytest.fixture
def bucket(moto):
    name = f"fnb-{uuid.uuid4().hex[:10]}"
    moto.make_bucket(name)
    return name


def s3fx(endpoint: str, bucket: str, **kwargs) -> Functions:
    return Functions(store=f"s3://{bucket}/team", storage_options=s3_storage_options(endpoint),
                     **kwargs)


def test_everything_works_on_s3(moto, bucket):
    fx = s3fx(moto.endpoint, bucket)
    fx.deploy("rust", ADD_RS, name="add")
    fx.deploy("zig", "fn sq(x: i64) i64 {\n    return x * x;\n}\n", name="sq")
    assert fx.invoke("add", 2, 3) == 5 and fx.invoke("sq", 9) == 81
    fx.deploy("rust", ADD_RS.replace("a + b", "a * b"), name="add")
    assert fx.invoke("add", 2, 3) == 6 and fx.invoke("add@1", 2, 3) == 5
    fx.rollback("add", 1)
    assert fx.invoke("add", 2, 3) == 5
    assert [r["version"] for r in fx.versions("add", detail=True)] == [1, 2]
    keys = {k.split("/")[2] for k in fx.store.fs.find(f"{bucket}/team")}
    assert keys >= {"functions", "blobs", "modcache"}
    # a second "machine" sees the same functions, and one history
    other = s3fx(moto.endpoint, bucket)
    assert other.invoke("sq", 3) == 9
    assert [f.name for f in other.list()] == ["add", "sq"]
    df = other.sql("select function, count(*) n from executions group by all order by function")
    assert dict(zip(df.function, df.n, strict=True)) == {"add": 4, "sq": 2}
    assert fx.store.fs.find(f"{bucket}/team/history")
    fx.close()
    other.close()


def test_cli_and_processes_share_the_bucket(moto, bucket):
    fx = s3fx(moto.endpoint, bucket)
    fx.deploy("rust", ADD_RS, name="add")
    env = {**os.environ, "AWS_ENDPOINT_URL": moto.endpoint, "AWS_ACCESS_KEY_ID": "testing",
           "AWS_SECRET_ACCESS_KEY": "testing", "AWS_DEFAULT_REGION": "us-east-1",
           "FUNCTIONS_NB_STORE": f"s3://{bucket}/team"}
    func = str(Path(sys.executable).with_name("func"))
    out = subprocess.run([func, "invoke", "add", "[20, 22]"], env=env, capture_output=True,
                         text=True, check=True).stdout
    assert out.strip() == "42"
    assert fx.sql("select count(*) n from executions").n[0] == 1
    fx.close()


DEPLOYER = """
import sys
from functions_nb import Functions
fx = Functions(store=sys.argv[1], history=False)
for i in range(3):
    src = "fn add(a: i32, b: i32) -> i32 { a + b + %s }" % (int(sys.argv[2]) * 10 + i)
    print(fx.deploy("rust", src, name="add").version, flush=True)
"""


def test_two_processes_deploy_at_once(moto, bucket):
    env = {**os.environ, "AWS_ENDPOINT_URL": moto.endpoint, "AWS_ACCESS_KEY_ID": "testing",
           "AWS_SECRET_ACCESS_KEY": "testing", "AWS_DEFAULT_REGION": "us-east-1"}
    url = f"s3://{bucket}/team"
    procs = [subprocess.Popen([sys.executable, "-c", DEPLOYER, url, str(k)], env=env,
                              stdout=subprocess.PIPE, text=True) for k in (1, 2)]
    versions = []
    for p in procs:
        out, _ = p.communicate(timeout=120)
        assert p.returncode == 0
        versions += [int(v) for v in out.split()]
    assert sorted(versions) == [1, 2, 3, 4, 5, 6]  # distinct, none lost
    fx = s3fx(moto.endpoint, bucket, history=False)
    assert fx.versions("add") == [1, 2, 3, 4, 5, 6]
    assert {fx.invoke(f"add@{v}", 0, 0) for v in versions} == {10, 11, 12, 20, 21, 22}


def test_server_gone_mid_deploy_leaves_no_partial_version(moto, bucket):
    with FaultProxy(("127.0.0.1", moto.port)) as proxy:
        fx = s3fx(proxy.endpoint, bucket, history=False)
        proxy.go_down_after(lambda line: line.startswith("PUT") and "/blobs/" in line)
        with pytest.raises(StorageError, match="failed in .*EndpointConnectionError|Could not connect"):
            fx.deploy("rust", ADD_RS, name="add", force=True)
        assert any("/blobs/" in r for r in proxy.requests)  # the code was written, then it died
        proxy.up()
        direct = s3fx(moto.endpoint, bucket, history=False)
        assert direct.versions("add") == [] and direct.list() == []
        info = fx.deploy("rust", ADD_RS, name="add")
        assert info.version == 1 and fx.invoke("add", 2, 3) == 5


def test_unreachable_store_uses_loader_cache(moto, bucket):
    with FaultProxy(("127.0.0.1", moto.port)) as proxy:
        fx = s3fx(proxy.endpoint, bucket, latest_ttl=0.0)
        fx.deploy("rust", ADD_RS, name="add")
        assert fx.invoke("add", 1, 2) == 3
        proxy.down()
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            assert fx.invoke("add", 2, 2) == 4
        assert any(issubclass(w.category, StaleFunctionWarning) and "add@1" in str(w.message)
                   for w in caught)
        with pytest.raises(StorageError):
            fx.invoke("other", 1)
        assert fx.loader.snapshot()["stale_hits"] == 1
        assert fx.invoke("add", 3, 3) == 6  # no second trip to the dead store for 30 s
        assert fx.loader.snapshot()["stale_hits"] == 1
        proxy.up()
        assert fx.invoke("add", 5, 5) == 10
        fx.close()


def test_local_to_s3_migration(moto, bucket, tmp_path):
    local = str(tmp_path / "laptop")
    laptop = Functions(store=local, history=False)
    laptop.deploy("rust", ADD_RS, name="add")
    laptop.deploy("zig", "fn sq(x: i64) i64 {\n    return x * x;\n}\n", name="sq")
    team = Functions(store=f"s3://{bucket}/team", fallback=local,
                     storage_options=s3_storage_options(moto.endpoint), history=False)
    assert team.invoke("sq", 4) == 16  # served from the fallback before migration
    report = team.migrate(progress=False)
    assert sorted(report["copied"]) == ["add@1", "sq@1"] and not report["failed"]
    assert sorted(team.cleanup_fallback()["deleted"]) == ["add@1", "sq@1"]
    assert laptop.list() == []
    s3_only = s3fx(moto.endpoint, bucket, history=False)
    assert s3_only.invoke("add", 1, 1) == 2 and s3_only.invoke("sq", 5) == 25
