"""Zig cells (wasm32-freestanding in wasmtime: one instance per function)."""

from __future__ import annotations

from ..spec import Cells


def _id(ty: str) -> str:
    return "fn {name}(x: TYPE) TYPE {{\n    return x;\n}}\n".replace("TYPE", ty)


_JSON_ID = ('const std = @import("std");\n\nfn {name}(x: std.json.Value) std.json.Value {{\n'
            "    return x;\n}}\n")
_NO_HOST_API = ("wasm32-freestanding's standard library has no {what}, and WASI preview1 (the "
                "only imports a module may name) has no {api}: the cell cannot express it")
_ONE_INSTANCE = ("each function is its own WebAssembly instance: there is no shared host state "
                 "for one function to reach another through")

CELLS = Cells(
    language="zig",
    identity={
        "i32": _id("i32"), "u32": _id("u32"), "i64": _id("i64"), "u64": _id("u64"),
        "f32": _id("f32"), "f64": _id("f64"), "bool": _id("bool"), "str": _id("[]const u8"),
        "list": _JSON_ID, "dict": _JSON_ID, "f64[]": _id("[]const f64"),
    },
    compile_error="fn broken(a: i32) i32 {\n    return a + missing;\n}\n",
    compile_error_line=2,
    boom='const std = @import("std");\n\nfn boom(x: i32) i32 {\n    if (x > 0) {\n'
         '        std.debug.panic("bad input {d}", .{x});\n    }\n    return x;\n}\n',
    boom_line=None,
    boom_no_line="a stripped wasm32-freestanding build carries no source locations for panics",
    spin="fn spin(n: u64) u64 {\n    var x: u64 = n;\n    while (n != 0) {\n"
         "        x = @as(*volatile u64, &x).* *% 31;\n    }\n    return x;\n}\n",
    bomb='const std = @import("std");\n\nfn bomb(alloc: std.mem.Allocator, mb: u32) !u32 {\n'
         "    var n: u32 = 0;\n    while (n < mb) : (n += 1) {\n"
         "        const block = try alloc.alloc(u8, 1 << 20);\n        @memset(block, 1);\n"
         "    }\n    return n;\n}\n",
    escape='''const std = @import("std");

const Iovec = extern struct { base: [*]u8, len: usize };

const wasi = struct {
    extern "wasi_snapshot_preview1" fn path_open(fd: i32, dirflags: i32, path: [*]const u8,
        path_len: usize, oflags: i32, rights: i64, inheriting: i64, fdflags: i32, opened: *i32) i32;
    extern "wasi_snapshot_preview1" fn fd_read(fd: i32, iovs: [*]const Iovec, n: usize, done: *usize) i32;
    extern "wasi_snapshot_preview1" fn fd_write(fd: i32, iovs: [*]const Iovec, n: usize, done: *usize) i32;
    extern "wasi_snapshot_preview1" fn environ_sizes_get(count: *usize, size: *usize) i32;
    extern "wasi_snapshot_preview1" fn environ_get(ptrs: [*][*]u8, buf: [*]u8) i32;
};

fn escape(alloc: std.mem.Allocator, what: []const u8, arg: []const u8) ![]const u8 {
    if (std.mem.eql(u8, what, "env")) {
        var count: usize = 0;
        var size: usize = 0;
        const e = wasi.environ_sizes_get(&count, &size);
        if (e != 0) return std.fmt.allocPrint(alloc, "refused: errno {d}", .{e});
        const ptrs = try alloc.alloc([*]u8, count + 1);
        const text = try alloc.alloc(u8, size + 1);
        const e2 = wasi.environ_get(ptrs.ptr, text.ptr);
        if (e2 != 0) return std.fmt.allocPrint(alloc, "refused: errno {d}", .{e2});
        return text[0..size];
    }
    const reading = std.mem.eql(u8, what, "read");
    if (!reading and !std.mem.eql(u8, what, "write")) return "unknown";
    const rel = if (arg.len > 0 and arg[0] == '/') arg[1..] else arg;
    var fd: i32 = -1;
    const oflags: i32 = if (reading) 0 else 1; // O_CREAT
    const rights: i64 = if (reading) 2 else 64; // FD_READ / FD_WRITE
    const e = wasi.path_open(3, 0, rel.ptr, rel.len, oflags, rights, 0, 0, &fd);
    if (e != 0) return std.fmt.allocPrint(alloc, "refused: errno {d}", .{e});
    const buf = try alloc.alloc(u8, 4096);
    var n: usize = 0;
    if (reading) {
        const iov = [_]Iovec{.{ .base = buf.ptr, .len = buf.len }};
        _ = wasi.fd_read(fd, &iov, 1, &n);
        return buf[0..n];
    }
    @memcpy(buf[0..7], "escaped");
    const iov = [_]Iovec{.{ .base = buf.ptr, .len = 7 }};
    _ = wasi.fd_write(fd, &iov, 1, &n);
    return "written";
}
''',
    talk='const std = @import("std");\n\nfn talk(s: []const u8) usize {\n'
         '    std.log.info("out: {s}", .{s});\n    std.log.err("err: {s}", .{s});\n'
         "    return std.unicode.utf8CountCodepoints(s) catch 0;\n}\n",
    console_levels=("info", "error"),
    linger=None,
    hoard='''const std = @import("std");

var kept: u32 = 0;

fn hoard(mb: u32) u32 {
    var n: u32 = 0;
    while (n < mb) : (n += 1) {
        const block = std.heap.wasm_allocator.alloc(u8, 1 << 20) catch @panic("out of memory");
        @memset(block, 1);
        kept += 1;
    }
    return kept;
}
''',
    hoard_fds=None,
    victim=None,
    attacker=None,
    not_applicable={
        "identity[bytes]": "Zig's []const u8 is the string kind: there is no separate bytes type",
        "escape[connect]": _NO_HOST_API.format(what="sockets", api="socket connect"),
        "escape[spawn]": _NO_HOST_API.format(what="processes", api="process API"),
        "lingering": "wasm32-freestanding has no threads and no timers: nothing can outlive a call",
        "hoard_fds": "the function's WASI has no preopened directory: no file can be opened",
        "isolation": _ONE_INSTANCE,
    },
)
