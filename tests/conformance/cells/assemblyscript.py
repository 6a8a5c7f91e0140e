"""AssemblyScript cells (wasm in wasmtime: one instance per function)."""

from __future__ import annotations

from ..spec import Cells


def _id(ty: str) -> str:
    return "export function {name}(x: TYPE): TYPE {{\n  return x;\n}}\n".replace("TYPE", ty)


_NO_API = ("AssemblyScript's standard library has no {what}, and WASI preview1 (the only "
           "imports a module may name) has no {api}: the cell cannot express it")

CELLS = Cells(
    language="assemblyscript",
    identity={
        "i32": _id("i32"), "u32": _id("u32"), "i64": _id("i64"), "u64": _id("u64"),
        "f32": _id("f32"), "f64": _id("f64"), "bool": _id("bool"), "str": _id("string"),
        "bytes": _id("Uint8Array"), "list": _id("f64[]"), "dict": _id("Map<string, string>"),
        "f64[]": _id("Float64Array"),
    },
    # AssemblyScript has no dynamic JSON value: lists and maps are typed
    values={"list": ([1.5, -2.0, 1e300, 0.0],), "dict": ({"a": "x", "é✓": "", "": "q\"\n"},)},
    compile_error='export function broken(a: i32): i32 {\n  let b: i32 = "text";\n  return a + b;\n}\n',
    compile_error_line=2,
    boom='export function boom(x: i32): i32 {\n  if (x > 0) {\n'
         '    throw new Error("bad input " + x.toString());\n  }\n  return x;\n}\n',
    boom_line=3,
    spin="export function spin(n: i64): i64 {\n  let x = n;\n  while (n != 0) {\n"
         "    x = x * 31 + 1;\n  }\n  return x;\n}\n",
    bomb="export function bomb(mb: i32): i32 {\n  const kept = new Array<Uint8Array>();\n"
         "  for (let i = 0; i < mb; i++) {\n    const b = new Uint8Array(1 << 20);\n"
         "    b.fill(1);\n    kept.push(b);\n  }\n  return kept.length;\n}\n",
    escape='''@external("wasi_snapshot_preview1", "path_open")
declare function path_open(fd: i32, dirflags: i32, path: usize, len: i32, oflags: i32,
  rights: i64, inheriting: i64, fdflags: i32, opened: usize): i32;

export function escape(what: string, arg: string): string {
  if (what == "env") {
    if (process.env.has(arg)) return process.env.get(arg);
    return "not set; " + process.env.keys().join(",");
  }
  if (what != "read" && what != "write") return "unknown";
  const path = String.UTF8.encode(arg.startsWith("/") ? arg.slice(1) : arg);
  const fd = new StaticArray<i32>(1);
  const errno = path_open(3, 0, changetype<usize>(path), path.byteLength, what == "read" ? 0 : 1,
    what == "read" ? 2 : 64, 0, 0, changetype<usize>(fd));
  return errno == 0 ? "opened" : "refused: errno " + errno.toString();
}
''',
    talk='export function talk(s: string): i32 {\n  console.log("out: " + s);\n'
         '  console.error("err: " + s);\n  return s.length;\n}\n',
    linger=None,
    hoard="const kept = new Array<Uint8Array>();\n\nexport function hoard(mb: i32): i32 {\n"
          "  for (let i = 0; i < mb; i++) {\n    const b = new Uint8Array(1 << 20);\n"
          "    b.fill(1);\n    kept.push(b);\n  }\n  return kept.length;\n}\n",
    hoard_fds=None,
    victim=None,
    attacker=None,
    not_applicable={
        "escape[connect]": _NO_API.format(what="sockets", api="socket connect"),
        "escape[spawn]": _NO_API.format(what="processes", api="process API"),
        "lingering": "AssemblyScript has no threads, timers or promises: nothing can outlive a "
                     "call",
        "hoard_fds": "the function's WASI has no preopened directory: no file can be opened",
        "isolation": "each function is its own WebAssembly instance: there is no shared host "
                     "state for one function to reach another through",
    },
)
