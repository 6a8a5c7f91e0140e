"""The shared-host runtime base: one host process per kernel, started lazily, restarted with
a new generation after it died, stopped at exit, forgotten in a forked child."""

from __future__ import annotations

import atexit
import os
import threading
import time
import weakref
from typing import Any

from ...errors import Aborted, InvocationError
from ..base import CallContext
from .channel import POLL
from .process import HostDied, HostProcess

_runtimes: weakref.WeakSet[SharedHostRuntime] = weakref.WeakSet()


class SharedHostRuntime:
    """Subclasses say how to start their host (:meth:`start_host`) and what their functions
    are; this class owns the host's life: ``host()`` returns the running one (starting it,
    once, when there is none), ``generation`` counts starts, ``restart()`` and ``shutdown()``
    stop it, and a forked child never shares its parent's host."""

    kind = ""
    #: Names the host in messages ("the V8 host").
    label = "the host"

    def __init__(self) -> None:
        self._host: HostProcess | None = None
        self._start_lock = threading.Lock()
        #: Host starts so far (the current host's generation; 0: none yet).
        self.generation = 0
        self.pid = os.getpid()
        _runtimes.add(self)
        atexit.register(_shutdown_ref(self))

    # to override ---------------------------------------------------------------------------
    def start_host(self, generation: int) -> HostProcess:
        """Start a new host process (called under the start lock)."""
        raise NotImplementedError

    def isolation(self) -> dict[str, Any]:
        """Which isolation layers hold, for ``func doctor``."""
        return {}

    def after_fork(self) -> None:
        """Reset the subclass's own per-process state in a forked child (locks, caches)."""

    # the host's life -----------------------------------------------------------------------
    @property
    def starts(self) -> int:
        return self.generation

    def current(self) -> HostProcess | None:
        """The running host, if there is one (starts nothing)."""
        host = self._host
        return host if host is not None and host.alive else None

    def host(self, ctx: CallContext | None = None, name: str = "") -> HostProcess:
        """The running host; starts one if there is none. Waiting for a start that another
        thread is making honours ``ctx``'s abort flag; the start itself does not count against
        the call's time limit (its deadline moves by the time spent)."""
        host = self._host
        if host is not None and host.alive:
            return host
        waited = time.monotonic()
        if ctx is not None:
            while not self._start_lock.acquire(timeout=POLL):
                if ctx.aborted:
                    raise Aborted(f"{name}: execution {ctx.id} aborted")
        else:
            self._start_lock.acquire()
        try:
            host = self._host
            if host is None or not host.alive:
                if host is not None:
                    host.stop(0.5)
                self._host = None
                try:
                    host = self._host = self.start_host(self.generation + 1)
                except HostDied as exc:
                    raise InvocationError(str(exc)) from None
                self.generation += 1
            return host
        finally:
            self._start_lock.release()
            if ctx is not None:
                ctx.deadline += time.monotonic() - waited

    def start_background(self) -> None:
        """Start the host in a background thread (no-op when it runs or is starting); the
        spawner keeps it alive after that thread ends."""
        if self.current() is not None or self._start_lock.locked():
            return

        def start() -> None:
            try:
                self.host()
            except Exception:  # noqa: BLE001, S110 - the call that needs the host reports it
                pass

        threading.Thread(target=start, name=f"functions-nb-{self.kind}-start", daemon=True).start()

    def restart(self) -> None:
        """Stop the host; the next call starts a fresh one (functions reload lazily)."""
        with self._start_lock:
            host, self._host = self._host, None
        if host is not None:
            host.stop()

    def shutdown(self) -> None:
        """Stop the host (at interpreter exit, or when asked)."""
        self.restart()

    close = shutdown

    def _after_fork_in_child(self) -> None:
        host, self._host = self._host, None
        self._start_lock = threading.Lock()
        self.pid = os.getpid()
        if host is not None:
            host.forget()
        self.after_fork()


def _shutdown_ref(rt: SharedHostRuntime) -> Any:
    ref = weakref.ref(rt)

    def shutdown() -> None:
        live = ref()
        if live is not None and live.pid == os.getpid():
            live.shutdown()
    return shutdown


def _reset_in_child() -> None:
    for rt in list(_runtimes):
        rt._after_fork_in_child()


os.register_at_fork(after_in_child=_reset_in_child)
