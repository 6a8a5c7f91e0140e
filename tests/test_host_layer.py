"""The host layer on its own (runtimes/host/): a small host program speaking
docs/host-protocol.md, driven through HostProcess and SharedHostRuntime."""

from __future__ import annotations

import json
import os
import shutil
import sys
import threading
import time

import pytest

from functions_nb.errors import Aborted
from functions_nb.runtimes.base import CallContext
from functions_nb.runtimes.host import HostProcess, Op, SharedHostRuntime, Status, sandbox

# A host: CALL bodies are JSON {"echo": x, "sleep": s, "stubborn": bool, "exit": n, "abort": 1}.
HOST = r'''
import json, os, struct, sys, threading, time
H = struct.Struct("<IIB")
rfd, wfd = int(sys.argv[1]), int(sys.argv[2])
lock = threading.Lock()
cancelled = set()
def reply(rid, status, body=b""):
    with lock:
        os.write(wfd, H.pack(len(body), rid, status) + body)
def run(rid, req):
    if "exit" in req:
        print("leaving on request", flush=True); os._exit(req["exit"])
    if "abort" in req:
        print("fatal: out of memory (on purpose)", flush=True); os.abort()
    end = time.monotonic() + req.get("sleep", 0)
    while time.monotonic() < end:
        if rid in cancelled and not req.get("stubborn"):
            return reply(rid, 2, b"interrupted")
        time.sleep(0.005)
    reply(rid, 0, json.dumps(req.get("echo")).encode())
reply(0, 7, json.dumps({"pid": os.getpid()}).encode())
buf = b""
while True:
    data = os.read(rfd, 65536)
    if not data:
        sys.exit(0)
    buf += data
    while len(buf) >= 9:
        n, rid, op = H.unpack_from(buf)
        if len(buf) < 9 + n:
            break
        body, buf = buf[9:9 + n], buf[9 + n:]
        if op == 3:
            cancelled.add(struct.unpack_from("<I", body)[0])
        elif op == 2:
            threading.Thread(target=run, args=(rid, json.loads(body)), daemon=True).start()
'''


@pytest.fixture
def script(tmp_path):
    path = tmp_path / "toy_host.py"
    path.write_text(HOST)
    return path


def start(script, generation: int = 1, grace: float = 0.3) -> HostProcess:
    return HostProcess(lambda p: [sys.executable, "-I", str(script), str(p.request), str(p.reply)],
                       label="the toy host", env={}, generation=generation, grace=grace,
                       start_timeout=30)


def call(host: HostProcess, req: dict, ctx: CallContext | None = None):
    return host.request(Op.CALL, json.dumps(req).encode(), ctx=ctx, what="a call of toy")


def test_hello_and_correlated_replies_from_many_threads(script):
    host = start(script)
    try:
        assert host.info["pid"] > 0 and host.start_ms > 0
        results: dict[int, object] = {}

        def one(i: int) -> None:  # later requests answer first: replies arrive out of order
            reply = call(host, {"echo": i, "sleep": (20 - i) * 0.01}, CallContext(str(i), 30))
            results[i] = (reply.status, json.loads(reply.body))

        threads = [threading.Thread(target=one, args=(i,)) for i in range(20)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(30)
        assert results == {i: (Status.OK, i) for i in range(20)}
    finally:
        host.stop()
    assert not host.alive and "was shut down" in host.reason


def test_deadline_cancels_and_the_host_lives_on(script):
    host = start(script)
    try:
        ctx = CallContext("slow", 0.2)
        reply = call(host, {"sleep": 30}, ctx)
        assert reply.status == Status.INTERRUPTED and ctx.timed_out
        assert call(host, {"echo": "still here"}).body == b'"still here"'
    finally:
        host.stop()


def test_a_call_that_ignores_cancel_gets_its_host_killed(script):
    host = start(script, grace=0.3)
    ctx = CallContext("stubborn", 0.2)
    reply = call(host, {"sleep": 30, "stubborn": True}, ctx)
    assert reply.status == Status.DIED and ctx.timed_out and not host.alive
    assert ("the toy host was killed because a call of toy reached its 0.2 s time limit and did "
            "not stop within 0.3 s") in reply.body.decode()


def test_abort_flag_cancels(script):
    host = start(script)
    try:
        ctx = CallContext("aborted", 30)
        threading.Timer(0.2, lambda: setattr(ctx, "aborted", True)).start()
        assert call(host, {"sleep": 30}, ctx).status == Status.INTERRUPTED
        assert not ctx.timed_out
    finally:
        host.stop()


def test_a_dying_host_answers_every_outstanding_request_with_why(script):
    host = start(script)
    bystander: dict = {}
    worker = threading.Thread(target=lambda: bystander.setdefault(
        "reply", call(host, {"sleep": 30}, CallContext("b", 60))))
    worker.start()
    time.sleep(0.2)
    reply = call(host, {"abort": 1}, CallContext("a", 60))
    worker.join(30)
    for r in (reply, bystander["reply"]):
        assert r.status == Status.DIED
        assert r.body.decode().startswith("the toy host was killed by SIGABRT")
        assert "fatal: out of memory (on purpose)" in r.body.decode()
    # a request after the death is answered at once, with the same reason
    assert call(host, {"echo": 1}).status == Status.DIED

    host = start(script)
    reply = call(host, {"exit": 3})
    assert reply.status == Status.DIED and "exited with code 3" in reply.body.decode()


class ToyRuntime(SharedHostRuntime):
    kind = "toy"
    label = "the toy host"

    def __init__(self, script) -> None:
        super().__init__()
        self.script = script

    def start_host(self, generation: int) -> HostProcess:
        return start(self.script, generation)


def test_shared_runtime_restarts_with_a_new_generation_and_forks_cleanly(script):
    rt = ToyRuntime(script)
    try:
        first = rt.host()
        assert rt.host() is first and rt.generation == 1
        first.kill("testing")
        second = rt.host()
        assert second is not first and second.generation == rt.generation == 2
        read, write = os.pipe()
        pid = os.fork()
        if pid == 0:
            try:  # the child must not see the parent's host, and gets one of its own
                mine = rt.current() is None and rt.host().info["pid"]
                os.write(write, json.dumps(mine).encode())
            finally:
                os._exit(0)
        os.close(write)
        with os.fdopen(read) as f:
            child_host = json.loads(f.read() or "0")
        os.waitpid(pid, 0)
        assert child_host and child_host != second.info["pid"]
        assert call(rt.host(), {"echo": 7}).body == b"7" and rt.host() is second
    finally:
        rt.shutdown()


def test_waiting_for_a_start_honours_abort(script):
    rt = ToyRuntime(script)
    rt._start_lock.acquire()  # another thread is starting the host
    try:
        ctx = CallContext("waiting", 30)
        ctx.aborted = True
        with pytest.raises(Aborted):
            rt.host(ctx, "toy")
    finally:
        rt._start_lock.release()
        rt.shutdown()


@pytest.mark.skipif(shutil.which("bwrap") is None, reason="bubblewrap not installed")
def test_sandbox_profile_refuses_processes_network_and_host_files(tmp_path):
    secret = tmp_path / "secret.txt"
    secret.write_text("s3cret")
    profile = sandbox.SandboxProfile("test-python", root_ro=True, hide=[str(tmp_path)],
                                     rlimits={"core": 0}, env={"LC_ALL": "C.UTF-8"})
    layers = sandbox.probe(profile, [sys.executable, "-I", "-c", "pass"])
    if not layers["bwrap"]:
        pytest.skip(f"bubblewrap does not work here: {layers['detail']}")
    probe = f"""
import os, socket, subprocess
out = {{}}
try:
    subprocess.run(["/bin/true"]); out["process"] = "started"
except OSError as e:
    out["process"] = e.errno
try:
    socket.create_connection(("1.1.1.1", 53), timeout=2); out["net"] = "connected"
except OSError as e:
    out["net"] = "refused"
out["secret"] = os.path.exists({str(secret)!r})
out["env"] = sorted(os.environ)
print(repr(out))
"""
    launch = sandbox.launch(profile, [sys.executable, "-I", "-c", probe])
    import subprocess

    try:
        proc = subprocess.run(launch.argv, env={**launch.env, "SECRET_TOKEN": "leak"},
                              pass_fds=launch.fds, capture_output=True, text=True, timeout=60)
    finally:
        launch.close()
    out = eval(proc.stdout)  # noqa: S307 - our own probe's repr
    assert out["process"] == 1  # EPERM from the seccomp filter
    assert out["net"] == "refused" and out["secret"] is False
    assert "SECRET_TOKEN" not in out["env"]


@pytest.mark.skipif(shutil.which("bwrap") is None, reason="bubblewrap not installed")
def test_a_bind_below_a_private_tmp_stays_visible(tmp_path):
    """A checkout or a virtualenv under /tmp (CI clones anywhere) is bound on top of the
    profile's private /tmp, not hidden by it (a fresh clone in /tmp lost Go and Zig)."""
    tool = tmp_path / "tool.sh"
    tool.write_text("#!/bin/sh\necho visible\n")
    tool.chmod(0o755)
    binds, links = sandbox.library_binds("/bin/sh")
    profile = sandbox.SandboxProfile("test-tmp-bind", binds=[*binds, *sandbox.readable(tool)],
                                     symlinks=list(links), tmpfs={"/tmp": 16})
    if not sandbox.probe(profile, ["/bin/sh", "-c", "exit 0"])["bwrap"]:
        pytest.skip("bubblewrap does not work here")
    launch = sandbox.launch(profile, ["/bin/sh", str(tool)])
    import subprocess

    try:
        proc = subprocess.run(launch.argv, env=launch.env, pass_fds=launch.fds,
                              capture_output=True, text=True, timeout=60)
    finally:
        launch.close()
    assert proc.stdout.strip() == "visible", proc.stderr
