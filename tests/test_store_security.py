"""Precompiled modules are verified before they are deserialized (issue 14, point 4).

A cached module is native code once deserialized: overwriting its code section made the next
invoke die with SIGILL (the whole kernel or server). Each attack below is made on the store's
``modcache/`` entry (or the local cache's), then a fresh process invokes the function: it must
survive, answer right, warn, and the store's entry must be repaired. The invoke runs in a
subprocess, so the old behaviour (a dead process) fails the test instead of killing pytest.
"""

from __future__ import annotations

import hashlib
import json
import os
import struct
import subprocess
import sys
from pathlib import Path

import pytest
import wasmtime

from functions_nb import Functions
from functions_nb.config import modcache_secret
from functions_nb.models import Artifact, Param, Signature
from functions_nb.runtimes.modcache import MAGIC, Seal, Unverified

#: Two functions assembled from WAT (the test needs no compiler toolchain).
WAT = {name: f'(module (func (export "{name}") (param i32 i32) (result i32) '
             f"local.get 0 local.get 1 i32.{op}))"
       for name, op in (("add", "add"), ("mul", "mul"))}


def deploy_wat(fx: Functions, name: str) -> None:
    code = wasmtime.wat2wasm(WAT[name])
    sig = Signature(name, (Param("a", "i32", "i32"), Param("b", "i32", "i32")), "i32", "i32")
    fx.store.put_version(name, Artifact("", "wasm", WAT[name], code, sig, {}, {}, 0.0),
                         content_hash=hashlib.sha256(code).hexdigest()[:32], timeout=30,
                         memory_mb=64)

PROBE = """
import json, sys, warnings
from functions_nb import Functions
from functions_nb.runtimes.wasm import runtime
with warnings.catch_warnings(record=True) as caught:
    warnings.simplefilter("always")
    fx = Functions(store=sys.argv[1], history=False)
    value = fx.invoke(sys.argv[2], 6, 7)
print(json.dumps({"value": value, "compiles": runtime().compiles,
                  "warnings": [f"{w.category.__name__}: {w.message}" for w in caught]}))
"""


def probe(store: str, cache: Path, target: str = "add") -> dict:
    """Invoke ``target`` (6, 7) in a fresh process with local cache ``cache``."""
    env = {**os.environ, "FUNCTIONS_NB_CACHE": str(cache),
           "FUNCTIONS_NB_MODCACHE_KEY": "test-store-security"}
    proc = subprocess.run([sys.executable, "-c", PROBE, store, target], env=env,
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, (f"the invoking process died (exit {proc.returncode}):\n"
                                  f"{proc.stderr[-2000:]}")
    return json.loads(proc.stdout.splitlines()[-1])


def text_section(data: bytes) -> tuple[int, int]:
    """(offset, size) of the ELF ``.text`` section (the machine code) inside ``data``."""
    elf = data.index(b"\x7fELF")
    shoff, = struct.unpack_from("<Q", data, elf + 0x28)
    shentsize, shnum, shstrndx = struct.unpack_from("<HHH", data, elf + 0x3A)
    headers = [struct.unpack_from("<IIQQQQIIQQ", data, elf + shoff + i * shentsize)
               for i in range(shnum)]
    names = headers[shstrndx][4]
    for h in headers:
        start = elf + names + h[0]
        if data[start:data.index(b"\0", start)] == b".text":
            return elf + h[4], h[5]
    raise AssertionError("no .text section")


def overwrite_code(data: bytes) -> bytes:
    """Every instruction of the code section replaced by ``ud2`` (SIGILL when run)."""
    off, size = text_section(data)
    return data[:off] + b"\x0f\x0b" * (size // 2) + b"\x90" * (size % 2) + data[off + size:]


def flip_code_bytes(data: bytes) -> bytes:
    off, size = text_section(data)
    out = bytearray(data)
    for i in range(off, off + size, 97):
        out[i] ^= 0xFF
    return bytes(out)


def truncate(data: bytes) -> bytes:
    return data[: len(data) // 2]


def forge_header(data: bytes) -> bytes:
    """Code overwritten, and the recorded size and hash rewritten to match (no secret: the
    seal's MAC cannot be made)."""
    bad = overwrite_code(data)
    if not bad.startswith(MAGIC):
        return bad
    end = bad.index(b"\n", len(MAGIC))
    header = json.loads(bad[len(MAGIC):end])
    body = bad[end + 1:]
    header.update(size=len(body), sha256=hashlib.sha256(body).hexdigest())
    return MAGIC + json.dumps(header, sort_keys=True).encode() + b"\n" + body


@pytest.fixture(scope="module")
def shared(tmp_path_factory):
    """A store holding ``add`` and ``mul`` and their precompiled modules."""
    root = tmp_path_factory.mktemp("modcache")
    store = str(root / "store")
    fx = Functions(store=store, history=False)
    deploy_wat(fx, "add")
    deploy_wat(fx, "mul")
    fx.close()
    assert probe(store, root / "cache-seed")["value"] == 13
    assert probe(store, root / "cache-seed", "mul")["value"] == 42
    return store, root


def entries(folder: Path, store: str) -> dict[str, Path]:
    """Module-cache files in ``folder`` by the function whose module they hold (add / mul)."""
    info = Functions(store=store, history=False).store.get_info
    hashes = {name: info(name).code_sha256 for name in ("add", "mul")}
    found = {name: [p for p in folder.iterdir() if p.name.startswith(digest)]
             for name, digest in hashes.items()}
    assert all(len(paths) == 1 for paths in found.values()), found
    return {name: paths[0] for name, paths in found.items()}


ATTACKS = {
    "code section overwritten": lambda data, other: overwrite_code(data),
    "code bytes flipped": lambda data, other: flip_code_bytes(data),
    "truncated": lambda data, other: truncate(data),
    "another module's bytes": lambda data, other: other,
    "hash rewritten to match": lambda data, other: forge_header(data),
}


@pytest.mark.parametrize("attack", list(ATTACKS))
def test_corrupted_shared_module_is_recompiled(shared, attack, tmp_path):
    store, _root = shared
    modcache = Path(store) / "modcache"
    files = entries(modcache, store)
    good = files["add"].read_bytes()
    files["add"].write_bytes(ATTACKS[attack](good, files["mul"].read_bytes()))
    try:
        out = probe(store, tmp_path / "fresh-cache")  # a fresh machine: nothing local
        assert out["value"] == 13
        assert out["compiles"] == 1
        assert any("ModuleCacheWarning" in w and "refused" in w for w in out["warnings"]), out
        # the store's entry was repaired: the next fresh process deserializes it, silently
        again = probe(store, tmp_path / "another-cache")
        assert again == {"value": 13, "compiles": 0, "warnings": []}
    finally:
        files["add"].write_bytes(good)


@pytest.mark.parametrize("attack", ["code section overwritten", "another module's bytes"])
def test_corrupted_local_module_is_recompiled(shared, attack, tmp_path):
    store, _root = shared
    cache = tmp_path / "cache"
    assert probe(store, cache)["compiles"] == 0
    assert probe(store, cache, "mul")["compiles"] == 0  # copied from the store into the local cache
    files = entries(cache / "modcache", store)
    files["add"].write_bytes(ATTACKS[attack](files["add"].read_bytes(),
                                              files["mul"].read_bytes()))
    out = probe(store, cache)
    assert out["value"] == 13
    assert out["compiles"] == 0  # the store's verified copy replaced the local one
    assert any("ModuleCacheWarning" in w and str(cache) in w for w in out["warnings"]), out
    assert probe(store, cache) == {"value": 13, "compiles": 0, "warnings": []}


def test_seal_refuses_what_it_did_not_seal():
    seal = Seal(b"k1", "wasmtime-py 51.0.0", "cfg")
    data = b"\x7fELF" + bytes(range(256)) * 4
    envelope = seal.seal("key-a", data)
    assert seal.open("key-a", envelope) == data
    refusals = {
        "another key": (seal, "key-b", envelope),
        "another secret": (Seal(b"k2", seal.engine, seal.config), "key-a", envelope),
        "another engine": (Seal(b"k1", "wasmtime-py 52.0.0", "cfg"), "key-a", envelope),
        "another config": (Seal(b"k1", seal.engine, "other"), "key-a", envelope),
        "no seal": (seal, "key-a", data),
        "one byte changed": (seal, "key-a", envelope[:-1] + b"\0"),
        "one byte more": (seal, "key-a", envelope + b"\0"),
        "header cut": (seal, "key-a", envelope[:len(MAGIC) + 10]),
    }
    for why, (sealer, key, blob) in refusals.items():
        with pytest.raises(Unverified):
            sealer.open(key, blob)
            pytest.fail(why)


def test_modcache_key_is_made_once_and_private(tmp_path, monkeypatch):
    monkeypatch.delenv("FUNCTIONS_NB_MODCACHE_KEY", raising=False)
    monkeypatch.setenv("HOME", str(tmp_path))
    first = modcache_secret()
    path = tmp_path / ".functions-nb" / "modcache.key"
    assert path.read_bytes().strip() == first and len(first) >= 32
    assert path.stat().st_mode & 0o077 == 0
    assert modcache_secret() == first
    monkeypatch.setenv("FUNCTIONS_NB_MODCACHE_KEY", "shared by my cluster")
    assert modcache_secret() == b"shared by my cluster"
