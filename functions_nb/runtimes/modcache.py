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

import contextlib
import hashlib
import hmac
import json
import os
import threading
import warnings
from collections.abc import Callable, Iterator
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
        return self.head(key, len(data), hashlib.sha256(data).hexdigest()) + data

    def head(self, key: str, size: int, sha256: str) -> bytes:
        """The envelope's start (magic and sealed header line) for bytes of ``size`` and hash."""
        header: dict[str, object] = {
            "key": key, "engine": self.engine, "config": self.config, "size": size,
            "sha256": sha256, "signer": self.signer}
        header["mac"] = self._mac(header)
        return MAGIC + json.dumps(header, sort_keys=True).encode() + b"\n"

    def open_head(self, key: str, envelope: bytes) -> tuple[dict[str, object], int]:
        """The verified header of ``envelope`` for ``key`` and where its bytes start, or
        :class:`Unverified` (the bytes themselves are not checked here)."""
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
        return header, end + 1

    def identity_mac(self, name: str, identity: list[int], sha256: str) -> str:
        """The MAC sealing that the file ``name`` with ``identity`` held bytes of ``sha256``."""
        text = json.dumps([name, identity, sha256]).encode()
        return hmac.new(self.secret, b"functions-nb identity " + text, "sha256").hexdigest()

    def open(self, key: str, envelope: bytes) -> bytes:
        """The bytes sealed in ``envelope`` for ``key``, or :class:`Unverified`."""
        header, start = self.open_head(key, envelope)
        data = envelope[start:]
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


#: (shared cache, entry name) pairs a thread of this process is sharing now.
_SHARING: set[tuple[int, str]] = set()
_SHARING_LOCK = threading.Lock()


def _share_in_background(shared: ModuleCache, name: str, sealed: Path, path: Path) -> None:
    """Put the local entry ``path`` (sealed by ``sealed``) into ``shared`` unless it holds it,
    in a daemon thread: hundreds of MB going to a remote store must not delay a first call. A
    process that exits first leaves nothing half-written (the store writes atomically); the
    next process shares it then."""
    key = (id(shared), name)
    with _SHARING_LOCK:
        if key in _SHARING:
            return
        _SHARING.add(key)

    def share() -> None:
        try:
            if not shared.exists(name):
                head, _ = _read_seal(sealed)
                shared.put(name, _envelope(head, path))  # type: ignore[arg-type]
        except Exception as exc:  # noqa: BLE001 - sharing is best effort; the load succeeded
            warnings.warn(f"could not share precompiled module {name} with the store: {exc}",
                          ModuleCacheWarning, stacklevel=1)
        finally:
            with _SHARING_LOCK:
                _SHARING.discard(key)

    threading.Thread(target=share, name="functions-nb-share-module", daemon=True).start()


class SealedFile(Generic[T]):
    """Precompiled code too large to read and hash at every start (hundreds of MB): the
    serialized bytes in a file of their own, which ``load_file(path)`` maps (e.g. wasmtime's
    ``Module.deserialize_file``), beside ``<file>.seal``: the envelope's sealed header line,
    then a line sealing the file's identity (device, inode, size, modification and change
    times) once its bytes were hashed and found to match. A process finding the same identity
    loads without hashing; any write to or replacement of the file changes its change time, so
    its bytes are hashed again before use (and refused, and rebuilt, when they do not match).
    The shared cache holds the ordinary envelope. ``build(path)`` writes the serialized bytes
    to ``path`` (e.g. a compiler in a child process)."""

    def __init__(self, cache: PrecompiledCache[T], *, build: Callable[[Path], None],
                 load_file: Callable[[Path], T]) -> None:
        self.cache = cache
        self.build = build
        self.load_file = load_file

    def get(self, key: str, shared: ModuleCache | None = None) -> T:
        cache, seal = self.cache, self.cache.seal
        name = cache.name(key)
        path = cache.folder() / name
        sealed = path.with_name(name + ".seal")
        try:
            found = self._local(key, path, sealed)
        except Unverified as exc:
            cache.refused += 1
            warnings.warn(f"precompiled module {path} refused: {exc}; making it again",
                          ModuleCacheWarning, stacklevel=2)
            path.unlink(missing_ok=True)
            sealed.unlink(missing_ok=True)
            found = None
        if found is not None:
            if shared is not None:  # share what this machine has, without holding up the load
                _share_in_background(shared, name, sealed, path)
            return found
        envelope = shared.get(name) if shared is not None else None
        if envelope is not None:
            try:
                header, start = seal.open_head(key, envelope)
                body = memoryview(envelope)[start:]
                if body.nbytes != header.get("size") or \
                        hashlib.sha256(body).hexdigest() != header.get("sha256"):
                    raise Unverified("its bytes do not match their recorded size and SHA-256")
            except Unverified as exc:
                cache.refused += 1
                warnings.warn(f"precompiled module the store's modcache/{name} refused: {exc}; "
                              "making it again", ModuleCacheWarning, stacklevel=2)
            else:
                _write_local(path, body)  # type: ignore[arg-type]
                head = bytes(envelope[:start])
                del body, envelope
                return self._sealed(path, sealed, head, name)
        path.parent.mkdir(parents=True, exist_ok=True)
        with _exclusive(path.with_name(name + ".lock")):  # one build per machine at a time
            try:
                found = self._local(key, path, sealed)  # made by another process meanwhile?
            except Unverified:
                found = None
            if found is not None:
                return found
            tmp = path.with_name(f"{name}.tmp-{os.urandom(16).hex()}")
            try:
                self.build(tmp)
                size, digest = _file_digest(tmp)
                os.replace(tmp, path)
            finally:
                tmp.unlink(missing_ok=True)
            head = seal.head(key, size, digest)
            obj = self._sealed(path, sealed, head, name)
        if shared is not None:
            shared.put(name, _envelope(head, path))  # type: ignore[arg-type]
        return obj

    def _local(self, key: str, path: Path, sealed: Path) -> T | None:
        """The local entry, loaded when its seal verifies; None when there is none."""
        try:
            head, identity_line = _read_seal(sealed)
        except FileNotFoundError:
            return None
        header, _ = self.cache.seal.open_head(key, head)
        try:
            fd = os.open(path, os.O_RDONLY)
        except FileNotFoundError:
            return None
        try:
            st = os.fstat(fd)
            identity = _identity(st)
            seal = self.cache.seal
            name = path.name
            sha = str(header.get("sha256"))
            if not (isinstance(identity_line, dict) and identity_line.get("identity") == identity
                    and hmac.compare_digest(str(identity_line.get("mac")),
                                            seal.identity_mac(name, identity, sha))):
                size, digest = _file_digest(path, fd)
                if size != header.get("size") or digest != sha:
                    raise Unverified("its bytes do not match their recorded size and SHA-256")
                _write_seal(sealed, head, name, identity, seal)
            # the descriptor we checked, not the name, which may have been replaced since
            proc = Path(f"/proc/self/fd/{fd}")
            return self.load_file(proc if proc.exists() else path)
        finally:
            os.close(fd)

    def _sealed(self, path: Path, sealed: Path, head: bytes, name: str) -> T:
        """Seal the identity of ``path`` (just written and hashed) and load it."""
        fd = os.open(path, os.O_RDONLY)
        try:
            _write_seal(sealed, head, name, _identity(os.fstat(fd)), self.cache.seal)
            proc = Path(f"/proc/self/fd/{fd}")
            return self.load_file(proc if proc.exists() else path)
        finally:
            os.close(fd)


@contextlib.contextmanager
def _exclusive(lock: Path) -> Iterator[None]:
    """Hold an exclusive lock on the file ``lock`` (another process building the same module
    waits, then finds it made); no lock where ``fcntl`` is missing."""
    try:
        import fcntl
    except ImportError:  # not POSIX: builds may overlap, each result is whole
        yield
        return
    with open(lock, "a+b") as f:
        fcntl.flock(f.fileno(), fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(f.fileno(), fcntl.LOCK_UN)


def _envelope(head: bytes, path: Path) -> bytearray:
    """``head`` and the file's bytes in one buffer (hundreds of MB are copied once)."""
    size = path.stat().st_size
    out = bytearray(len(head) + size)
    out[:len(head)] = head
    view = memoryview(out)[len(head):]
    with open(path, "rb", buffering=0) as f:
        done = 0
        while done < size:
            n = f.readinto(view[done:])
            if not n:
                raise Unverified(f"{path} was cut short while it was read")
            done += n
    return out


def _identity(st: os.stat_result) -> list[int]:
    return [st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns]


def _file_digest(path: Path, fd: int | None = None) -> tuple[int, str]:
    h = hashlib.sha256()
    size = 0
    with open(path if fd is None else os.dup(fd), "rb", buffering=0) as f:
        f.seek(0)
        while chunk := f.read(1 << 22):
            h.update(chunk)
            size += len(chunk)
    return size, h.hexdigest()


def _read_seal(sealed: Path) -> tuple[bytes, object]:
    """(the envelope's head, the identity line's object or None) of a ``.seal`` file."""
    text = sealed.read_bytes()[:2 * _HEADER_MAX]
    end = text.find(b"\n", len(MAGIC))
    head, rest = text[:end + 1], text[end + 1:]
    try:
        identity = json.loads(rest) if rest.strip() else None
    except ValueError:
        identity = None
    return head, identity


def _write_seal(sealed: Path, head: bytes, name: str, identity: list[int], seal: Seal) -> None:
    sha = json.loads(head[len(MAGIC):])["sha256"]
    line = {"identity": identity, "mac": seal.identity_mac(name, identity, sha)}
    _write_local(sealed, head + json.dumps(line).encode() + b"\n")


def _write_local(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f"{path.name}.tmp-{os.urandom(16).hex()}")
    tmp.write_bytes(data)
    os.replace(tmp, path)


__all__ = ["MAGIC", "ModuleCacheWarning", "PrecompiledCache", "Seal", "SealedFile",
           "Unverified"]
