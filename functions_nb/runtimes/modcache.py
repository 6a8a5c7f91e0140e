"""Precompiled code kept between processes (a local folder, then the store's ``modcache/``),
sealed so that nothing is deserialized unverified.

Deserializing precompiled code (wasmtime's ``Module.deserialize``) maps it into this process
as native code: a corrupted or substituted file runs as the kernel or the Jupyter server
itself (a module whose code section was overwritten killed the process with SIGILL). So each
entry is an envelope: :data:`MAGIC`, one JSON header line, then the serialized bytes. The
header records the cache key, the engine version and configuration the bytes were made with,
their size and SHA-256, which secret sealed them (``signer``, an id that reveals nothing of
the secret) and an HMAC-SHA256 of all that under the secret
(:func:`functions_nb.config.modcache_secret`). An entry is used only when the MAC verifies, the
header names this key, engine and configuration, and the bytes have the recorded size and
hash; anything else (a flipped byte, a truncated file, another module's bytes, a forged
header) is compiled again from the function's code, which the store hash-checks, with a
:class:`ModuleCacheWarning`, and the bad entry is replaced.

The signer is part of an entry's name, so processes with different secrets keep apart
entries and never read each other's (not even as errors).
"""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Generic, NamedTuple, TypeVar

from .base import ModuleCache

T = TypeVar("T")

MAGIC = b"functions-nb sealed module 1\n"
#: Longest header line read before giving up on an envelope.
_HEADER_MAX = 4096


class ModuleCacheWarning(RuntimeWarning):
    """A cached precompiled module failed verification; it was compiled again."""


class Unverified(Exception):
    """An envelope that may not be used; the message says why."""


class Seal(NamedTuple):
    """Seals and opens envelopes for one engine version and configuration."""

    secret: bytes
    engine: str
    config: str

    @property
    def signer(self) -> str:
        return hmac.new(self.secret, b"functions-nb modcache signer", "sha256").hexdigest()[:12]

    def _mac(self, header: dict[str, object]) -> str:
        text = json.dumps(header, sort_keys=True, separators=(",", ":")).encode()
        return hmac.new(self.secret, text, "sha256").hexdigest()

    def seal(self, key: str, data: bytes) -> bytes:
        """``data`` in an envelope recording its key, engine, configuration, size and hash."""
        header: dict[str, object] = {
            "key": key, "engine": self.engine, "config": self.config, "size": len(data),
            "sha256": hashlib.sha256(data).hexdigest(), "signer": self.signer}
        header["mac"] = self._mac(header)
        return MAGIC + json.dumps(header, sort_keys=True).encode() + b"\n" + data

    def open(self, key: str, envelope: bytes) -> bytes:
        """The bytes sealed in ``envelope`` for ``key``, or :class:`Unverified`."""
        if not envelope.startswith(MAGIC):
            raise Unverified("it has no seal (not written by this version of functions-nb)")
        end = envelope.find(b"\n", len(MAGIC), len(MAGIC) + _HEADER_MAX)
        try:
            header = json.loads(envelope[len(MAGIC):end]) if end > 0 else None
        except ValueError:
            header = None
        if not isinstance(header, dict):
            raise Unverified("its header is unreadable")
        mac = header.pop("mac", None)
        if not isinstance(mac, str) or not hmac.compare_digest(mac, self._mac(header)):
            raise Unverified("its seal does not verify with this machine's module-cache key")
        for field, want in (("key", key), ("engine", self.engine), ("config", self.config)):
            if header.get(field) != want:
                raise Unverified(f"it was made for {field} {header.get(field)!r}, not {want!r}")
        data = envelope[end + 1:]
        if len(data) != header.get("size"):
            raise Unverified(f"it holds {len(data)} bytes, {header.get('size')} were recorded")
        if hashlib.sha256(data).hexdigest() != header.get("sha256"):
            raise Unverified("its bytes do not match their recorded SHA-256")
        return data


class PrecompiledCache(Generic[T]):
    """Compiled code by key: the local folder (``folder()``, asked at each lookup) first, then
    a shared :class:`ModuleCache`, else ``build``. ``build(code)`` returns (object, serialized
    bytes); ``load(bytes)`` makes the object from verified bytes (or raises
    :class:`Unverified`)."""

    def __init__(self, folder: Callable[[], Path], seal: Seal, suffix: str, *,
                 build: Callable[[bytes], tuple[T, bytes]], load: Callable[[bytes], T]) -> None:
        self.folder = folder
        self.seal = seal
        self.suffix = suffix
        self.build = build
        self.load = load
        #: Entries refused (local or shared) since this cache was made.
        self.refused = 0

    def name(self, key: str) -> str:
        return f"{key}-{self.seal.signer}{self.suffix}"

    def get(self, key: str, code: bytes, shared: ModuleCache | None = None) -> T:
        """The object for ``key`` (``code`` is what ``build`` compiles on a miss)."""
        name = self.name(key)
        local = self.folder() / name
        try:
            envelope: bytes | None = local.read_bytes()
        except FileNotFoundError:
            envelope = None
        if envelope is not None:
            found = self._open(key, envelope, str(local))
            if found is not None:
                if shared is not None and not shared.exists(name):  # share what this machine has
                    shared.put(name, envelope)
                return found
            local.unlink(missing_ok=True)
        envelope = shared.get(name) if shared is not None else None
        repair = False
        if envelope is not None:
            found = self._open(key, envelope, f"the store's modcache/{name}")
            if found is not None:
                _write_local(local, envelope)
                return found
            repair = True
        obj, data = self.build(code)
        envelope = self.seal.seal(key, data)
        _write_local(local, envelope)
        if shared is not None and (repair or not shared.exists(name)):
            shared.put(name, envelope)
        return obj

    def _open(self, key: str, envelope: bytes, where: str) -> T | None:
        try:
            return self.load(self.seal.open(key, envelope))
        except Unverified as exc:
            self.refused += 1
            warnings.warn(f"precompiled module {where} refused: {exc}; compiling it again from "
                          "the function's verified code", ModuleCacheWarning, stacklevel=2)
            return None


def _write_local(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f"{path.name}.tmp-{os.urandom(16).hex()}")
    tmp.write_bytes(data)
    os.replace(tmp, path)


__all__ = ["MAGIC", "ModuleCacheWarning", "PrecompiledCache", "Seal", "Unverified"]
