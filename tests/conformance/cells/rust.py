"""Rust cells (wasm32-unknown-unknown in wasmtime: one instance per function)."""

from __future__ import annotations

from ..spec import Cells


def _id(ty: str) -> str:
    return "fn {name}(x: TYPE) -> TYPE {{\n    x\n}}\n".replace("TYPE", ty)


CELLS = Cells(
    language="rust",
    identity={
        "i32": _id("i32"), "u32": _id("u32"), "i64": _id("i64"), "u64": _id("u64"),
        "f32": _id("f32"), "f64": _id("f64"), "bool": _id("bool"), "str": _id("String"),
        "bytes": _id("Vec<u8>"), "list": _id("serde_json::Value"),
        "dict": _id("serde_json::Value"), "f64[]": _id("Vec<f64>"),
    },
    compile_error="fn broken(a: i32) -> i32 {\n    let b: i32 = \"text\";\n    a + b\n}\n",
    compile_error_line=2,
    boom="fn boom(x: i32) -> i32 {\n    if x > 0 {\n        panic!(\"bad input {}\", x);\n    }\n"
         "    x\n}\n",
    boom_line=3,
    spin="fn spin(n: u64) -> u64 {\n    let mut x = n;\n    while n != 0 {\n"
         "        x = unsafe { std::ptr::read_volatile(&x) }.wrapping_mul(31);\n    }\n    x\n}\n",
    bomb="fn bomb(mb: u32) -> u32 {\n    let mut kept: Vec<Vec<u8>> = Vec::new();\n"
         "    for _ in 0..mb {\n        kept.push(vec![1u8; 1 << 20]);\n    }\n"
         "    kept.len() as u32\n}\n",
    escape='''use std::io::Write;

fn escape(what: &str, arg: &str) -> String {
    let r: Result<String, std::io::Error> = match what {
        "read" => std::fs::read_to_string(arg),
        "write" => std::fs::File::create(arg).and_then(|mut f| f.write_all(b"escaped"))
            .map(|_| "written".to_string()),
        "connect" => std::net::TcpStream::connect(arg)
            .and_then(|mut s| s.write_all(b"escaped")).map(|_| "connected".to_string()),
        "spawn" => std::process::Command::new("/bin/sh").arg("-c").arg(arg).output()
            .map(|o| String::from_utf8_lossy(&o.stdout).into_owned()),
        "env" => Ok(format!("{:?} {:?}", std::env::var(arg),
                            std::env::vars().collect::<Vec<_>>())),
        _ => Ok("unknown".to_string()),
    };
    match r {
        Ok(v) => v,
        Err(e) => format!("refused: {}", e),
    }
}
''',
    talk="fn talk(s: &str) -> usize {\n    println!(\"out: {}\", s);\n    eprintln!(\"err: {}\", s);\n"
         "    s.chars().count()\n}\n",
    linger='''use std::sync::atomic::{AtomicU64, Ordering};

static COUNT: AtomicU64 = AtomicU64::new(0);

fn linger(op: &str) -> u64 {
    if op == "start" {
        std::thread::spawn(|| loop {
            COUNT.fetch_add(1, Ordering::Relaxed);
        });
    }
    COUNT.load(Ordering::Relaxed)
}
''',
    hoard='''static mut KEPT: Vec<Vec<u8>> = Vec::new();

fn hoard(mb: u32) -> u32 {
    let kept = unsafe { &mut *std::ptr::addr_of_mut!(KEPT) };
    for _ in 0..mb {
        kept.push(vec![1u8; 1 << 20]);
    }
    kept.len() as u32
}
''',
    hoard_fds=None,
    victim=None,
    attacker=None,
    not_applicable={
        "hoard_fds": "wasm32-unknown-unknown has no files to open (std::fs always fails)",
        "isolation": "each function is its own WebAssembly instance: there is no shared host "
                     "state for one function to reach another through",
    },
)
