"""Primary + fallback stores: reads fall back, migration verifies, cleanup deletes only what is safe."""

from __future__ import annotations

import pytest

from functions_nb import FunctionNotFound, Functions

from .conftest import ADD_RS

MUL_RS = ADD_RS.replace("a + b", "a * b")


@pytest.fixture
def legacy(tmp_path):
    """A fallback store that already holds add@1, add@2 and mul@1."""
    url = str(tmp_path / "legacy")
    fx = Functions(store=url, history=False)
    fx.deploy("rust", ADD_RS, name="add")
    fx.deploy("rust", MUL_RS, name="add")
    fx.deploy("rust", MUL_RS.replace("add", "mul"), name="mul")
    fx.close()
    return url


def test_reads_fall_back_and_versions_do_not_collide(tmp_path, legacy):
    fx = Functions(store=str(tmp_path / "primary"), fallback=legacy, history=False)
    assert fx.invoke("add", 2, 3) == 6 and fx.invoke("add@1", 2, 3) == 5
    assert fx.versions("add") == [1, 2]
    info = fx.deploy("rust", ADD_RS.replace("a + b", "a - b"), name="add")
    assert info.version == 3  # the next number across both stores
    assert fx.store.primary.versions("add") == [3] and fx.invoke("add", 2, 3) == -1
    table = fx.versions("add", detail=True)
    assert [(r["version"], r["latest"]) for r in table] == [(1, False), (2, False), (3, True)]
    assert table[0]["store"] == legacy and table[2]["size"] > 0 and len(table[2]["code_sha256"]) == 64


def test_migrate_then_cleanup(tmp_path, legacy):
    fx = Functions(store=str(tmp_path / "primary"), fallback=legacy, history=False)
    report = fx.migrate(progress=False)
    assert sorted(report["copied"]) == ["add@1", "add@2", "mul@1"] and not report["failed"]
    assert fx.migrate(progress=False)["already"] == ["add@1", "add@2", "mul@1"]
    primary = fx.store.primary
    assert primary.versions("add") == [1, 2] and primary.latest_version("add") == 2
    # a version that differs in the primary must never be deleted from the fallback
    fx_legacy = Functions(store=legacy, history=False)
    fx_legacy.deploy("rust", ADD_RS.replace("a + b", "a + b + 100"), name="add")  # add@3, not migrated
    report = fx.cleanup_fallback()
    assert sorted(report["deleted"]) == ["add@1", "add@2", "mul@1"] and report["kept"] == ["add@3"]
    assert fx.store.fallback.versions("add") == [3] and fx.store.fallback.versions("mul") == []
    assert fx.invoke("add@1", 2, 3) == 5  # now served by the primary
    fx_legacy.close()


def test_migrate_one_version_and_auto_migrate(tmp_path, legacy):
    fx = Functions(store=str(tmp_path / "p1"), fallback=legacy, history=False)
    assert fx.migrate("add", 1, progress=False)["copied"] == ["add@1"]
    assert fx.store.primary.versions("add") == [1]
    with pytest.raises(FunctionNotFound):
        fx.migrate("add", 9, progress=False)
    auto = Functions(store=str(tmp_path / "p2"), fallback=legacy, auto_migrate=True, history=False)
    assert auto.invoke("mul", 3, 4) == 12
    assert auto.store.primary.versions("mul") == [1]


def test_preference_and_write_target(tmp_path, legacy):
    fx = Functions(store=str(tmp_path / "primary"), fallback=legacy, write_primary=False,
                   prefer_primary=False, history=False)
    info = fx.deploy("rust", ADD_RS.replace("a + b", "a + b + 1"), name="add")
    assert info.version == 3 and fx.store.fallback.versions("add") == [1, 2, 3]
    assert fx.store.primary.versions("add") == []


def test_delete_and_rollback(fx):
    for src in (ADD_RS, MUL_RS, ADD_RS.replace("a + b", "a - b")):
        fx.deploy("rust", src, name="add")
    assert fx.delete("add@3") == [3]
    assert fx.info("add").version == 2 and fx.invoke("add", 2, 3) == 6
    fx.rollback("add", 1)
    assert fx.invoke("add", 2, 3) == 5
    with pytest.raises(FunctionNotFound):
        fx.delete("add@3")
    assert fx.delete("add") == [1, 2]
    assert fx.list() == []
    with pytest.raises(FunctionNotFound):
        fx.invoke("add", 1, 2)
