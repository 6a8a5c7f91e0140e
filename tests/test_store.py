"""Versions, latest, content-hash dedupe, atomic and concurrent writes."""

from __future__ import annotations

import json
import os
import threading

import pytest

from functions_nb import FunctionNotFound, Functions
from functions_nb.storage import FunctionStore
from functions_nb.storage.fsutil import create_exclusive

from .conftest import ADD_RS


def test_unchanged_cell_keeps_its_version(fx):
    first = fx.deploy("rust", ADD_RS, name="add")
    again = fx.deploy("rust", ADD_RS, name="add")
    assert (first.version, first.cached) == (1, False)
    assert (again.version, again.cached) == (1, True)
    assert again.compile_ms == first.compile_ms
    assert fx.versions("add") == [1]
    forced = fx.deploy("rust", ADD_RS, name="add", force=True)
    assert forced.version == 2 and not forced.cached
    changed_opts = fx.deploy("rust", ADD_RS, name="add", timeout=5)
    assert changed_opts.version == 3 and changed_opts.timeout == 5
    back = fx.deploy("rust", ADD_RS, name="add")  # identical to v2 (latest hash for it)
    assert back.cached and fx.info("add").version == back.version


def test_info_list_and_not_found(fx):
    fx.deploy("rust", ADD_RS, name="add")
    (info,) = fx.list()
    assert (info.name, info.version, info.language) == ("add", 1, "rust")
    assert str(info.signature) == "add(a: i32, b: i32) -> i32"
    assert info.toolchain["rust"].startswith("rustc ")
    assert info.source == ADD_RS
    with pytest.raises(FunctionNotFound, match="deployed functions: add"):
        fx.invoke("nope", 1)
    with pytest.raises(FunctionNotFound, match="has no version 7"):
        fx.invoke("add@7", 1, 2)
    with pytest.raises(Exception, match="invalid function name"):
        fx.invoke("1bad")


def test_version_visible_only_when_complete(store):
    fs_store = FunctionStore(store)
    # leftovers of an interrupted write: a blob, a temp file, no metadata
    fs_store.put_blob(b"\0asm partial")
    os.makedirs(fs_store._fn("ghost", "versions"), exist_ok=True)
    with open(fs_store._fn("ghost", "versions", "1.json.tmp-dead"), "w") as fh:
        fh.write('{"truncated')
    assert fs_store.versions("ghost") == []
    assert fs_store.list() == []
    with pytest.raises(FunctionNotFound):
        fs_store.get_info("ghost")


def test_corrupt_blob_is_detected(fx):
    info = fx.deploy("rust", ADD_RS, name="add")
    path = fx.store.path("blobs", info.code_sha256)
    with open(path, "r+b") as fh:
        fh.write(b"XXXX")
    with pytest.raises(Exception, match="corrupt"):
        fx.invoke("add", 1, 2)


def test_create_exclusive(tmp_path):
    fs_store = FunctionStore(str(tmp_path / "s"))
    path = fs_store.path("x.json")
    assert create_exclusive(fs_store.fs, path, b"1") is True
    assert create_exclusive(fs_store.fs, path, b"2") is False
    assert open(path).read() == "1"
    assert [p for p in os.listdir(tmp_path / "s") if "tmp" in p] == []


def test_concurrent_deploys_get_distinct_versions(store):
    clients = [Functions(store=store, history=False) for _ in range(4)]
    infos = []

    def deploy(i):
        fx = clients[i % len(clients)]
        infos.append(fx.deploy("rust", ADD_RS.replace("a + b", f"a + b + {i}"), name="add"))

    threads = [threading.Thread(target=deploy, args=(i,)) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(i.version for i in infos) == list(range(1, 9))
    fx = clients[0]
    results = {fx.invoke(f"add@{i.version}", 0, 0) for i in infos}
    assert results == set(range(8))
    meta = json.loads(fx.store.fs.cat_file(fx.store._fn("add", "latest.json")))
    assert meta["version"] in range(1, 9)
