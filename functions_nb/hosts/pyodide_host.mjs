// Shared Pyodide host for functions-nb: one node process per kernel, many Python functions.
//
// Started by functions_nb/runtimes/pyodide.py (which documents the protocol and the sandbox):
//
//   node [permission flags] pyodide_host.mjs --pyodide DIR --in FD --out FD
//        [--snapshot FILE] [--make-snapshot] [--heap-mb N]
//
// Threads: the main thread only relays interrupts; Pyodide runs in a worker thread, which reads
// requests from fd IN and writes responses to fd OUT with blocking synchronous I/O (no event
// loop, no message passing on the hot path). Frames are lines: "<seq> <json>\n".
// The first request is the guest prelude (Python source, with its digest) and its config; the
// worker calls it and gets the dispatcher `handle(json) -> json` that serves every later
// request. Start-up: from --snapshot (a memory snapshot holding the interpreter, common stdlib
// modules and the compiled prelude), or a fresh interpreter that, with --make-snapshot, sends
// such a snapshot after its ready line ("0 {snapshot: N}\n" + N bytes) for the caller to keep.
//
// Interrupts: the main thread reads "<seq>\n" lines on stdin; if that request is still the one
// running, it writes SIGINT into Pyodide's interrupt buffer (a SharedArrayBuffer), so Python
// raises KeyboardInterrupt at its next check. A stale interrupt (another request runs by now)
// is ignored.
//
// Memory: dlmalloc's footprint limit caps how much memory Python may take from the WASM heap
// (per call, set by the guest through `api.begin`), and growing the WASM memory past the
// host cap throws, so malloc returns NULL and Python raises MemoryError. File data written to
// the in-memory filesystem during a call is charged to a budget of the same size.
//
// Hardening after start-up: the `js` and `pyodide_js` modules are unregistered and `js` is an
// empty null-prototype object anyway; the Function/AsyncFunction/GeneratorFunction constructors
// and `eval` throw (no code from strings, so no route from a JS object to `process`);
// mountNodeFS, mountNativeFS, NODEFS and package loading are removed; `process` is deleted from
// the worker's global scope. The real boundary is outside: node's permission model and bwrap.

import { Worker, isMainThread, workerData } from "node:worker_threads";
import fs from "node:fs";
import os from "node:os";
import { pathToFileURL } from "node:url";

const MB = 1024 * 1024;
const PRELOAD = [
  "base64", "io", "json", "linecache", "logging", "traceback", "types", // the guest prelude
  "collections", "dataclasses", "datetime", "decimal", "enum", "fractions", "functools",
  "hashlib", "itertools", "math", "random", "re", "statistics", "string", "textwrap", "typing",
];

function parseArgs(argv) {
  const opts = { pyodide: "", inFd: 0, outFd: 1, snapshot: "", makeSnapshot: false, heapMb: 1536 };
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    if (a === "--pyodide") opts.pyodide = argv[++i];
    else if (a === "--in") opts.inFd = Number(argv[++i]);
    else if (a === "--out") opts.outFd = Number(argv[++i]);
    else if (a === "--snapshot") opts.snapshot = argv[++i];
    else if (a === "--make-snapshot") opts.makeSnapshot = true;
    else if (a === "--heap-mb") opts.heapMb = Number(argv[++i]);
  }
  return opts;
}

function writeAll(fd, data) {
  const buf = typeof data === "string" ? Buffer.from(data, "utf8") : data;
  let off = 0;
  while (off < buf.length) {
    try {
      off += fs.writeSync(fd, buf, off, buf.length - off);
    } catch (e) {
      if (e.code !== "EAGAIN") throw e;
    }
  }
}

// -- main thread: start the worker, relay interrupts ------------------------------------------
function main() {
  const opts = parseArgs(process.argv.slice(2));
  const shared = new SharedArrayBuffer(8);
  const interrupt = new Int32Array(shared, 0, 1);
  const running = new Int32Array(shared, 4, 1);
  const worker = new Worker(new URL(import.meta.url), { workerData: { opts, shared, t0: Date.now() } });
  let pending = "";
  process.stdin.setEncoding("utf8");
  process.stdin.on("data", (chunk) => {
    pending += chunk;
    let nl;
    while ((nl = pending.indexOf("\n")) >= 0) {
      const seq = Number(pending.slice(0, nl));
      pending = pending.slice(nl + 1);
      if (seq > 0 && Atomics.load(running, 0) === seq) Atomics.store(interrupt, 0, 2);
    }
  });
  process.stdin.on("end", () => process.exit(0));
  worker.on("error", (e) => {
    writeAll(2, `pyodide host: worker failed: ${e && e.stack ? e.stack : e}\n`);
    process.exit(70);
  });
  worker.on("exit", (code) => process.exit(code ?? 0));
}

function lineReader(fd) {
  const chunk = Buffer.alloc(1 << 18);
  let rest = Buffer.alloc(0); // bytes after the last line returned
  function readChunk() {
    for (;;) {
      try {
        const n = fs.readSync(fd, chunk, 0, chunk.length, null);
        return n === 0 ? null : Buffer.from(chunk.subarray(0, n));
      } catch (e) {
        if (e.code !== "EAGAIN") throw e;
      }
    }
  }
  // The next line (without its newline) as a string; null at end of input.
  return function readLine() {
    let nl = rest.indexOf(10);
    if (nl >= 0) {
      const line = rest.toString("utf8", 0, nl);
      rest = rest.subarray(nl + 1);
      return line;
    }
    const parts = rest.length ? [rest] : [];
    for (;;) {
      const piece = readChunk();
      if (piece === null) return null;
      nl = piece.indexOf(10);
      if (nl < 0) {
        parts.push(piece);
        continue;
      }
      rest = piece.subarray(nl + 1);
      if (!parts.length) return piece.toString("utf8", 0, nl);
      parts.push(piece.subarray(0, nl));
      return Buffer.concat(parts).toString("utf8");
    }
  };
}

// The guest prelude is compiled once, when the snapshot is made, and kept in it as the module
// `_fnb_prelude` (compiling it in a fresh interpreter costs ~150-300 ms of lazy WASM code).
const DEFINE_PRELUDE = `
import sys, types
module = types.ModuleType("_fnb_prelude")
exec(compile(src, "prelude", "exec", dont_inherit=True), module.__dict__)
module.digest = digest
sys.modules["_fnb_prelude"] = module
del module
`;

function definePrelude(py, setup) {
  const scope = py.toPy({ src: setup.prelude, digest: setup.digest });
  py.runPython(DEFINE_PRELUDE, { globals: scope });
  scope.destroy();
}

// `_fnb_init` from the prelude module if it is the one we were sent; the module is removed.
function takePrelude(py, digest) {
  const modules = py.pyimport("sys").modules;
  const module = modules.get("_fnb_prelude");
  let init = null;
  if (module) {
    if (module.digest === digest) init = module._fnb_init.copy();
    modules.delete("_fnb_prelude");
    module.destroy();
  }
  modules.destroy();
  return init;
}

// -- worker: Pyodide and the request loop --------------------------------------------------------
function capWasmMemory(limitBytes) {
  const grow = WebAssembly.Memory.prototype.grow;
  Object.defineProperty(WebAssembly.Memory.prototype, "grow", {
    value: function (pages) {
      if (this.buffer.byteLength + pages * 65536 > limitBytes) {
        throw new RangeError("functions-nb: WASM heap cap reached");
      }
      return grow.call(this, pages);
    },
    writable: false,
    configurable: false,
  });
}

function blockCodeGeneration() {
  const blocked = function Function() {
    throw new EvalError("code generation from strings is disabled in this sandbox");
  };
  const protos = [
    Function.prototype,
    Object.getPrototypeOf(async function () {}),
    Object.getPrototypeOf(function* () {}),
    Object.getPrototypeOf(async function* () {}),
  ];
  for (const proto of protos) {
    Object.defineProperty(proto, "constructor", { value: blocked, writable: false, configurable: false });
  }
  globalThis.eval = blocked;
}

function harden(py) {
  for (const name of ["js", "pyodide_js"]) {
    try {
      py.unregisterJsModule(name);
    } catch {
      // not registered: nothing to remove
    }
  }
  const refuse = (what) => () => {
    throw new Error(`${what} is disabled in this sandbox`);
  };
  for (const name of ["mountNodeFS", "mountNativeFS", "loadPackage", "loadPackagesFromImports", "registerJsModule"]) {
    try {
      Object.defineProperty(py, name, { value: refuse(name), writable: false, configurable: false });
    } catch {
      // a non-configurable property: leave it (unreachable from Python anyway)
    }
  }
  const filesystems = py.FS && py.FS.filesystems;
  if (filesystems) {
    delete filesystems.NODEFS;
    delete filesystems.NODERAWFS;
  }
  blockCodeGeneration();
  delete globalThis.process;
}

async function worker() {
  const proc = process; // kept: `process` is deleted from the global scope by harden()
  const { opts, shared, t0 } = workerData;
  const phases = { worker: Date.now() - t0 };
  const interrupt = new Int32Array(shared, 0, 1);
  const running = new Int32Array(shared, 4, 1);
  const heapCap = opts.heapMb * MB;
  const readLine = lineReader(opts.inFd);
  const setupLine = readLine();
  if (setupLine === null) return;
  const setup = JSON.parse(setupLine.slice(setupLine.indexOf(" ") + 1));
  // Pyodide's start-up calls process.binding('constants'), which the permission model denies.
  process.binding = () => ({ fs: fs.constants, os: os.constants });
  capWasmMemory(heapCap + 64 * MB);
  const started = performance.now();
  const { loadPyodide } = await import(pathToFileURL(`${opts.pyodide}/pyodide.mjs`).href);
  phases.import = Date.now() - t0;
  const config = {
    indexURL: `${opts.pyodide}/`,
    jsglobals: Object.create(null),
    env: { HOME: "/home/pyodide" },
    stdout: () => {},
    stderr: () => {},
  };
  let py = null;
  let fromSnapshot = false;
  if (opts.snapshot) {
    try {
      py = await loadPyodide({ ...config, _loadSnapshot: fs.readFileSync(opts.snapshot) });
      fromSnapshot = true;
    } catch (e) {
      writeAll(2, `pyodide host: snapshot not used (${e.message})\n`);
      py = null;
    }
  }
  let snapshot = null;
  if (py === null) {
    py = await loadPyodide({ ...config, _makeSnapshot: opts.makeSnapshot });
    if (opts.makeSnapshot) {
      // Modules the guest prelude and typical cells import, and the prelude itself, are part
      // of the snapshot, so a host started from it does not compile them again.
      py.runPython(`import ${PRELOAD.join(", ")}`);
      definePrelude(py, setup);
      snapshot = py.makeMemorySnapshot();
    }
  }
  const loadMs = performance.now() - started;
  phases.loaded = Date.now() - t0;

  const M = py._module;
  M._malloc_set_footprint_limit(heapCap);
  // Files live in MEMFS as JS typed arrays, outside the WASM heap: during a call, growing them
  // is charged to a budget of its own (the call's memory limit); over it, writes fail ENOSPC.
  let fileBudget = Infinity;
  for (const name of ["expandFileStorage", "resizeFileStorage"]) {
    const original = M.MEMFS[name];
    M.MEMFS[name] = function (node, size) {
      const grow = size - (node.contents ? node.contents.length : 0);
      if (grow > 0) {
        if (grow > fileBudget) throw new M.FS.ErrnoError(51); // ENOSPC
        fileBudget -= grow;
      }
      return original.call(this, node, size);
    };
  }
  const api = {
    // Per-call limit: Python may take at most `limit` more bytes from the WASM heap.
    begin(limit) {
      const footprint = M._malloc_footprint() >>> 0;
      M._malloc_set_footprint_limit(Math.min(footprint + limit, heapCap));
      fileBudget = limit;
      return footprint;
    },
    // Back to the host cap; give memory at the top of the heap back when the call grew it by
    // more than 1 MB over `footprint` (what begin() returned). Returns the footprint now.
    end(footprint) {
      M._malloc_set_footprint_limit(heapCap);
      fileBudget = Infinity;
      if ((M._malloc_footprint() >>> 0) > footprint + MB) M._malloc_trim(0);
      return M._malloc_footprint() >>> 0;
    },
    heap() {
      return M.HEAP8.length;
    },
  };

  let init = takePrelude(py, setup.digest);
  if (init === null) {
    definePrelude(py, setup);
    init = takePrelude(py, setup.digest);
  }
  const handle = init(api, JSON.stringify(setup.config));
  init.destroy();
  py.setInterruptBuffer(interrupt);
  harden(py);
  phases.ready = Date.now() - t0;
  const info = {
    phases,
    ready: true,
    pyodide: py.version,
    load_ms: Math.round(loadMs),
    snapshot: fromSnapshot,
    heap: M.HEAP8.length,
  };
  writeAll(opts.outFd, `0 ${JSON.stringify(info)}\n`);
  if (snapshot !== null) {
    writeAll(opts.outFd, `0 ${JSON.stringify({ snapshot: snapshot.length })}\n`);
    writeAll(opts.outFd, Buffer.from(snapshot.buffer, snapshot.byteOffset, snapshot.length));
    snapshot = null;
  }

  for (;;) {
    const line = readLine();
    if (line === null) return;
    const space = line.indexOf(" ");
    const seq = Number(line.slice(0, space));
    Atomics.store(interrupt, 0, 0);
    Atomics.store(running, 0, seq);
    let out;
    try {
      out = handle(line.slice(space + 1));
    } catch (e) {
      const fatal = Boolean(e && (e.pyodide_fatal_error || /fatally failed/.test(String(e.message))));
      const text = String(e && e.message ? e.message : e);
      out = JSON.stringify([1, fatal ? "fatal" : "host", text, null, [], 0, 0]);
      if (fatal) {
        writeAll(opts.outFd, `${seq} ${out}\n`);
        proc.exit(71);
      }
    }
    Atomics.store(running, 0, 0);
    writeAll(opts.outFd, `${seq} ${out}\n`);
  }
}

if (isMainThread) main();
else await worker();
