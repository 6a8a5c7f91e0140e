"""Resolves ``name`` / ``name@N`` to a loaded function: an LRU cache of loaded versions,
the precompiled-module cache shared through the store, and one circuit breaker per version."""

from __future__ import annotations

import threading
import time
import warnings
from collections import OrderedDict
from typing import Any

from .breaker import CircuitBreaker, TransitionLog
from .config import LATEST_TTL, LRU_SIZE, BreakerConfig
from .errors import StaleFunctionWarning, StorageError
from .executor import LoadedFunction
from .models import parse_target
from .runtimes import get_runtime
from .storage import FunctionStore

_FOREVER = float("inf")
#: After the store failed, ask it again for ``latest`` at most this often (seconds).
STALE_RETRY = 30.0


class StoreModuleCache:
    """Precompiled modules kept in the store (``modcache/``), shared by every process."""

    def __init__(self, store: FunctionStore) -> None:
        self.store = store

    def get(self, key: str) -> bytes | None:
        return self.store.get_cached(key)

    def exists(self, key: str) -> bool:
        return self.store.has_cached(key)

    def put(self, key: str, data: bytes) -> None:
        self.store.put_cached(key, data)


class Loader:
    """LRU cache of loaded function versions (hits and misses counted)."""

    def __init__(self, store: FunctionStore, *, size: int = LRU_SIZE,
                 breaker: BreakerConfig | None = None, latest_ttl: float = LATEST_TTL) -> None:
        self.store = store
        self.size = size
        self.breaker_config = breaker or BreakerConfig()
        self.latest_ttl = latest_ttl
        self.module_cache = StoreModuleCache(store)
        self._loaded: OrderedDict[tuple[str, int], LoadedFunction] = OrderedDict()
        self._targets: dict[str, tuple[LoadedFunction, float]] = {}
        self._breakers: dict[tuple[str, int], CircuitBreaker] = {}
        #: Where this loader's breakers write their transitions (readable by other processes).
        self.transitions = TransitionLog(store)
        self._lock = threading.RLock()
        self.hits = 0
        self.misses = 0
        self.evictions = 0
        self.stale_hits = 0

    def get(self, target: str) -> LoadedFunction:
        """The loaded function for ``target``; loads it on a miss."""
        try:
            entry = self._targets.get(target)
        except TypeError:  # unhashable, so not a target: parse_target says why
            entry = None
        if entry is not None and entry[1] > time.monotonic():
            self.hits += 1
            return entry[0]
        return self._resolve(target)

    def _resolve(self, target: str) -> LoadedFunction:
        name, version = parse_target(target)
        with self._lock:
            if version is None:
                try:
                    version = self.store.latest_version(name)
                except StorageError as exc:
                    fn = self._stale(name, target, exc)
                    if fn is None:
                        raise
                    return fn
                until = time.monotonic() + self.latest_ttl
            else:
                until = _FOREVER
            key = (name, version)
            fn = self._loaded.get(key)
            if fn is not None:
                self.hits += 1
                self._loaded.move_to_end(key)
            else:
                self.misses += 1
                fn = self._load(name, version)
                self._loaded[key] = fn
                while len(self._loaded) > self.size:
                    self._evict()
            self._targets[target] = (fn, until)
            return fn

    def _stale(self, name: str, target: str, exc: StorageError) -> LoadedFunction | None:
        """The store is unreachable: serve the newest version of ``name`` loaded here, and say so."""
        loaded = [fn for (n, _), fn in self._loaded.items() if n == name]
        if not loaded:
            return None
        fn = max(loaded, key=lambda f: f.version)
        warnings.warn(f"store unreachable ({exc}); using {fn.name}@{fn.version} from the loader "
                      "cache", StaleFunctionWarning, stacklevel=4)
        self.stale_hits += 1
        self._targets[target] = (fn, time.monotonic() + max(self.latest_ttl, STALE_RETRY))
        return fn

    def _load(self, name: str, version: int) -> LoadedFunction:
        info = self.store.get_info(name, version)
        code = self.store.get_code(info)
        runtime = get_runtime(info.runtime)
        loaded = runtime.load(code, info.signature, memory_mb=info.memory_mb, name=info.name,
                              cache=self.module_cache, language=info.language)
        breaker = self._breakers.get((name, version))
        if breaker is None:
            breaker = self._breakers[(name, version)] = CircuitBreaker(
                f"{name}@{version}", self.breaker_config, on_transition=self.transitions.record)
        return LoadedFunction(info, loaded, breaker)

    def _evict(self) -> None:
        key, fn = self._loaded.popitem(last=False)
        self.evictions += 1
        for target, (cached, _) in list(self._targets.items()):
            if cached is fn:
                del self._targets[target]
        fn.code.close()

    def invalidate(self, name: str) -> None:
        """Forget how ``name`` (latest) resolved, e.g. after a deploy or rollback."""
        with self._lock:
            self._targets.pop(name, None)

    def breaker(self, name: str, version: int) -> CircuitBreaker | None:
        return self._breakers.get((name, version))

    def breakers(self) -> list[dict[str, Any]]:
        return [b.snapshot() for b in self._breakers.values()]

    def snapshot(self) -> dict[str, Any]:
        return {"size": self.size, "loaded": len(self._loaded), "hits": self.hits,
                "misses": self.misses, "evictions": self.evictions,
                "stale_hits": self.stale_hits}

    def clear(self) -> None:
        with self._lock:
            for fn in self._loaded.values():
                fn.code.close()
            self._loaded.clear()
            self._targets.clear()
