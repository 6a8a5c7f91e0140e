"""One lazily created instance per process (runtimes, host processes, compiler servers)."""

from __future__ import annotations

import atexit
import threading
from collections.abc import Callable
from typing import Generic, TypeVar

T = TypeVar("T")


class ProcessWide(Generic[T]):
    """Call it to get the process's instance, created by ``factory`` on first use under a
    lock; ``on_exit`` names a method to run at interpreter exit (stop a host process)."""

    def __init__(self, factory: Callable[[], T], *, on_exit: str | None = None) -> None:
        self._factory = factory
        self._on_exit = on_exit
        self._instance: T | None = None
        self._lock = threading.Lock()

    def __call__(self) -> T:
        instance = self._instance
        if instance is None:
            with self._lock:
                if self._instance is None:
                    created = self._factory()
                    if self._on_exit:
                        atexit.register(getattr(created, self._on_exit))
                    self._instance = created
                instance = self._instance
        return instance

    def peek(self) -> T | None:
        """The instance if it was created, else None (creates nothing)."""
        return self._instance
