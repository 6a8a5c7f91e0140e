"""One long-lived thread that starts every host process.

bubblewrap's ``--die-with-parent`` (``PR_SET_PDEATHSIG``) fires when the *thread* that forked
the sandbox exits, so a host started from a short-lived thread (a background start, an executor
worker, the parallel cascade's code tier) would be killed with it. Every host is therefore
started from this one thread, which lives as long as the process (and is recreated in a forked
child, where threads do not survive).
"""

from __future__ import annotations

import os
import queue
import subprocess
import threading
from collections.abc import Callable
from typing import Any


class Spawner:
    """Runs ``subprocess.Popen`` on one daemon thread and hands the result back."""

    def __init__(self) -> None:
        self._jobs: queue.SimpleQueue[tuple[Callable[[], Any], list[Any], threading.Event]] = \
            queue.SimpleQueue()
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()

    def popen(self, cmd: list[str], **kwargs: Any) -> subprocess.Popen[bytes]:
        """``subprocess.Popen(cmd, **kwargs)``, started from the spawner thread."""
        return self.run(lambda: subprocess.Popen(cmd, **kwargs))

    def run(self, job: Callable[[], Any]) -> Any:
        with self._lock:
            if self._thread is None or not self._thread.is_alive():
                self._thread = threading.Thread(target=self._serve, name="functions-nb-spawner",
                                                daemon=True)
                self._thread.start()
        box: list[Any] = [None, None]
        done = threading.Event()
        self._jobs.put((job, box, done))
        done.wait()
        if box[1] is not None:
            raise box[1]
        return box[0]

    def _serve(self) -> None:
        while True:
            job, box, done = self._jobs.get()
            try:
                box[0] = job()
            except BaseException as exc:  # noqa: BLE001 - handed to the caller
                box[1] = exc
            done.set()


spawner = Spawner()


def popen(cmd: list[str], **kwargs: Any) -> subprocess.Popen[bytes]:
    """Start ``cmd`` from the process's spawner thread (the current one after a fork)."""
    return spawner.popen(cmd, **kwargs)


def _new_spawner_in_child() -> None:
    global spawner
    spawner = Spawner()


os.register_at_fork(after_in_child=_new_spawner_in_child)
