"""The V8 host: the process that runs JavaScript bundles in mini-racer isolates.

Runs as ``python -I v8_host.py REQUEST_FD REPLY_FD DATA_MB`` (only the standard library and
mini-racer; nothing of functions_nb is imported here) and speaks docs/host-protocol.md:

- ``LOAD``   body ``u32 isolate | JSON {"limit": bytes, "codes": [source, ...]}``: create an
  isolate with that heap limit and evaluate the codes (prelude, bundle, bind) -> ``OK``;
- ``CALL``   body ``u32 isolate | JavaScript text`` -> ``OK`` with ``u8 value type | value``
  (mini-racer's types: 1 null, 2 bool, 3 int64, 4 double, 5 string, 11 undefined);
- ``CANCEL`` ``TerminateExecution`` of the target (an isolate waiting on a promise is freed);
- ``UNLOAD`` body ``u32 isolate``: free it.
Errors: ``ERROR`` (body ``u8 kind | text``: 0 exception, 1 parse error), ``MEMORY`` (V8 heap
limit), ``INTERRUPTED``, ``GONE`` (no such isolate), ``HOST_ERROR``.

The process keeps its data-segment limit (``RLIMIT_DATA``) at what its isolates may use: a
backstop behind each isolate's heap limit, for V8 paths that abort the whole process.
"""

from __future__ import annotations

import json
import os
import re
import resource
import struct
import sys
import threading
from pathlib import Path
from typing import Any

HEADER = struct.Struct("<IIB")
ISO = struct.Struct("<I")
CANCEL = struct.Struct("<IB")
LOAD, CALL, CANCEL_OP, UNLOAD, PING = 1, 2, 3, 4, 5
OK, ERROR, INTERRUPTED, MEMORY, BAD_ARGS, HOST_ERROR, GONE, READY = range(8)
#: mini-racer's value types, and its error types.
T_NULL, T_BOOL, T_INT, T_DOUBLE, T_STR, T_UNDEF = 1, 2, 3, 4, 5, 11
T_EXC, T_PARSE, T_OOM, T_TIMEOUT, T_TERMINATED = 200, 201, 202, 203, 204
_DOUBLE = struct.Struct("<d")
_INT64 = struct.Struct("<q")
#: Seconds the cell's top-level code (and the runtime prelude) may run when an isolate starts.
INIT_TIMEOUT = 5.0
CANCEL_GRACE = 2.0
READ_CHUNK = 1 << 16
#: Data-segment budget per isolate beyond twice its memory limit (V8 reserves ~11 MB each).
ISOLATE_OVERHEAD_MB = 32
HOST_SLACK_MB = 256
# Host callback ids above 2**32 (below: request ids): kind << 40 | isolate id.
_NOTIFY, _TAKE, _SYNC = 1, 2, 3


def _status(typ: int) -> int:
    if typ in (T_EXC, T_PARSE):
        return ERROR
    if typ == T_OOM:
        return MEMORY
    if typ in (T_TIMEOUT, T_TERMINATED):
        return INTERRUPTED
    return OK


class Server:
    """Serves framed requests: creates isolates, starts evaluations, cancels, frees."""

    def __init__(self, rfd: int, wfd: int, cap_mb: int = 0) -> None:
        from py_mini_racer import init_mini_racer
        from py_mini_racer._dll import MR_CALLBACK

        self.dll = init_mini_racer(ignore_duplicate_init=True)
        self.callback = MR_CALLBACK(self._on_result)
        # The first context reserves V8's process-wide ranges (~0.5 GB of address space counted
        # as data); keep one alive so that the data limit is measured after them.
        self._pin = self.dll.mr_init_context(self.callback)
        self.cap_mb = cap_mb
        self.base_mb = _vm_data_mb()
        if cap_mb > 0:
            resource.setrlimit(resource.RLIMIT_DATA, (cap_mb << 20, cap_mb << 20))
        self.budgets: dict[int, int] = {}          # isolate id -> its share of the data limit
        self.rfd, self.wfd = rfd, wfd
        self.lock = threading.Lock()
        self.wlock = threading.Lock()
        self.ctxs: dict[int, int] = {}             # isolate id -> mini-racer context id
        self.takes: dict[int, Any] = {}            # isolate id -> handle of "__fnb_take()"
        self.calls: dict[int, list] = {}           # request id -> [isolate, task id, code handle]
        self.waiting: dict[int, set[int]] = {}     # isolate id -> calls awaiting a promise
        self.sync: dict[int, list] = {}            # set-up evaluations: id -> [event, raw]

    # plumbing ------------------------------------------------------------------------------
    def _budget(self, iso: int, memory_mb: int | None) -> None:
        """Keep the process's data limit at what its isolates may use (heap and buffers of
        each, plus their fixed reservations), below the cap: a backstop, not the limit."""
        with self.lock:
            if memory_mb is None:
                self.budgets.pop(iso, None)
            else:
                self.budgets[iso] = ISOLATE_OVERHEAD_MB + 2 * memory_mb
            total = self.base_mb + HOST_SLACK_MB + sum(self.budgets.values())
        if self.cap_mb > 0:  # the soft limit moves; the hard limit is the cap
            resource.setrlimit(resource.RLIMIT_DATA, (min(total, self.cap_mb) << 20, self.cap_mb << 20))

    def reply(self, rid: int, status: int, body: bytes = b"") -> None:
        data = memoryview(HEADER.pack(len(body), rid, status) + body)
        with self.wlock:
            try:
                while data:
                    data = data[os.write(self.wfd, data):]
            except OSError:
                os._exit(0)  # the parent is gone

    def result(self, rid: int, typ: int, payload: bytes) -> None:
        """A mini-racer outcome as a reply."""
        status = _status(typ)
        if status == OK:
            self.reply(rid, OK, bytes((typ,)) + payload)
        elif status == ERROR:
            self.reply(rid, ERROR, bytes((typ - T_EXC,)) + payload)
        else:
            self.reply(rid, status, payload)

    def _frames(self) -> Any:
        """Yield (request id, op, body) per request frame."""
        buf = bytearray()
        size = HEADER.size
        chunk = memoryview(bytearray(READ_CHUNK))
        reader = open(self.rfd, "rb", buffering=0, closefd=False)  # noqa: SIM115
        while True:
            got = reader.readinto(chunk)  # no per-read allocation
            if not got:
                os._exit(0)  # the parent closed the pipe
            buf += chunk[:got]
            off = 0
            while len(buf) - off >= size:
                n, rid, op = HEADER.unpack_from(buf, off)
                if len(buf) - off - size < n:
                    break
                yield rid, op, bytes(buf[off + size:off + size + n])
                off += size + n
            del buf[:off]

    def _string(self, ctx: int, text: bytes) -> Any:
        return self.dll.mr_alloc_string_val(ctx, text, len(text), T_STR)

    @staticmethod
    def _convert(raw: Any) -> tuple[int, bytes]:
        c = raw.contents
        typ = c.type
        if typ == T_DOUBLE:
            return typ, _DOUBLE.pack(c.value.double_val)
        if typ == T_INT:
            return typ, _INT64.pack(c.value.int_val)
        if typ == T_BOOL:
            return typ, b"\x01" if c.value.int_val == 1 else b"\x00"
        if typ == T_STR or typ >= 200:
            return typ, c.value.bytes_val[:c.len] if c.len else b""
        return typ, b""

    # callbacks from the isolates' threads -------------------------------------------------
    def _on_result(self, cb_id: int, raw: Any) -> None:
        kind, iso = cb_id >> 40, cb_id & 0xFFFFFFFFFF
        if kind == 0:
            with self.lock:
                entry = self.calls.pop(cb_id, None)
            if entry is None:
                return
            ctx = self.ctxs.get(entry[0], 0)
            typ, payload = self._convert(raw)
            self.dll.mr_free_value(ctx, raw)
            self.dll.mr_free_value(ctx, entry[2])
            if typ == T_STR and payload == b"P":  # a promise: __fnb_take() delivers it later
                with self.lock:
                    if entry[0] in self.ctxs:
                        self.waiting.setdefault(entry[0], set()).add(cb_id)
                        return
                self.reply(cb_id, INTERRUPTED, b"isolate reset")
                return
            self.result(cb_id, typ, payload)
        elif kind == _NOTIFY:
            self.dll.mr_free_value(self.ctxs.get(iso, 0), raw)
            ctx, take = self.ctxs.get(iso), self.takes.get(iso)
            if ctx is not None and take is not None:
                self.dll.mr_eval(ctx, take, (_TAKE << 40) | iso)
        elif kind == _TAKE:
            typ, payload = self._convert(raw)
            self.dll.mr_free_value(self.ctxs.get(iso, 0), raw)
            if typ != T_STR:
                return
            head, _, envelope = payload.partition(b"\n")
            rid = int(head)
            with self.lock:
                waiting = self.waiting.get(iso, set())
                if rid not in waiting:
                    return
                waiting.discard(rid)
            self.reply(rid, OK, bytes((T_STR,)) + envelope)
        elif kind == _SYNC:
            slot = self.sync.get(cb_id)
            if slot is not None:
                slot[1] = raw
                slot[0].set()

    # requests -----------------------------------------------------------------------------
    def serve(self) -> None:
        for rid, op, body in self._frames():
            try:
                if op == CALL:
                    self._eval(rid, ISO.unpack_from(body)[0], body[ISO.size:])
                elif op == CANCEL_OP:
                    self._cancel(CANCEL.unpack_from(body)[0])
                elif op == LOAD:
                    threading.Thread(target=self._new, args=(rid, ISO.unpack_from(body)[0],
                                                              body[ISO.size:]), daemon=True).start()
                elif op == UNLOAD:
                    self._free(ISO.unpack_from(body)[0])
                elif op == PING:
                    self.reply(rid, OK, json.dumps({"isolates": len(self.ctxs)}).encode())
                else:
                    self.reply(rid, HOST_ERROR, f"unknown operation {op}".encode())
            except Exception as exc:  # noqa: BLE001 - answer the request, keep serving
                with self.lock:
                    self.calls.pop(rid, None)
                self.reply(rid, HOST_ERROR, f"V8 host error: {exc!r}".encode())

    def _eval(self, rid: int, iso: int, code: bytes) -> None:
        ctx = self.ctxs.get(iso)
        if ctx is None:
            self.reply(rid, GONE, b"no such isolate")
            return
        handle = self._string(ctx, code)
        entry = [iso, 0, handle]
        with self.lock:
            self.calls[rid] = entry
        entry[1] = self.dll.mr_eval(ctx, handle, rid)

    def _cancel(self, rid: int) -> None:
        with self.lock:
            entry = self.calls.get(rid)
            pending = next((iso for iso, ids in self.waiting.items() if rid in ids), None)
        if entry is not None and entry[0] in self.ctxs:
            self.dll.mr_cancel_task(self.ctxs[entry[0]], entry[1])
        elif pending is not None:  # code after an await: only discarding the isolate stops it
            self._free(pending)

    def _free(self, iso: int) -> None:
        with self.lock:
            ctx = self.ctxs.pop(iso, None)
            pending = self.waiting.pop(iso, set())
            self.takes.pop(iso, None)
        if ctx is None:
            return
        for rid in pending:
            self.reply(rid, INTERRUPTED, b"isolate reset")
        self.dll.mr_free_context(ctx)
        self._budget(iso, None)
        with self.lock:
            left = [rid for rid, entry in self.calls.items() if entry[0] == iso]
            for rid in left:
                del self.calls[rid]
        for rid in left:
            self.reply(rid, INTERRUPTED, b"isolate reset")

    def _sync_eval(self, ctx: int, iso: int, code: bytes, timeout: float) -> Any:
        """Evaluate during set-up; returns the raw result handle (the caller frees it)."""
        key = (_SYNC << 40) | iso
        slot: list = [threading.Event(), None]
        self.sync[key] = slot
        handle = self._string(ctx, code)
        try:
            task = self.dll.mr_eval(ctx, handle, key)
            if not slot[0].wait(timeout):
                self.dll.mr_cancel_task(ctx, task)
                if not slot[0].wait(CANCEL_GRACE):
                    raise TimeoutError("the isolate did not stop")
                self.dll.mr_free_value(ctx, slot[1])
                raise TimeoutError(f"the cell's top-level code did not finish within {timeout:g} s")
            return slot[1]
        finally:
            self.sync.pop(key, None)
            self.dll.mr_free_value(ctx, handle)

    def _new(self, rid: int, iso: int, body: bytes) -> None:
        try:
            self._setup(rid, iso, body)
        except Exception as exc:  # noqa: BLE001 - always answer, or the caller waits in vain
            self._free(iso)
            self._budget(iso, None)
            self.reply(rid, HOST_ERROR, f"setting up the isolate failed: {exc!r}".encode())

    def _setup(self, rid: int, iso: int, body: bytes) -> None:
        spec = json.loads(body)
        dll = self.dll
        self._budget(iso, int(spec["limit"]) >> 20)
        ctx = dll.mr_init_context(self.callback)
        with self.lock:
            self.ctxs[iso] = ctx
        try:
            dll.mr_set_hard_memory_limit(ctx, int(spec["limit"]))
            glob = self._sync_eval(ctx, iso, b"globalThis", INIT_TIMEOUT)
            key = self._string(ctx, b"__fnb_notify")
            notify = dll.mr_make_js_callback(ctx, (_NOTIFY << 40) | iso)
            for handle in (dll.mr_set_object_item(ctx, glob, key, notify), glob, key, notify):
                dll.mr_free_value(ctx, handle)
            with self.lock:
                self.takes[iso] = self._string(ctx, b"__fnb_take()")
            for code in spec["codes"]:
                raw = self._sync_eval(ctx, iso, code.encode(), INIT_TIMEOUT)
                typ, text = self._convert(raw)
                dll.mr_free_value(ctx, raw)
                if typ >= 200:
                    self._free(iso)
                    self.result(rid, typ, text)
                    return
        except TimeoutError as exc:
            self._free(iso)
            self.reply(rid, INTERRUPTED, str(exc).encode())
            return
        self.reply(rid, OK)


def _vm_data_mb() -> int:
    try:
        status = Path("/proc/self/status").read_text()
    except OSError:
        return 0
    m = re.search(r"VmData:\s+(\d+) kB", status)
    return int(m.group(1)) >> 10 if m else 0


def main(rfd: int, wfd: int, data_mb: int) -> None:
    """Say hello (the V8 version), then serve until the request pipe closes."""
    try:
        Path("/proc/self/oom_score_adj").write_text("1000")
    except OSError:
        pass
    server = Server(rfd, wfd, data_mb)
    version = server.dll.mr_v8_version()
    version = version.decode(errors="replace") if isinstance(version, bytes) else ""
    server.reply(0, READY, json.dumps({"v8": version, "pid": os.getpid()}).encode())
    server.serve()


if __name__ == "__main__":
    main(int(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3]))
