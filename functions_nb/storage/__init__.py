"""Storage of deployed functions over fsspec: one store, or a primary + fallback pair."""

from __future__ import annotations

from typing import Any

from .hybrid import HybridStore, cleanup, migrate
from .store import FunctionStore


def open_store(url: str, *, fallback: str | None = None, prefer_primary: bool = True,
               write_primary: bool = True, auto_migrate: bool = False,
               storage_options: dict[str, Any] | None = None,
               fallback_options: dict[str, Any] | None = None) -> FunctionStore | HybridStore:
    """A store for ``url``, or a :class:`HybridStore` when ``fallback`` is given."""
    primary = FunctionStore(url, storage_options)
    if fallback is None:
        return primary
    return HybridStore(primary, FunctionStore(fallback, fallback_options),
                       prefer_primary=prefer_primary, write_primary=write_primary,
                       auto_migrate=auto_migrate)


__all__ = ["FunctionStore", "HybridStore", "open_store", "migrate", "cleanup"]
