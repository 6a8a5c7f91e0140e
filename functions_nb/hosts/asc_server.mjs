// functions-nb: a long-lived AssemblyScript compiler for AssemblyScript cells.
//
// Usage: node asc_server.mjs <node_modules dir>
// Speaks one JSON object per line. On start it writes
//   {"ready": true, "version": "<asc version>", "patched": <n>}
// then, for every request line {"id": n, "files": {"cell.ts": "..."}, "args": ["-O3", ...]},
// compiles "cell.ts" entirely in memory (the compiler can read only the files in the request
// and its own standard library, and writes nothing to disk) and answers
//   {"id": n, "ok": bool, "wasm": "<base64>" | null, "stderr": "<diagnostics>", "ms": <float>}.
// Requests are handled one at a time, in order.
//
// The standard library's allocators trap with a bare `unreachable` when memory.grow fails; the
// patch below makes them report the failed size through the host import fnb.oom first, so a
// memory bomb is told apart from any other trap (the host raises LimitExceeded).

import path from "node:path";
import readline from "node:readline";
import { pathToFileURL } from "node:url";

const out = process.stdout;
const send = (obj) => out.write(JSON.stringify(obj) + "\n");
// Nothing but protocol lines on stdout.
for (const level of ["log", "info", "warn", "debug"]) console[level] = console.error;

const nodeModules = process.argv[2];
const ascUrl = pathToFileURL(path.join(nodeModules, "assemblyscript", "dist", "asc.js")).href;
const asc = (await import(ascUrl)).default;

const OOM_DECL = '\n// @ts-ignore: decorator\n@external("fnb", "oom") declare function __fnb_oom(size: u32): void;\n';
const PATCHES = {
  "rt/tlsf": [
    ["if (memory.grow(pagesNeeded) < 0) unreachable();",
     "if (memory.grow(pagesNeeded) < 0) { __fnb_oom(<u32>size); unreachable(); }"],
    ["if (size > BLOCK_MAXSIZE) throw new Error(E_ALLOCATION_TOO_LARGE);",
     "if (size > BLOCK_MAXSIZE) { __fnb_oom(<u32>size); throw new Error(E_ALLOCATION_TOO_LARGE); }"],
  ],
  "rt/stub": [
    ["if (memory.grow(pagesNeeded) < 0) unreachable(); // out of memory",
     "if (memory.grow(pagesNeeded) < 0) { __fnb_oom(<u32>(newOffset - maxOffset)); unreachable(); }"],
    ["if (size > BLOCK_MAXSIZE) throw new Error(E_ALLOCATION_TOO_LARGE);",
     "if (size > BLOCK_MAXSIZE) { __fnb_oom(<u32>size); throw new Error(E_ALLOCATION_TOO_LARGE); }"],
  ],
  "rt/itcms": [
    ["if (size >= OBJECT_MAXSIZE) throw new Error(E_ALLOCATION_TOO_LARGE);",
     "if (size >= OBJECT_MAXSIZE) { __fnb_oom(<u32>size); throw new Error(E_ALLOCATION_TOO_LARGE); }"],
  ],
};

function patchLibrary(files) {
  let applied = 0;
  for (const [file, edits] of Object.entries(PATCHES)) {
    let text = files[file];
    if (typeof text !== "string") continue;
    for (const [from, to] of edits) {
      if (text.includes(from)) {
        text = text.split(from).join(to);
        applied++;
      }
    }
    if (text !== files[file]) files[file] = text + OOM_DECL;
  }
  return applied;
}

const patched = patchLibrary(asc.libraryFiles);

async function compile(request) {
  const files = request.files || {};
  const written = {};
  const stderr = asc.createMemoryStream();
  const stdout = asc.createMemoryStream();
  const started = performance.now();
  const norm = (name) => path.posix.normalize(String(name).replace(/\\/g, "/")).replace(/^\.\//, "");
  const result = await asc.main(["cell.ts", "--outFile", "out.wasm", ...(request.args || [])], {
    stdout,
    stderr,
    // In memory only: the cell cannot make the compiler read host files.
    readFile: (name) => (Object.hasOwn(files, norm(name)) ? files[norm(name)] : null),
    writeFile: (name, contents) => { written[norm(name)] = contents; },
    listFiles: () => [],
  });
  const wasm = written["out.wasm"];
  const ok = !result.error && wasm instanceof Uint8Array;
  let text = stderr.toString();
  if (result.error && !text.includes(String(result.error.message))) text += `\n${result.error.message}`;
  return {
    ok,
    wasm: ok ? Buffer.from(wasm.buffer, wasm.byteOffset, wasm.byteLength).toString("base64") : null,
    stderr: text,
    ms: performance.now() - started,
  };
}

send({ ready: true, version: asc.version, patched });

let queue = Promise.resolve();
const lines = readline.createInterface({ input: process.stdin, crlfDelay: Infinity });
lines.on("line", (line) => {
  if (!line.trim()) return;
  queue = queue.then(async () => {
    let request;
    try {
      request = JSON.parse(line);
    } catch (err) {
      send({ id: null, ok: false, wasm: null, stderr: `bad request: ${err.message}`, ms: 0 });
      return;
    }
    try {
      send({ id: request.id, ...(await compile(request)) });
    } catch (err) {
      send({ id: request.id, ok: false, wasm: null, stderr: `compiler crashed: ${err && err.stack || err}`, ms: 0 });
    }
  });
});
lines.on("close", () => { queue.then(() => process.exit(0)); });
