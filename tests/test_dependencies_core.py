"""The dependency core (functions_nb.dependencies): locks, files from the store's blobs, and the
lock in a version's metadata. Each ecosystem's resolver is tested against its real registry in
tests/test_deps_<ecosystem>.py; this file covers what they share."""

from __future__ import annotations

from pathlib import Path

import pytest

from functions_nb import Functions
from functions_nb.dependencies import Lock, Package, Resolved, combine, materialize, pinned, sha256
from functions_nb.errors import DependencyError, StorageError
from functions_nb.storage import open_store

WHEEL = b"PK\x03\x04 a file a registry served"


def _lock(data: bytes = WHEEL, version: str = "1.0") -> Lock:
    pkg = Package("demo", version, "demo-1.0-py3-none-any.whl", sha256(data), "sha256:x")
    return Lock("pypi", ("demo>=1",), (pkg,), "")


def test_lock_round_trips_and_its_digest_names_every_field():
    lock = _lock()
    assert Lock.from_dict(lock.to_dict()) == lock
    assert _lock(version="1.1").digest() != lock.digest()
    assert lock._replace(extra="go.sum text").digest() != lock.digest()


def test_combine_folds_the_lock_into_the_code_hash():
    files = (Path("x"),)
    a, b = Resolved(_lock(), files), Resolved(_lock(version="2"), files)
    assert combine("h", None) == "h"
    assert combine("h", a) != combine("h", b) != "h"


def test_materialize_fetches_from_the_store_and_repairs_a_bad_local_copy(tmp_path, monkeypatch):
    monkeypatch.setenv("FUNCTIONS_NB_CACHE", str(tmp_path / "cache"))
    store = open_store(str(tmp_path / "store"))
    digest = store.put_blob(WHEEL)
    lock = _lock()
    assert lock.packages[0].sha256 == digest
    [path] = materialize(lock.packages, store)
    assert path.read_bytes() == WHEEL and path.name == "demo-1.0-py3-none-any.whl"
    path.write_bytes(b"tampered")  # a local copy that no longer matches is fetched again
    [again] = materialize(lock.packages, store)
    assert again.read_bytes() == WHEEL


def test_a_missing_or_corrupt_blob_is_a_storage_error(tmp_path, monkeypatch):
    monkeypatch.setenv("FUNCTIONS_NB_CACHE", str(tmp_path / "cache"))
    store = open_store(str(tmp_path / "store"))
    with pytest.raises(StorageError, match="missing"):
        materialize(_lock().packages, store)
    digest = store.put_blob(WHEEL)
    (tmp_path / "store" / "blobs" / digest).write_bytes(b"corrupt")
    with pytest.raises(StorageError, match="corrupt"):
        materialize(_lock().packages, store)


def test_pinned_rows_and_versions_detail_of_a_version_without_dependencies(tmp_path):
    assert pinned(None) == []
    assert pinned(_lock().to_dict()) == [{"ecosystem": "pypi", "name": "demo", "version": "1.0",
                                          "file": "demo-1.0-py3-none-any.whl",
                                          "sha256": sha256(WHEEL)}]
    fx = Functions(store=str(tmp_path / "store"), history=False)
    try:
        fx.deploy("zig", "pub fn one() i64 { return 1; }", name="one")
        [row] = fx.versions("one", detail=True)
        assert row["dependencies"] == [] and fx.info("one").dependencies is None
    finally:
        fx.close()


def test_dependency_error_is_a_compile_error_of_the_tree():
    import functions_nb
    from functions_nb.errors import CompileError

    assert functions_nb.DependencyError is DependencyError
    assert issubclass(DependencyError, CompileError)


def test_a_refused_declaration_reads_in_the_notebook_cells_lines(tmp_path):
    """The magic deploys with line_offset=1 (its %%function line); a declaration error then
    names the cell's own line, as compiler errors do."""
    source = ('package main\n\n// require github.com/google/uuid latest\nimport "github.com/google/uuid"\n'
              "func f() string { return uuid.Nil.String() }\n")
    fx = Functions(store=str(tmp_path / "store"), history=False)
    try:
        with pytest.raises(DependencyError) as plain:
            fx.deploy("go", source, name="f")
        with pytest.raises(DependencyError) as shifted:
            fx.deploy("go", source, name="f", line_offset=1)
    finally:
        fx.close()
    assert plain.value.line == 3 and str(plain.value).startswith("cell:3:")
    assert shifted.value.line == 4 and str(shifted.value).startswith("cell:4:")
