"""One framed pipe channel to a host: correlated replies, many calls in flight.

Any waiting caller may read the reply pipe (leader/follower): the reader delivers other
callers' replies and wakes them, so a lone caller reads its own reply with no thread hop.
Between reads each waiter runs its :class:`~.watchdog.Watch` (deadline, abort, kill).
"""

from __future__ import annotations

import errno
import io
import itertools
import os
import select
import threading
from collections.abc import Callable

from .protocol import HEADER, HELLO_ID, CancelReason, Reply, Status, cancel_frame, frame
from .watchdog import Watch

#: The longest a waiter sleeps between looks at its abort flag.
POLL = 0.01
#: Pipe read size (reused buffer, below malloc's mmap threshold).
READ_CHUNK = 1 << 16


class ChannelClosed(Exception):
    """The host is gone (its pipe closed); ``str()`` says why."""


class _Waiter:
    __slots__ = ("reply",)

    def __init__(self) -> None:
        self.reply: Reply | None = None


class Channel:
    """Frames to a host over ``wfd`` (and ``control_fd`` for CANCEL), replies from ``rfd``.

    ``on_eof`` is called once when the reply pipe ends (the host exited or was killed); it
    returns the reason every outstanding request is then answered with (status DIED).
    """

    def __init__(self, rfd: int, wfd: int, *, control_fd: int | None = None,
                 on_eof: Callable[[], str]) -> None:
        self.rfd, self.wfd, self.control_fd = rfd, wfd, control_fd
        # The descriptors close when this object is garbage (or at close_write / forget), never
        # while another thread may still select on them (a closed number could be reused).
        self._files = [io.FileIO(fd, "rb" if fd == rfd else "wb")
                       for fd in (rfd, wfd, control_fd) if fd is not None]
        self._on_eof = on_eof
        self.open = True
        self.reason = ""
        self._ids = itertools.count(1)
        self._waiters: dict[int, _Waiter] = {HELLO_ID: _Waiter()}
        self._wlock = threading.Lock()
        self._rlock = threading.Lock()
        self._cond = threading.Condition(threading.Lock())
        self._followers = 0
        self._buf = bytearray()
        self._chunk = memoryview(bytearray(READ_CHUNK))

    def new_id(self) -> int:
        """A fresh request id (never 0, the hello's)."""
        rid = next(self._ids) & 0xFFFFFFFF
        return rid or next(self._ids) & 0xFFFFFFFF

    # sending -----------------------------------------------------------------------------
    def send(self, data: bytes | memoryview, *more: bytes | memoryview, control: bool = False) -> None:
        """Write one whole frame (given in parts: big buffers are not copied)."""
        fd = self.control_fd if control and self.control_fd is not None else self.wfd
        views = [memoryview(p).cast("B") for p in (data, *more) if len(p)]
        with self._wlock:
            if not self.open:
                raise ChannelClosed(self.reason or "the host is not running")
            try:
                while views:
                    n = os.writev(fd, views)
                    while views and n >= len(views[0]):
                        n -= len(views.pop(0))
                    if n:
                        views[0] = views[0][n:]
            except OSError as exc:
                if exc.errno not in (errno.EPIPE, errno.EBADF):
                    raise
        if views:  # the host closed its end: it is gone
            self._eof()
            raise ChannelClosed(self.reason)

    def cancel(self, target_id: int, reason: CancelReason) -> None:
        """Ask the host to stop request ``target_id`` (no reply of its own)."""
        try:
            self.send(cancel_frame(target_id, reason), control=True)
        except ChannelClosed:
            pass

    # receiving ---------------------------------------------------------------------------
    def hello(self, watch: Watch) -> Reply:
        """Wait for the host's hello (status READY)."""
        return self._wait(HELLO_ID, self._waiters[HELLO_ID], watch)

    def request(self, code: int, body: bytes | memoryview, *more: bytes | memoryview,
                watch: Callable[[int], Watch] | None = None, request_id: int = 0) -> Reply:
        """Send one request and wait for its reply. ``watch(request id)`` builds the limits
        of the wait; without it the request waits as long as the host lives."""
        rid = request_id or self.new_id()
        waiter = _Waiter()
        self._waiters[rid] = waiter
        size = sum(memoryview(p).nbytes for p in (body, *more))  # numpy arrays: bytes, not items
        header = HEADER.pack(size, rid, code)
        try:
            self.send(header, body, *more)
        except ChannelClosed:
            self._waiters.pop(rid, None)
            return Reply(Status.DIED, self.reason.encode())
        return self._wait(rid, waiter, watch(rid) if watch is not None else None)

    def notify(self, code: int, body: bytes = b"") -> None:
        """Send a request that has no reply (UNLOAD)."""
        try:
            self.send(frame(0, code, body))
        except ChannelClosed:
            pass

    def _wait(self, rid: int, waiter: _Waiter, watch: Watch | None) -> Reply:
        try:
            while waiter.reply is None:
                wait = POLL if watch is None else min(POLL, max(0.0, watch.check()))
                if waiter.reply is not None:
                    break
                if self._rlock.acquire(blocking=False):
                    try:
                        if waiter.reply is None:
                            self._read(wait)
                    finally:
                        self._rlock.release()
                        if self._followers:
                            with self._cond:
                                self._cond.notify_all()
                else:
                    with self._cond:
                        self._followers += 1
                        if waiter.reply is None:
                            self._cond.wait(wait)
                        self._followers -= 1
            return waiter.reply
        finally:
            self._waiters.pop(rid, None)

    def _read(self, wait: float) -> None:
        """Read what arrives within ``wait`` seconds and deliver the complete frames."""
        if not self.open:
            return
        if not self._frames_ready() and not select.select([self.rfd], [], [], wait)[0]:
            return
        if not self._frames_ready():
            try:
                got = os.readv(self.rfd, [self._chunk])
            except OSError:
                got = 0
            if not got:
                self._eof()
                return
            self._buf += self._chunk[:got]
        self._deliver()

    def _frames_ready(self) -> bool:
        buf = self._buf
        return len(buf) >= HEADER.size and len(buf) >= HEADER.size + HEADER.unpack_from(buf)[0]

    def _deliver(self) -> None:
        buf, size, off, woke = self._buf, HEADER.size, 0, False
        while len(buf) - off >= size:
            n, rid, status = HEADER.unpack_from(buf, off)
            end = off + size + n
            if end > len(buf):
                if n >= READ_CHUNK and off == 0:  # a big reply: read the rest straight into place
                    body = self._read_big(n)
                    if body is None:
                        return
                    woke |= self._put(rid, Reply(status, body))
                    off = len(buf)
                break
            woke |= self._put(rid, Reply(status, bytes(buf[off + size:end])))
            off = end
        del buf[:off]
        if woke and self._followers:
            with self._cond:
                self._cond.notify_all()

    def _read_big(self, n: int) -> bytes | None:
        big = bytearray(n)
        have = len(self._buf) - HEADER.size
        big[:have] = self._buf[HEADER.size:]
        with memoryview(big) as view:
            while have < n:  # hosts write a frame in one go: finish it with blocking reads
                try:
                    got = os.readv(self.rfd, [view[have:]])
                except OSError:
                    got = 0
                if not got:
                    self._eof()
                    return None
                have += got
        return bytes(big)

    def _put(self, rid: int, reply: Reply) -> bool:
        waiter = self._waiters.get(rid)
        if waiter is None:
            return False  # a late answer to an abandoned request
        waiter.reply = reply
        return True

    def close_write(self) -> None:
        """Close the request (and control) pipe: the host sees EOF and exits."""
        with self._wlock:
            for f in self._files[1:]:
                f.close()
            self.wfd, self.control_fd = -1, (None if self.control_fd is None else -1)

    def forget(self, reason: str) -> None:
        """In a forked child (no other thread runs yet): close every descriptor, send nothing."""
        self.open = False
        self.reason = reason
        for f in self._files:
            f.close()

    def _eof(self) -> None:
        """The host is gone: answer every outstanding request with DIED and the reason."""
        with self._wlock:
            if not self.open:
                return
            self.open = False
        self.reason = self._on_eof()
        died = Reply(Status.DIED, self.reason.encode())
        for waiter in list(self._waiters.values()):
            if waiter.reply is None:
                waiter.reply = died
        with self._cond:
            self._cond.notify_all()
