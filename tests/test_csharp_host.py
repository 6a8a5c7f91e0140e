"""The shared C# host: forked children get their own host, and functions sharing a host do not
hurt each other (lingering threads, hoarded descriptors, Environment.Exit, the file-size limit,
statics). Real mcs, mono and bubblewrap; each test fails on the runtime before issue 13."""

from __future__ import annotations

import json
import os
import select
import signal
import threading
import time

import pytest

from functions_nb import BreakerConfig, Functions, InvocationError, LimitExceeded, languages
from functions_nb.runtimes import mono

pytestmark = pytest.mark.skipif(
    "csharp" not in languages.names() or not languages.get_language("csharp").toolchain().usable,
    reason="C# is not registered or Mono (mcs, mono) is not installed")

ADD_CS = "public static int add(int a, int b) { return a + b; }\n"


@pytest.fixture(scope="module")
def cs(tmp_path_factory):
    f = Functions(store=str(tmp_path_factory.mktemp("csharp-host") / "store"),
                  breaker=BreakerConfig(failure_threshold=1000))
    f.deploy("csharp", ADD_CS, name="add")
    yield f
    f.close()


def host_pid() -> int:
    return mono.runtime().host().pid


def in_child(fx: Functions, timeout: float = 90.0) -> list:
    """Fork; the child invokes ``add(20, 22)`` and reports [value, its host's pid]. A child
    that does not answer within ``timeout`` is killed and the test fails (no hang)."""
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:
        code = 1
        try:
            value = fx.invoke("add", 20, 22)
            host = mono.runtime().current()
            os.write(write, json.dumps([value, host.pid if host else 0]).encode())
            code = 0
        finally:
            os._exit(code)
    os.close(write)
    try:
        ready, _, _ = select.select([read], [], [], timeout)
        if not ready:
            os.kill(pid, signal.SIGKILL)
            pytest.fail(f"the forked child did not answer within {timeout:g} s")
        with os.fdopen(read) as f:
            answer = json.loads(f.read() or "null")
    finally:
        _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0 and answer is not None
    return answer


# -- fork ---------------------------------------------------------------------------------------

def test_forked_child_that_needs_a_host_starts_one(cs):
    """The parent's host is stopped (its spawner thread existed): the child starts its own
    instead of waiting forever for a thread that did not survive the fork."""
    assert cs.invoke("add", 1, 2) == 3
    mono.runtime().shutdown()
    value, child_host = in_child(cs)
    assert value == 42 and child_host != 0
    assert cs.invoke("add", 2, 3) == 5  # and the parent starts its own again


def test_forked_child_never_uses_the_parents_host(cs):
    assert cs.invoke("add", 1, 2) == 3
    parent = mono.runtime().current()
    assert parent is not None
    value, child_host = in_child(cs)
    assert value == 42 and child_host not in (0, parent.pid)
    assert cs.invoke("add", 5, 6) == 11  # the parent's host still works ...
    assert mono.runtime().current() is parent and parent.alive  # ... and is the same one


# -- functions sharing a host -------------------------------------------------------------------

LINGER_CS = """using System.Threading;
using System.Threading.Tasks;

static long ticks;

static void Spin() { while (true) Interlocked.Increment(ref ticks); }

public static long linger(int mode) {
    long start = Interlocked.Read(ref ticks);
    if (mode == 1) new Thread(Spin) { IsBackground = true }.Start();
    if (mode == 2) Task.Run(() => Spin());
    if (mode == 3) Task.Delay(50).ContinueWith(_ => Spin());  // starts after the call returned
    if (mode == 1 || mode == 2) while (Interlocked.Read(ref ticks) == start) Thread.Sleep(1);
    return Interlocked.Read(ref ticks) - (mode == 0 ? 0 : start);
}
"""


def settled(fx: Functions, name: str, within: float = 10.0) -> int:
    """Read the counter until two reads 0.1 s apart agree (the stop has landed)."""
    deadline = time.monotonic() + within
    last = fx.invoke(name, 0)
    while time.monotonic() < deadline:
        time.sleep(0.1)
        now = fx.invoke(name, 0)
        if now == last:
            return now
        last = now
    pytest.fail(f"{name}'s counter kept moving for {within:g} s after the call returned")


@pytest.mark.parametrize("mode, what", [(1, "a Thread"), (2, "a Task"), (3, "a continuation")])
def test_work_a_call_leaves_running_is_stopped_when_it_returns(cs, mode, what):
    cs.deploy("csharp", LINGER_CS, name="linger")
    pid = host_pid()
    ex = cs.run("linger", mode)
    assert ex.status == "ok", what
    if mode != 3:  # running when the call returned: stopped then, and the caller is told
        assert ex.value > 0 and any(level == "warn" and "stopped 1 background thread" in msg
                                    for level, msg, _ in ex.console)
    else:  # started later in the call's context: stopped as it starts
        time.sleep(0.2)
    count = settled(cs, "linger")
    time.sleep(0.3)
    assert cs.invoke("linger", 0) == count  # nothing runs on after the call
    assert host_pid() == pid and cs.invoke("add", 1, 1) == 2


def test_work_that_finishes_within_the_call_is_left_alone(cs):
    cs.deploy("csharp", """using System.Linq;
using System.Threading.Tasks;
public static long par(int n) {
    long total = 0;
    Parallel.For(0, n, i => { System.Threading.Interlocked.Add(ref total, i); });
    return total + Task.Run(() => 1L).Result;
}
""", name="par")
    for _ in range(20):
        ex = cs.run("par", 100)
        assert ex.value == 4951 and not any(level == "warn" for level, _, _ in ex.console)


def test_hoarding_descriptors_fails_the_offender_not_its_neighbours(cs):
    cs.deploy("csharp", """using System.Collections.Generic;
using System.IO;
static List<FileStream> kept = new List<FileStream>();
public static int hoard(int n) {
    for (int i = 0; i < n; i++) kept.Add(new FileStream("/dev/null", FileMode.Open, FileAccess.Read));
    return kept.Count;
}
""", name="hoard")
    pid = host_pid()
    assert cs.invoke("hoard", 3) == 3  # a few are fine
    with pytest.raises(LimitExceeded, match=r"hoard keeps 2\d\d file descriptors open across calls"):
        cs.invoke("hoard", 246)
    assert cs.invoke("add", 2, 2) == 4  # the neighbour works,
    cs.deploy("csharp", ADD_CS.replace("add(", "add2("), name="add2")
    assert cs.invoke("add2", 3, 4) == 7  # a new function loads,
    assert cs.invoke("hoard", 1) == 1  # the offender starts afresh (its descriptors were closed)
    assert host_pid() == pid


def test_environment_exit_is_blamed_on_the_function_that_called_it(cs):
    cs.deploy("csharp", "public static int slow(int ms) { System.Threading.Thread.Sleep(ms); return ms; }",
              name="slow")
    cs.deploy("csharp", "public static int quit(int x) { System.Environment.Exit(x); return x; }",
              name="quit")
    assert cs.invoke("slow", 1) == 1
    box: dict = {}
    thread = threading.Thread(target=lambda: box.setdefault("ex", cs.run("slow", 20_000, timeout=60)))
    thread.start()
    deadline = time.monotonic() + 10
    while not cs.running() and time.monotonic() < deadline:
        time.sleep(0.01)
    time.sleep(0.1)  # the call reached the host
    with pytest.raises(InvocationError, match=r"quit called Environment\.Exit\(0\), which ends the shared C# host"):
        cs.invoke("quit", 0)
    thread.join(30)
    bystander = box["ex"]
    assert bystander.status == "error"
    assert "the C# host was ended by quit calling Environment.Exit(0)" in str(bystander.error)
    assert cs.invoke("slow", 2) == 2  # a new host serves both again


def test_writing_past_the_file_size_limit_fails_that_call_only(cs):
    cs.deploy("csharp", """using System.IO;
public static long big(int mb) {
    string path = "/tmp/fnb-big-" + System.Guid.NewGuid();
    try {
        using (var f = new FileStream(path, FileMode.Create)) {
            var block = new byte[1 << 20];
            for (int i = 0; i < mb; i++) f.Write(block, 0, block.Length);
        }
        return new FileInfo(path).Length;
    } finally { File.Delete(path); }
}
""", name="big")
    pid = host_pid()
    assert cs.invoke("big", 1) == 1 << 20
    with pytest.raises(LimitExceeded, match=rf"big: wrote past the file-size limit of {mono.FSIZE_MB} MB"):
        cs.invoke("big", mono.FSIZE_MB + 8)
    assert cs.invoke("add", 1, 2) == 3 and host_pid() == pid  # the host lives on
    assert cs.invoke("big", 2) == 2 << 20


def test_functions_in_one_host_cannot_see_or_change_each_others_statics(cs):
    cs.deploy("csharp", "static int secret_total;\n"
                        "public static int keep(int k) { secret_total += k; return secret_total; }",
              name="keep")
    cs.deploy("csharp", """using System;
using System.Reflection;
public static int tamper(int value) {
    int found = 0;
    foreach (var asm in AppDomain.CurrentDomain.GetAssemblies())
        foreach (var t in asm.GetTypes()) {
            var f = t.GetField("secret_total", BindingFlags.Static | BindingFlags.NonPublic | BindingFlags.Public);
            if (f != null) { f.SetValue(null, value); found++; }
        }
    return found;
}
""", name="tamper")
    pid = host_pid()
    assert cs.invoke("keep", 1) == 1
    assert cs.invoke("tamper", 666) == 0  # keep's assembly is not even visible from tamper
    assert cs.invoke("keep", 1) == 2  # and its static is untouched
    assert host_pid() == pid  # the same host ran both


HOARD_CS = """using System.Collections.Generic;
static List<byte[]> kept = new List<byte[]>();
public static int hoard(int mb) {
    kept.Add(new byte[mb << 20]);
    return kept.Count * mb;
}
"""


def test_memory_kept_in_statics_fails_the_offender_not_its_neighbours(cs):
    """Mono has no heap accounting per AppDomain; the host estimates what each function's calls
    leave live (confirmed by a full collection) and fails the one holding more than its
    memory_mb across calls, naming it; its AppDomain goes, the neighbour stays warm."""
    cs.deploy("csharp", HOARD_CS, name="hoard", memory_mb=32)
    cs.deploy("csharp", "public static int add(int a, int b) { return a + b; }\n", name="add")
    held = []
    with pytest.raises(LimitExceeded, match=r"hoard holds \d+ MB across calls \(in statics; "
                                            r"memory limit 32 MB\)"):
        for _ in range(20):
            held.append(cs.invoke("hoard", 4))
            assert cs.invoke("add", 1, 2) == 3
    assert held and max(held) <= 32
    assert cs.invoke("hoard", 4) == 4  # a fresh AppDomain: nothing held any more
    assert cs.invoke("add", 2, 2) == 4


def test_garbage_is_not_held_memory(cs):
    """A function that allocates much per call but keeps nothing is never blamed: the estimate
    is confirmed by a full collection first."""
    cs.deploy("csharp", """public static int churn(int mb) {
    var scratch = new byte[mb << 20];
    scratch[scratch.Length - 1] = 1;
    return scratch.Length >> 20;
}
""", name="churn", memory_mb=32)
    for _ in range(30):
        assert cs.invoke("churn", 12) == 12
