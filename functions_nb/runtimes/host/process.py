"""One running host process: spawned (through the spawner) with its pipes, its log, its
channel; killed or stopped; and, when it ends, one sentence saying why."""

from __future__ import annotations

import fcntl
import json
import os
import signal
import subprocess
import tempfile
import time
from collections.abc import Callable, Sequence
from typing import Any

from ..base import CallContext
from . import spawner
from .channel import Channel, ChannelClosed
from .protocol import U32, Op, Reply, Status
from .watchdog import Watch

PIPE_SIZE = 1 << 20
_F_SETPIPE_SZ = getattr(fcntl, "F_SETPIPE_SZ", 1031)


class HostDied(Exception):
    """The host process ended (crashed, exited, or was killed) with a request outstanding."""


class Pipes:
    """The descriptors a host is started with (numbers as the host sees them)."""

    def __init__(self, request: int, reply: int, control: int | None) -> None:
        self.request, self.reply, self.control = request, reply, control


def kill_group(proc: subprocess.Popen[Any]) -> None:
    """SIGKILL ``proc`` and its process group (it was started as a session leader) -- only
    while it has not been reaped: a reaped process's pid (and group id) may already belong
    to another process (pid_max is 32768 on some machines)."""
    if proc.poll() is not None:
        return
    try:
        os.killpg(proc.pid, signal.SIGKILL)  # the zombie keeps the pid ours until reaped
    except OSError:
        pass
    try:
        proc.kill()
    except OSError:
        pass


def signal_name(number: int) -> str:
    try:
        return signal.Signals(number).name
    except ValueError:
        return f"signal {number}"


class HostProcess:
    """A host process speaking docs/host-protocol.md.

    ``command(pipes)`` builds the argv for the pipe descriptors it will inherit; ``env`` is
    its whole environment; ``label`` names it in messages ("the V8 host"). The constructor
    returns once the host said hello (``info``: its JSON) or raises :class:`HostDied`.
    """

    def __init__(self, command: Callable[[Pipes], list[str]], *, label: str,
                 env: dict[str, str], generation: int = 1, control_pipe: bool = False,
                 grace: float = 1.0, start_timeout: float = 60.0, extra_fds: Sequence[int] = (),
                 notable: Callable[[str], list[str]] | None = None) -> None:
        self.label = label
        self.generation = generation
        self.grace = grace
        self.alive = True
        self.reason = ""
        self._kill_reason = ""
        self._stopping = False
        self._notable = notable
        self.log = tempfile.TemporaryFile(mode="a+b")  # O_APPEND: the host's writes go to the end
        started = time.perf_counter()
        req_r, req_w = os.pipe()
        rep_r, rep_w = os.pipe()
        ctl_r, ctl_w = os.pipe() if control_pipe else (None, None)
        for fd in (req_w, rep_r):  # 1 MB pipes: fewer context switches for big values
            try:
                fcntl.fcntl(fd, _F_SETPIPE_SZ, PIPE_SIZE)
            except OSError:
                pass
        child = [fd for fd in (req_r, rep_w, ctl_r) if fd is not None]
        self.channel = Channel(rep_r, req_w, control_fd=ctl_w, on_eof=self._ended)
        try:
            self.proc = spawner.popen(command(Pipes(req_r, rep_w, ctl_r)), stdin=subprocess.DEVNULL,
                                      stdout=self.log, stderr=self.log,
                                      pass_fds=(*child, *extra_fds), env=env,
                                      start_new_session=True, cwd="/")
        except OSError as exc:
            self.channel.forget("not started")
            raise HostDied(f"{label} could not be started: {exc}") from None
        finally:
            for fd in child:
                os.close(fd)
        self.pid = self.proc.pid
        hello = self.channel.hello(Watch(None, lambda _r: None, self.kill, grace, start_timeout,
                                         f"{label} start"))
        if hello.status != Status.READY:
            self.kill("it did not start")
            raise HostDied(hello.body.decode(errors="replace") if hello.status == Status.DIED
                           else f"{label} did not start: {hello.body[:500]!r}")
        self.info: dict[str, Any] = json.loads(hello.body or b"{}")
        #: spawn -> ready, in ms (what a cold start costs before the first call).
        self.start_ms = (time.perf_counter() - started) * 1000

    # requests ---------------------------------------------------------------------------
    def request(self, code: int, body: bytes | memoryview, *more: bytes | memoryview,
                ctx: CallContext | None = None, what: str = "a call",
                setup_timeout: float = 60.0) -> Reply:
        """Send a request and wait for its reply under ``ctx``'s deadline and abort flag
        (cancel, then kill after the grace period); without ``ctx``, ``setup_timeout`` bounds
        the wait. A host that dies meanwhile answers with status DIED."""
        return self.channel.request(code, body, *more, watch=self.watch_for(ctx, what, setup_timeout))

    def watch_for(self, ctx: CallContext | None, what: str = "a call",
                  setup_timeout: float = 60.0) -> Callable[[int], Watch]:
        """The watch of one request (by id): CANCEL it at the deadline or on abort, kill the
        host ``grace`` seconds later; for :meth:`Channel.request` with an id chosen first."""
        channel = self.channel

        def watch(rid: int) -> Watch:
            return Watch(ctx, lambda reason: channel.cancel(rid, reason), self.kill, self.grace,
                         setup_timeout, what)
        return watch

    def unload(self, function_id: int) -> None:
        self.channel.notify(Op.UNLOAD, U32.pack(function_id))

    # ending -----------------------------------------------------------------------------
    def ended(self) -> bool:
        """Whether the host is gone, noticed even with no request outstanding (a host killed
        while idle is marked dead here instead of failing the next request)."""
        if self.alive and self.proc.poll() is not None:
            self.channel._eof()
        return not self.alive

    def kill(self, why: str = "") -> None:
        """SIGKILL the host and its sandbox (its whole session); outstanding requests are
        answered DIED with ``why``."""
        if why and not self._kill_reason:
            self._kill_reason = why
        kill_group(self.proc)
        self.channel._eof()

    def _ended(self) -> str:
        """Called once when the reply pipe ends: reap the host and say why it ended."""
        self.alive = False
        try:
            code = self.proc.wait(timeout=2)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            code = self.proc.wait()
        if self._stopping and not self._kill_reason:
            why = "was shut down"
        elif self._kill_reason:
            why = f"was killed because {self._kill_reason}"
        elif code < 0 or code > 128:  # bwrap reports a signal as 128 + n
            why = f"was killed by {signal_name(-code if code < 0 else code - 128)}"
        else:
            why = f"exited with code {code}"
        tail = self.last_words()
        self.reason = f"{self.label} {why}" + (f" ({tail})" if tail else "")
        self.channel.close_write()
        return self.reason

    def last_words(self, limit: int = 500) -> str:
        """The notable lines of the host's log (or its last lines), one line."""
        text = self.log_tail()
        lines = [ln.strip() for ln in text.splitlines() if ln.strip()]
        keep = self._notable(lines) if self._notable else []
        return " | ".join(keep or lines[-3:])[-limit:]

    def log_tail(self, limit: int = 1 << 16) -> str:
        try:
            self.log.flush()
            size = self.log.seek(0, os.SEEK_END)
            self.log.seek(max(0, size - limit))
            return self.log.read().decode(errors="replace")
        except (OSError, ValueError):
            return ""

    def stop(self, timeout: float = 2.0) -> None:
        """Close the request pipe (the host exits on EOF); kill it if it lingers."""
        if not self.alive:
            return
        self._stopping = True
        self.channel.close_write()
        try:
            self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self._kill_reason = "it did not exit when shut down"
        self.kill()  # signals nothing when it exited: its pid may belong to another process now
        self.log.close()

    def forget(self) -> None:
        """In a forked child: this is the parent's host. Close our copies of its pipes
        without a word to it, and never use it again."""
        self.alive = False
        self.channel.forget(f"{self.label} belongs to the parent process")


__all__ = ["HostProcess", "HostDied", "Pipes", "ChannelClosed", "kill_group", "signal_name"]
