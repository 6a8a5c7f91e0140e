"""Escape attempts from Rust and Zig are refused (Go and AssemblyScript: their own tests).

Rust's standard library on wasm32-unknown-unknown has no files, processes, sockets or
environment: every such call returns an error at run time. Zig's freestanding target has none
of these APIs at all, so the cell does not compile; hand-written imports of host functions are
refused when the module is loaded, and WASI imports reach a WASI with nothing in it.
"""

from __future__ import annotations

import socket

import pytest

from functions_nb import CompileError, InvocationError

ESCAPE_RS = """use std::io::Write;

fn escape(what: &str, arg: &str) -> String {
    let r: Result<String, String> = match what {
        "read" => std::fs::read_to_string("/etc/hostname").map_err(|e| e.to_string()),
        "write" => std::fs::File::create(arg)
            .and_then(|mut f| f.write_all(b"x"))
            .map(|_| "written".to_string())
            .map_err(|e| e.to_string()),
        "spawn" => std::process::Command::new("/bin/sh").arg("-c").arg("echo hi").output()
            .map(|o| String::from_utf8_lossy(&o.stdout).into_owned())
            .map_err(|e| e.to_string()),
        "socket" => std::net::TcpStream::connect(arg)
            .map(|_| "connected".to_string())
            .map_err(|e| e.to_string()),
        "env" => std::env::var(arg).map_err(|e| e.to_string()),
        _ => Err("unknown".to_string()),
    };
    match r {
        Ok(v) => format!("escaped: {}", v),
        Err(e) => format!("refused: {}", e),
    }
}
"""
UNSUPPORTED = "refused: operation not supported on this platform"


@pytest.fixture(scope="module")
def rfx(tmp_path_factory):
    from functions_nb import Functions

    fx = Functions(store=str(tmp_path_factory.mktemp("sandbox") / "store"))
    fx.deploy("rust", ESCAPE_RS, name="escape")
    yield fx
    fx.close()


def test_rust_cannot_read_host_files(rfx):
    assert rfx.invoke("escape", "read", "") == UNSUPPORTED


def test_rust_cannot_write_files(rfx, tmp_path):
    target = tmp_path / "escaped.txt"
    assert rfx.invoke("escape", "write", str(target)) == UNSUPPORTED
    assert not target.exists()


def test_rust_cannot_spawn_processes(rfx):
    assert rfx.invoke("escape", "spawn", "") == UNSUPPORTED


def test_rust_cannot_open_sockets(rfx):
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen()
    server.settimeout(0.3)
    try:
        port = server.getsockname()[1]
        assert rfx.invoke("escape", "socket", f"127.0.0.1:{port}") == UNSUPPORTED
        with pytest.raises(socket.timeout):
            server.accept()  # nothing connected
    finally:
        server.close()


def test_rust_cannot_read_environment(rfx, monkeypatch):
    monkeypatch.setenv("FNB_SECRET", "hunter2")
    assert rfx.invoke("escape", "env", "FNB_SECRET") == "refused: environment variable not found"


ZIG_ATTEMPTS = {
    "read": 'const f = std.fs.cwd().openFile("/etc/hostname", .{}) catch return 0;\n    _ = f;',
    "write": 'const f = std.fs.cwd().createFile("/tmp/escaped", .{}) catch return 0;\n    _ = f;',
    "spawn": 'var child = std.process.Child.init(&.{"/bin/sh"}, std.heap.page_allocator);\n'
             '    _ = child.spawnAndWait() catch return 0;',
    "socket": 'const s = std.net.tcpConnectToHost(std.heap.page_allocator, "127.0.0.1", 22) '
              'catch return 0;\n    _ = s;',
    "env": 'const v = std.process.getEnvVarOwned(std.heap.page_allocator, "HOME") catch return 0;\n'
           '    _ = v;',
}


@pytest.mark.parametrize("what", sorted(ZIG_ATTEMPTS))
def test_zig_has_no_host_apis(fx, what):
    """Zig on wasm32-freestanding: the standard library offers no way to reach the host."""
    src = f'const std = @import("std");\n\nfn escape() usize {{\n    {ZIG_ATTEMPTS[what]}\n    return 1;\n}}\n'
    with pytest.raises(CompileError) as err:
        fx.deploy("zig", src, name="escape")
    assert err.value.line is not None and "error:" in str(err.value)


def test_hand_written_host_imports_are_refused(fx):
    src = ('extern "env" fn getenv(name: [*:0]const u8) ?[*:0]const u8;\n\nfn escape() usize {\n'
           '    return if (getenv("HOME") != null) 1 else 0;\n}\n')
    fx.deploy("zig", src, name="escape")
    with pytest.raises(InvocationError, match="imports env.getenv, which the sandbox does not provide"):
        fx.invoke("escape")


def test_wasi_imports_reach_an_empty_wasi(fx):
    """A module may import WASI (Go does), but gets no directories, and no sockets at all."""
    src = ('extern "wasi_snapshot_preview1" fn path_open(a: i32, b: i32, c: i32, d: i32, e: i32, '
           'f: i64, g: i64, h: i32, i: i32) i32;\n\nfn escape() i32 {\n'
           '    return path_open(3, 0, 0, 0, 0, 0, 0, 0, 0);\n}\n')
    fx.deploy("zig", src, name="escape")
    assert fx.invoke("escape") == 8  # EBADF: no preopened directory exists
    src = ('extern "wasi_snapshot_preview1" fn sock_open(a: i32, b: i32, c: i32) i32;\n\n'
           'fn escape2() i32 {\n    return sock_open(0, 0, 0);\n}\n')
    fx.deploy("zig", src, name="escape2")
    with pytest.raises(InvocationError, match="sock_open` has not been defined"):
        fx.invoke("escape2")
