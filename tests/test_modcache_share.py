"""A machine that holds a large precompiled module (SealedFile) shares it with a store that
lacks it in the background: the load returns at once, the store has a verified copy soon after,
and another machine then takes it from there instead of building."""

from __future__ import annotations

import threading
import time
from pathlib import Path

from functions_nb.loader import StoreModuleCache
from functions_nb.runtimes.modcache import PrecompiledCache, Seal, SealedFile
from functions_nb.storage import open_store

SEAL = Seal(b"k" * 32, "engine", "config")


class SlowStore(StoreModuleCache):
    """The store's module cache, its writes held until ``release`` is set (a slow upload)."""

    def __init__(self, store, release: threading.Event) -> None:
        super().__init__(store)
        self.release = release

    def put(self, key: str, data: bytes) -> None:
        assert self.release.wait(60)
        super().put(key, data)


def sealed_in(folder: Path, builds: list[Path]) -> SealedFile:
    def build(out: Path) -> None:
        builds.append(out)
        out.write_bytes(b"code" * 5000)

    cache = PrecompiledCache(lambda: folder, SEAL, ".bin", build=lambda c: (c, c), load=lambda d: d)
    return SealedFile(cache, build=build, load_file=lambda p: Path(p).read_bytes())


def test_a_local_module_is_shared_with_a_new_store_without_holding_up_the_load(tmp_path):
    builds: list[Path] = []
    machine = sealed_in(tmp_path / "machine1", builds)
    assert machine.get("k1") == b"code" * 5000 and len(builds) == 1  # made here, no store yet
    release = threading.Event()
    store = open_store(str(tmp_path / "store"))
    slow = SlowStore(store, release)
    name = machine.cache.name("k1")
    assert machine.get("k1", slow) == b"code" * 5000  # returns while the upload waits
    assert not slow.exists(name)
    release.set()
    deadline = time.monotonic() + 60
    while not slow.exists(name):
        assert time.monotonic() < deadline, "the module never reached the store"
        time.sleep(0.05)
    other = sealed_in(tmp_path / "machine2", builds)
    assert other.get("k1", StoreModuleCache(store)) == b"code" * 5000 and len(builds) == 1
