// Shared Pyodide host for functions-nb: one node process per kernel, one Python interpreter
// (its own Pyodide instance, restored from a memory snapshot) per function.
//
// Started by functions_nb/runtimes/pyodide.py; speaks docs/host-protocol.md:
//
//   node [permission flags] pyodide_host.mjs --pyodide DIR --guest FILE --config JSON
//        --request FD --reply FD --control FD [--snapshot FILE] [--heap-mb N] [--instances N]
//
// Threads: the main thread reads CANCEL frames from the control pipe and writes the interrupt
// buffer; Pyodide runs in a worker thread, which reads request frames and writes reply frames
// with blocking synchronous I/O, one request at a time (no event loop on the hot path).
//
// Instances: LOAD_INSTANCE (own op) restores a fresh interpreter for a function from the
// snapshot (the snapshot holds the interpreter, common stdlib modules and the compiled guest,
// functions_nb/hosts/pyodide_guest.py) and writes the function's dependency files (its
// pure-Python wheels' contents) into that interpreter's own file system; LOAD runs the cell in it; CALL calls it; UNLOAD drops
// it. Functions share no Python state: not globals, builtins, modules, files nor heap. At most
// --instances live at once (the least recently used goes; its next call loads it again). An
// instance that traps (a fatal Pyodide error) fails its own call (status CRASHED) and is
// dropped; the host and the other instances go on. Without --snapshot the host makes one at
// start (SNAPSHOT hands it to the parent, which keeps it in its cache).
//
// Limits, per instance, set around every request (Python holds no JavaScript object):
// dlmalloc's footprint limit lets the instance's heap grow by at most its memory limit over
// its size when created (what it keeps across calls counts); file data written during a
// request counts against the same limit (over it, writes fail ENOSPC and the call is reported
// as over its memory limit); files created during a request are removed when it ends, and
// files that existed before may not be written. Between its requests an instance's heap may
// not grow and it may write no file (work it left scheduled is cancelled by the guest). Growing any WASM memory past --heap-mb for
// all instances together fails (MemoryError in the instance that grew).
//
// Hardening: once an instance is set up, its WASM module may no longer use JavaScript: its
// imports refuse, except the C library's system calls, clocks and signals and the few imports of
// Pyodide's JavaScript interface the host's own calls need to pass strings (so no JsProxy or
// PyProxy operation, no conversion of JavaScript objects, no dlopen/dlsym, no libffi calls for
// ctypes, no system(), and any import a newer Pyodide adds is refused too). The imports are wrapped here, in JavaScript, when the module is instantiated: nothing
// in Python (not even raw memory) can unwrap them; a refused import ends that instance's
// interpreter (status CRASHED), not the host. No WASM is compiled while Python runs. The guest
// drops the JavaScript objects Pyodide's Python modules held (the `js` and `pyodide_js`
// modules among them); its import block only gives a clear message. Also: Function/
// AsyncFunction/GeneratorFunction constructors and `eval` throw (no code from strings);
// mountNodeFS, mountNativeFS, NODEFS and package loading are removed; `process` is absent from
// the worker's global scope while Python runs. The outer boundary: node's permission model and
// bubblewrap.

import { Worker, isMainThread, workerData } from "node:worker_threads";
import crypto from "node:crypto";
import fs from "node:fs";
import os from "node:os";
import { pathToFileURL } from "node:url";

const MB = 1024 * 1024;
const HEADER = 9;
const Op = { LOAD: 1, CALL: 2, CANCEL: 3, UNLOAD: 4, PING: 5, LOAD_INSTANCE: 16, ANALYSE: 17, SNAPSHOT: 18 };
const Status = { OK: 0, ERROR: 1, INTERRUPTED: 2, MEMORY: 3, HOST_ERROR: 5, GONE: 6, READY: 7, CRASHED: 17 };
const ENOSPC = 51;
const EROFS = 69;
const PRELOAD = [
  "base64", "io", "json", "linecache", "logging", "traceback", "types", "typing", // the guest
  "collections", "dataclasses", "datetime", "decimal", "enum", "fractions", "functools",
  "hashlib", "itertools", "math", "random", "re", "statistics", "string", "textwrap",
];

function parseArgs(argv) {
  const opts = { pyodide: "", guest: "", config: "{}", request: -1, reply: -1, control: -1,
                 snapshot: "", heapMb: 1536, instances: 32 };
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    const next = () => argv[++i];
    if (a === "--pyodide") opts.pyodide = next();
    else if (a === "--guest") opts.guest = next();
    else if (a === "--config") opts.config = next();
    else if (a === "--request") opts.request = Number(next());
    else if (a === "--reply") opts.reply = Number(next());
    else if (a === "--control") opts.control = Number(next());
    else if (a === "--snapshot") opts.snapshot = next();
    else if (a === "--heap-mb") opts.heapMb = Number(next());
    else if (a === "--instances") opts.instances = Number(next());
  }
  return opts;
}

// -- main thread: start the worker, relay CANCEL frames to the interrupt buffer -------------------
function main() {
  const opts = parseArgs(process.argv.slice(2));
  // [0] interrupt (Pyodide's buffer), [1] the request id running, [2] the last id cancelled
  const shared = new SharedArrayBuffer(12);
  const flags = new Int32Array(shared);
  const worker = new Worker(new URL(import.meta.url), { workerData: { opts, shared, t0: Date.now() } });
  if (opts.control >= 0) {
    let pending = Buffer.alloc(0);
    const control = fs.createReadStream("", { fd: opts.control, highWaterMark: 4096 });
    control.on("data", (chunk) => {
      pending = Buffer.concat([pending, chunk]);
      while (pending.length >= HEADER && pending.length >= HEADER + pending.readUInt32LE(0)) {
        const n = pending.readUInt32LE(0);
        if (pending[8] === Op.CANCEL && n >= 4) {
          const target = pending.readUInt32LE(HEADER) | 0;
          Atomics.store(flags, 2, target);
          if (Atomics.load(flags, 1) === target) Atomics.store(flags, 0, 2); // SIGINT
        }
        pending = pending.subarray(HEADER + n);
      }
    });
    control.on("error", () => {});
  }
  worker.on("error", (e) => {
    fs.writeSync(2, `pyodide host: worker failed: ${e && e.stack ? e.stack : e}\n`);
    process.exit(70);
  });
  worker.on("exit", (code) => process.exit(code ?? 0));
}

// -- frames ---------------------------------------------------------------------------------------
function readFully(fd, buf) {
  let off = 0;
  while (off < buf.length) {
    let n;
    try {
      n = fs.readSync(fd, buf, off, buf.length - off, null);
    } catch (e) {
      if (e.code === "EAGAIN") continue;
      throw e;
    }
    if (n === 0) return false;
    off += n;
  }
  return true;
}

// The next request {id, op, body: Buffer}; null at the end of input.
function frameReader(fd) {
  const header = Buffer.alloc(HEADER);
  return function next() {
    if (!readFully(fd, header)) return null;
    const body = Buffer.alloc(header.readUInt32LE(0));
    if (body.length && !readFully(fd, body)) return null;
    return { id: header.readUInt32LE(4), op: header[8], body };
  };
}

function writeFrame(fd, id, status, body) {
  const data = typeof body === "string" ? Buffer.from(body, "utf8") : body;
  const out = Buffer.allocUnsafe(HEADER + data.length);
  out.writeUInt32LE(data.length, 0);
  out.writeUInt32LE(id >>> 0, 4);
  out[8] = status;
  data.copy(out, HEADER);
  let off = 0;
  while (off < out.length) {
    try {
      off += fs.writeSync(fd, out, off, out.length - off);
    } catch (e) {
      if (e.code !== "EAGAIN") throw e;
    }
  }
}

// -- hardening ------------------------------------------------------------------------------------
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
}

// -- the JavaScript an instance's WASM module may use once it is set up -----------------------------
// Its imports are refused after set-up, unless listed here (an import a newer Pyodide adds is
// refused until it is): the C library's system calls, clocks, signals and memory growth...
const SYSTEM = new RegExp("^(__syscall_|fd_|clock_|environ_|args_|proc_exit$|random_get$|" +
  "emscripten_(get_now|date_now|get_heap_max|resize_heap|log_impl_js|runtime_keepalive_push|" +
  "runtime_keepalive_pop)$|_emscripten_(get_progname|runtime_keepalive_clear|lookup_name|" +
  "log_formatted)$|_(tzset|abort|mmap|munmap|msync|localtime|gmtime|mktime|timegm|setitimer)_js$|" +
  "__call_sighandler$|_Py_CheckEmscriptenSignals_Helper$|_PyEM_TrampolineCall_JS$|" +
  "_Py_emscripten_runtime$|__assert_fail$|exit$|getprotobyname$|getaddrinfo$|getnameinfo$|" +
  "_try_(fcntl64|shutdown)$|_maybe_(connect|recvfrom|sendto|poll)_async$)");
// ...and of Pyodide's JavaScript interface only what the host's own calls need (their string
// arguments in, the string reply out). Refused: every other JsProxy/PyProxy operation and
// conversion of JavaScript objects, dlopen/dlsym, libffi (ctypes), system(), EM_ASM.
const HOST_CALLS = new Set([
  "JsvArray_Get", "JsvError_Check", "JsvNoValue_Check", "JsvUTF8ToString", "JsvNum_fromInt",
  "JsvNum_fromDouble", "JsvNum_toInt", "js2python_js", "js2python_immutable_js",
  "_python2js_ascii", "_python2js_ucs1", "_python2js_ucs2", "_python2js_ucs4", "can_run_sync_js",
]);
const REFUSED = "JavaScript is not available to functions (sandbox)";

// Wrap the imports in `env` that are refused after set-up (`env` is the object Emscripten keeps
// as its import table, so table entries and side-module lookups get the wrappers too); the
// gate they share.
function gateImports(env) {
  const gate = { locked: false };
  for (const name of Object.keys(env)) {
    const fn = env[name];
    if (typeof fn !== "function" || SYSTEM.test(name) || HOST_CALLS.has(name)) continue;
    const gated = function (...args) {
      if (gate.locked) throw new Error(`${REFUSED}: ${name} refused`);
      return fn.apply(this, args);
    };
    Object.assign(gated, fn); // .sig and the like
    env[name] = gated;
  }
  return gate;
}

// -- WASM: compiled once for every instance; memory capped per instance and for all -----------------
const memoryCaps = new WeakMap(); // WebAssembly.Memory -> bytes it may grow to
const memories = new Set(); // WeakRefs of every instance's memory
let lastMemory = null; // the memory of the module instantiated last
let lastGate = null; // the import gate of the module instantiated last
let pythonRunning = false; // no WASM is compiled while it is
function patchWasm(totalBytes) {
  const { instantiate, compile, Module } = WebAssembly;
  const noCompile = () => {
    if (pythonRunning) throw new WebAssembly.CompileError(`${REFUSED}: no WASM is compiled`);
  };
  const compiled = new Map(); // byte length -> [bytes, WebAssembly.Module]
  WebAssembly.instantiate = async function (source, imports) {
    noCompile();
    const env = imports && imports.env;
    const gate = env ? gateImports(env) : null;
    if (source instanceof WebAssembly.Module) return instantiate.call(this, source, imports);
    const bytes = Buffer.from(ArrayBuffer.isView(source) ? source.buffer : source,
                              source.byteOffset ?? 0, source.byteLength);
    let hit = compiled.get(bytes.length);
    if (hit === undefined || !hit[0].equals(bytes)) {
      hit = [Buffer.from(bytes), await compile(bytes)];
      compiled.set(bytes.length, hit);
    }
    const instance = await instantiate.call(this, hit[1], imports);
    if (instance.exports.memory instanceof WebAssembly.Memory) {
      lastMemory = instance.exports.memory;
      lastGate = gate;
    }
    return { instance, module: hit[1] };
  };
  WebAssembly.compile = async function (...args) {
    noCompile();
    return compile.apply(this, args);
  };
  WebAssembly.Module = new Proxy(Module, {
    construct(target, args, newTarget) {
      noCompile();
      return Reflect.construct(target, args, newTarget);
    },
  });
  for (const name of ["compileStreaming", "instantiateStreaming"]) delete WebAssembly[name];
  const grow = WebAssembly.Memory.prototype.grow;
  Object.defineProperty(WebAssembly.Memory.prototype, "grow", {
    value: function (pages) {
      const after = this.buffer.byteLength + pages * 65536;
      let total = pages * 65536;
      for (const ref of memories) {
        const m = ref.deref();
        if (m === undefined) memories.delete(ref);
        else total += m.buffer.byteLength;
      }
      if (after > (memoryCaps.get(this) ?? Infinity) || total > totalBytes) {
        throw new RangeError("functions-nb: WASM heap cap reached");
      }
      return grow.call(this, pages);
    },
    writable: false,
    configurable: false,
  });
}

// -- one function's interpreter ---------------------------------------------------------------------
class Instance {
  constructor(py, handle, memory, limit) {
    this.py = py;
    this.memory = memory;
    this.handle = handle;
    this.M = py._module;
    this.limit = limit;
    this.base = this.M._malloc_footprint() >>> 0;
    this.baseFiles = this.openFiles();
    this.files = null; // during a request: Map(node created -> bytes counted)
    this.fileBytes = 0;
    this.filesOver = false;
    this.installing = false;
    this.used = 0;
    this.setLimit(limit);
    memories.add(new WeakRef(memory));
    this.watchFiles();
  }

  setLimit(limit) {
    this.limit = limit;
    memoryCaps.set(this.memory, this.M.HEAP8.length + limit + 16 * MB);
  }

  // Files: count what a request writes against its memory limit; forget it afterwards.
  watchFiles() {
    const inst = this;
    const { MEMFS, FS } = this.M;
    const originalCreate = MEMFS.createNode;
    MEMFS.createNode = function (...args) {
      const node = originalCreate.apply(this, args);
      if (inst.files !== null) inst.files.set(node, 0);
      return node;
    };
    const grew = (node, size) => {
      if (inst.installing) return; // the function's own packages, written by the host
      if (inst.files === null) throw new FS.ErrnoError(EROFS); // outside its requests
      const counted = inst.files.get(node);
      if (counted === undefined) throw new FS.ErrnoError(EROFS); // it existed before the call
      const after = inst.fileBytes + size - counted;
      const heap = (inst.M._malloc_footprint() >>> 0) - inst.base;
      if (size > counted && after + heap > inst.limit) {
        inst.filesOver = true;
        throw new FS.ErrnoError(ENOSPC);
      }
      inst.fileBytes = after;
      inst.files.set(node, size);
      inst.M._malloc_set_footprint_limit(inst.base + Math.max(0, inst.limit - after));
    };
    const stream = MEMFS.ops_table.file.stream;
    const write = stream.write;
    stream.write = function (s, buffer, offset, length, position, canOwn) {
      if (length > 0) grew(s.node, Math.max(s.node.usedBytes, position + length));
      return write.call(this, s, buffer, offset, length, position, canOwn);
    };
    const resize = MEMFS.resizeFileStorage;
    MEMFS.resizeFileStorage = function (node, size) {
      grew(node, size);
      return resize.call(this, node, size);
    };
    const dirOps = MEMFS.ops_table.dir.node;
    const unlink = dirOps.unlink;
    dirOps.unlink = function (parent, name) {
      const node = parent.contents && parent.contents[name];
      if (inst.files !== null && node && inst.files.has(node)) {
        inst.fileBytes -= inst.files.get(node);
        inst.files.set(node, 0);
      }
      return unlink.call(this, parent, name);
    };
  }

  // The function's dependency files (relative path -> base64), written under `site` before
  // its cell runs: read-only to it (they exist before its requests) and not counted against
  // its memory limit. A path that is not plain and relative is refused (nothing is written
  // outside `site`).
  install(site, files) {
    const { FS } = this.M;
    const entries = Object.entries(files);
    for (const [path, data] of entries) {
      const parts = path.split("/");
      if (typeof data !== "string" || path.startsWith("/") || path.includes("\\") ||
          path.includes("\0") || parts.some((p) => p === "" || p === "." || p === "..")) {
        throw new Error(`refused dependency file path ${JSON.stringify(path.slice(0, 100))}`);
      }
    }
    this.installing = true;
    try {
      FS.mkdirTree(site);
      for (const [path, data] of entries) {
        const full = `${site}/${path}`;
        FS.mkdirTree(full.slice(0, full.lastIndexOf("/")));
        FS.writeFile(full, Buffer.from(data, "base64"));
      }
    } finally {
      this.installing = false;
    }
    return entries.length;
  }

  openFiles() {
    let n = 0;
    for (const stream of this.M.FS.streams) if (stream) n++;
    return n;
  }

  // Run one request under the instance's limits; the reply text with the host's fields added:
  // m the heap footprint, h what it held before (over a fresh interpreter), o the files it
  // held open before, f whether a file write went over the limit.
  run(op, body) {
    const M = this.M;
    const start = M._malloc_footprint() >>> 0;
    const open = Math.max(0, this.openFiles() - this.baseFiles);
    M._malloc_set_footprint_limit(this.base + this.limit);
    this.files = new Map();
    this.fileBytes = 0;
    this.filesOver = false;
    let out;
    pythonRunning = true;
    try {
      out = this.handle(op, body);
    } finally {
      pythonRunning = false;
      this.removeFiles();
      if ((M._malloc_footprint() >>> 0) > start + MB) M._malloc_trim(0);
    }
    const footprint = M._malloc_footprint() >>> 0;
    M._malloc_set_footprint_limit(footprint); // no growth until its next request
    return {
      status: Number(out.slice(0, 2)),
      body: `${out.slice(2, -1)},"m":${footprint},"h":${Math.max(0, start - this.base)},"o":${open},"f":${this.filesOver ? 1 : 0}}`,
    };
  }

  // Files created during the request leave with it (their data too, even if still open).
  removeFiles() {
    const files = this.files;
    this.files = null;
    const { FS } = this.M;
    for (const node of [...files.keys()].reverse()) {
      try {
        if (node.parent && node.parent.contents && node.parent.contents[node.name] === node) {
          const path = FS.getPath(node);
          if (FS.isDir(node.mode)) FS.rmdir(path);
          else FS.unlink(path);
        }
      } catch {
        // moved or not empty: its data is dropped below
      }
      if (FS.isFile(node.mode)) {
        node.contents = null;
        node.usedBytes = 0;
      }
    }
  }
}

// -- worker: the instances and the request loop ------------------------------------------------------
async function worker() {
  const proc = process; // put back only while an instance is created (Pyodide looks for it)
  const { opts, shared, t0 } = workerData;
  const flags = new Int32Array(shared);
  const interrupt = new Int32Array(shared, 0, 1);
  const config = JSON.parse(opts.config);
  const guestSource = fs.readFileSync(opts.guest, "utf8");
  const digest = crypto.createHash("sha256").update(guestSource).digest("hex").slice(0, 16);
  const next = frameReader(opts.request);
  const reply = (id, status, body) => writeFrame(opts.reply, id, status, body);
  // Pyodide's start-up calls process.binding('constants'), which the permission model denies.
  process.binding = () => ({ fs: fs.constants, os: os.constants });
  patchWasm(opts.heapMb * MB);
  const { loadPyodide } = await import(pathToFileURL(`${opts.pyodide}/pyodide.mjs`).href);
  const pyodideConfig = {
    indexURL: `${opts.pyodide}/`,
    jsglobals: Object.create(null),
    env: { HOME: "/home/pyodide" },
    stdout: () => {},
    stderr: () => {},
  };

  let snapshot = null;
  let made = false;
  if (opts.snapshot) {
    try {
      snapshot = fs.readFileSync(opts.snapshot);
    } catch (e) {
      fs.writeSync(2, `pyodide host: snapshot not read (${e.message})\n`);
    }
  }
  if (snapshot === null) {
    // A fresh interpreter with the modules the guest and typical cells import, and the guest
    // compiled as the module `_fnb_guest`: every instance starts from its memory.
    const py = await loadPyodide({ ...pyodideConfig, _makeSnapshot: true });
    py.runPython(`import ${PRELOAD.join(", ")}`);
    const scope = py.toPy({ src: guestSource, digest });
    py.runPython(
      "import sys, types\nmodule = types.ModuleType('_fnb_guest')\n" +
      "exec(compile(src, 'pyodide_guest', 'exec', dont_inherit=True), module.__dict__)\n" +
      "module.digest = digest\nsys.modules['_fnb_guest'] = module\ndel module\n",
      { globals: scope });
    scope.destroy();
    snapshot = py.makeMemorySnapshot();
    made = true;
  }

  blockCodeGeneration();
  delete globalThis.process;

  async function newInstance(limit) {
    globalThis.process = proc;
    let py;
    lastMemory = null;
    lastGate = null;
    try {
      py = await loadPyodide({ ...pyodideConfig, _loadSnapshot: snapshot });
    } finally {
      delete globalThis.process;
    }
    const memory = lastMemory;
    const gate = lastGate;
    if (memory === null || gate === null) throw new Error("the instance's WASM module was not found");
    const modules = py.pyimport("sys").modules;
    const module = modules.get("_fnb_guest");
    if (!module || module.digest !== digest) throw new Error("the snapshot holds another guest program");
    const init = module.init;
    modules.delete("_fnb_guest");
    const handle = init(opts.config);
    for (const p of [init, module, modules]) p.destroy();
    py.setInterruptBuffer(interrupt);
    harden(py);
    gate.locked = true; // from here on, its Python has no JavaScript
    return new Instance(py, handle, memory, limit);
  }

  // A first instance proves the snapshot works before the host says it is ready; the first
  // function loaded gets it.
  const created = performance.now();
  let spare = await newInstance(0);
  const instanceMs = performance.now() - created;
  const instances = new Map(); // function id -> Instance, least recently used first
  let service = null; // for ANALYSE
  reply(0, Status.READY, JSON.stringify({
    pyodide: spare.py.version, start_ms: Date.now() - t0, instance_ms: Math.round(instanceMs),
    instance_heap: spare.M.HEAP8.length, snapshot_made: made, snapshot_bytes: snapshot.length,
  }));
  if (!made) snapshot = Buffer.from(snapshot.buffer, snapshot.byteOffset, snapshot.length);

  async function take(limit) {
    let inst = spare;
    spare = null;
    if (inst === null) {
      while (instances.size >= opts.instances) instances.delete(instances.keys().next().value);
      inst = await newInstance(limit);
    }
    inst.setLimit(limit);
    return inst;
  }

  function serve(inst, id, op, body) {
    Atomics.store(flags, 0, 0);
    Atomics.store(flags, 1, id | 0);
    try {
      if (Atomics.load(flags, 2) === (id | 0)) return { status: Status.INTERRUPTED, body: "{}" };
      return inst.run(op, body);
    } finally {
      Atomics.store(flags, 1, 0);
    }
  }

  for (;;) {
    const req = next();
    if (req === null) return;
    const { id, op, body } = req;
    try {
      if (op === Op.CALL || op === Op.LOAD) {
        const fid = body.readUInt32LE(0);
        const inst = instances.get(fid);
        if (inst === undefined) {
          reply(id, Status.GONE, "{}");
          continue;
        }
        instances.delete(fid); // most recently used last
        instances.set(fid, inst);
        let out;
        try {
          out = serve(inst, id, op, body.toString("utf8", 4));
        } catch (e) {
          instances.delete(fid);
          out = { status: Status.CRASHED, body: JSON.stringify({ t: String(e && e.message ? e.message : e).slice(0, 2000) }) };
        }
        reply(id, out.status, out.body);
      } else if (op === Op.LOAD_INSTANCE) {
        const { fid, limit, site, files } = JSON.parse(body.toString("utf8"));
        instances.delete(fid);
        const t = performance.now();
        const inst = await take(limit);
        if (files) inst.install(site, files); // a refused path: the instance is not kept
        instances.set(fid, inst);
        reply(id, Status.OK, JSON.stringify({ ms: performance.now() - t, heap: inst.M.HEAP8.length, base: inst.base }));
      } else if (op === Op.UNLOAD) {
        instances.delete(body.readUInt32LE(0));
      } else if (op === Op.ANALYSE) {
        if (service === null) service = await take(256 * MB);
        let out;
        try {
          out = serve(service, id, op, body.toString("utf8"));
        } catch (e) {
          service = null;
          out = { status: Status.HOST_ERROR, body: JSON.stringify({ t: String(e && e.message ? e.message : e) }) };
        }
        reply(id, out.status, out.body);
      } else if (op === Op.PING) {
        reply(id, Status.OK, JSON.stringify({ functions: instances.size, instances: instances.size + (service ? 1 : 0) + (spare ? 1 : 0) }));
      } else if (op === Op.SNAPSHOT) {
        reply(id, made ? Status.OK : Status.HOST_ERROR, made ? Buffer.from(snapshot.buffer, snapshot.byteOffset, snapshot.length) : "{}");
      } else if (op !== Op.CANCEL) {
        reply(id, Status.HOST_ERROR, JSON.stringify({ t: `unknown operation ${op}` }));
      }
    } catch (e) {
      reply(id, Status.HOST_ERROR, JSON.stringify({ t: String(e && e.stack ? e.stack : e).slice(0, 2000) }));
    }
  }
}

if (isMainThread) main();
else await worker();
