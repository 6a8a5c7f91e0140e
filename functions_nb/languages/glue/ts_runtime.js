// functions-nb V8 runtime prelude: evaluated once per isolate, before the cell's bundle.
// runtimes/v8.py replaces the FNB_CONFIG placeholder at the end with a JSON object:
//   name      the function name
//   kinds     one letter per parameter: n number, z boolean, s string, b Uint8Array (base64),
//             F Float64Array, E Float32Array, I Int32Array, L BigInt64Array (base64 of the
//             little-endian items), j JSON text, i bigint (literal),
//             M JSON array of [key, value] pairs made a Map, S JSON array made a Set
//             (parameters typed Map / Set)
//   bigs      one 0/1 per parameter: 1 when its type mentions bigint: an integer literal in its
//             JSON beyond Number.MAX_SAFE_INTEGER becomes a BigInt, exactly
//   result    the same letters for the result, or u (void)
//   limit     the memory limit in bytes; limitMb the same in MB
//   maxLines, maxBytes   console capture caps per call
//
// After it runs, the global scope has exactly: the ECMAScript built-ins, WebAssembly, Intl,
// a capturing console, setTimeout/clearTimeout/queueMicrotask, and two frozen entry points:
//   __fnb_call(id, ...args)  runs the function. Returns a number/boolean/undefined directly
//                            when nothing was logged (the fast path), else a JSON envelope
//                            string {"v"|"b"|"x": result, "c": [level, text, ...], "d": dropped}
//                            or {"e": {"n", "m", "s"}, "c", "d"} for a thrown error; "P" when the
//                            function returned a promise: the envelope then comes later from
//                            __fnb_take() after __fnb_notify() told the host.
//   __fnb_take()             the next settled asynchronous call as "id\n" + envelope.
(function (cfg) {
  "use strict";
  const G = globalThis;
  const notify = G.__fnb_notify;
  delete G.__fnb_notify;

  // Intrinsics captured before any user code can replace them.
  const stringify = JSON.stringify;
  const parse = JSON.parse;
  const apply = Reflect.apply;
  const construct = Reflect.construct;
  const defineProperty = Object.defineProperty;
  const isArray = Array.isArray;
  const isView = ArrayBuffer.isView;
  const U8 = Uint8Array;
  const F64 = Float64Array;
  // typed-array letters -> constructors (captured before the memory guard wraps them)
  const TYPED = { F: Float64Array, E: Float32Array, I: Int32Array, L: BigInt64Array };
  const arrayFrom = Array.from;
  const AB = ArrayBuffer;
  const fromB64 = U8.fromBase64;
  const toB64 = U8.prototype.toBase64;
  const waitAsync = Atomics.waitAsync;
  const PromiseCtor = Promise;
  const resolved = PromiseCtor.resolve();
  const then = PromiseCtor.prototype.then;
  const push = Array.prototype.push;
  const shift = Array.prototype.shift;
  const ErrorCtor = Error;
  const StringCtor = String;
  const nowMs = Date.now;

  // -- no host access: remove anything an embedder might have added ------------------------
  for (const name of ["require", "process", "module", "exports", "global", "fetch", "XMLHttpRequest",
    "WebSocket", "Deno", "Bun", "importScripts", "navigator", "print", "read", "readbuffer",
    "readline", "load", "os", "quit", "write", "Realm", "d8", "testRunner", "performance",
    "setInterval", "clearInterval", "setImmediate", "__timer_manager"]) {
    delete G[name];
  }
  // A blocking wait would only stall this isolate's thread until the time limit; keep waitAsync.
  delete Atomics.wait;

  // -- console ------------------------------------------------------------------------------
  let lines = [];
  let bytes = 0;
  let dropped = 0;
  const maxLines = cfg.maxLines;
  const maxBytes = cfg.maxBytes;

  function show(v, depth) {
    switch (typeof v) {
      case "string": return depth ? stringify(v) : v;
      case "number": return Object.is(v, -0) ? "-0" : StringCtor(v);
      case "bigint": return StringCtor(v) + "n";
      case "boolean": case "undefined": return StringCtor(v);
      case "symbol": return v.toString();
      case "function": return "[Function: " + (v.name || "(anonymous)") + "]";
    }
    if (v === null) return "null";
    try {
      if (v instanceof ErrorCtor) return StringCtor(v.stack || v.name + ": " + v.message);
      if (depth > 2) return isArray(v) ? "[Array]" : "[Object]";
      const more = (n) => (n > 100 ? ", ... " + (n - 100) + " more" : "");
      if (isArray(v)) {
        return "[ " + v.slice(0, 100).map((x) => show(x, depth + 1)).join(", ") + more(v.length) + " ]";
      }
      if (isView(v) && typeof v.length === "number") {
        const items = Array.prototype.slice.call(v, 0, 100).map((x) => show(x, depth + 1));
        return v.constructor.name + "(" + v.length + ") [ " + items.join(", ") + more(v.length) + " ]";
      }
      if (v instanceof Map) {
        const items = [...v].slice(0, 100).map(([k, x]) => show(k, depth + 1) + " => " + show(x, depth + 1));
        return "Map(" + v.size + ") { " + items.join(", ") + more(v.size) + " }";
      }
      if (v instanceof Set) {
        const items = [...v].slice(0, 100).map((x) => show(x, depth + 1));
        return "Set(" + v.size + ") { " + items.join(", ") + more(v.size) + " }";
      }
      const keys = Object.keys(v);
      const body = keys.slice(0, 100).map((k) => k + ": " + show(v[k], depth + 1));
      return keys.length ? "{ " + body.join(", ") + more(keys.length) + " }" : "{}";
    } catch (e) {
      return "[unprintable]";
    }
  }

  function format(args) {
    let i = 0;
    let head = "";
    if (typeof args[0] === "string" && args[0].includes("%")) {
      i = 1;
      head = args[0].replace(/%[sdifjoOc%]/g, (m) => {
        if (m === "%%") return "%";
        if (i >= args.length) return m;
        const a = args[i++];
        switch (m) {
          case "%s": return typeof a === "string" ? a : show(a, 1);
          case "%d": case "%i": return StringCtor(m === "%i" ? Math.trunc(Number(a)) : Number(a));
          case "%f": return StringCtor(Number(a));
          case "%c": return "";
          default: return show(a, 1);
        }
      });
    }
    const rest = [];
    for (; i < args.length; i++) rest.push(show(args[i], 0));
    return i > 0 && head !== "" ? [head, ...rest].join(" ") : rest.join(" ");
  }

  function emit(level, args) {
    if (lines.length >= 2 * maxLines || bytes >= maxBytes) {
      dropped++;
      return;
    }
    let text;
    try {
      text = format(args);
    } catch (e) {
      text = "[unprintable]";
    }
    if (text.length > maxBytes) text = text.slice(0, maxBytes);
    bytes += text.length;
    lines.push(level, text);
  }

  const con = {};
  for (const [name, level] of [["debug", 0], ["log", 1], ["info", 2], ["warn", 3], ["error", 4],
    ["trace", 0], ["dir", 1], ["table", 1]]) {
    con[name] = function (...args) { emit(level, args); };
  }
  con.assert = function (cond, ...args) {
    if (!cond) emit(4, args.length ? ["Assertion failed:", ...args] : ["Assertion failed"]);
  };
  const counts = new Map();
  const started = new Map();
  con.count = function (label = "default") {
    const n = (counts.get(label) || 0) + 1;
    counts.set(label, n);
    emit(1, [label + ": " + n]);
  };
  con.time = function (label = "default") { started.set(label, nowMs()); };
  con.timeEnd = function (label = "default") {
    if (started.has(label)) emit(1, [label + ": " + (nowMs() - started.get(label)) + " ms"]);
    started.delete(label);
  };
  defineProperty(G, "console", { value: con, writable: true, configurable: true, enumerable: false });

  // -- timers (no host: Atomics.waitAsync timeouts, run by the isolate's own task loop) --------
  let nextTimer = 1;
  const timers = new Set();
  function setTimeout(fn, ms, ...args) {
    const id = nextTimer++;
    timers.add(id);
    const fire = () => { if (timers.delete(id)) apply(fn, undefined, args); };
    // at least 1 ms, as in browsers and node: a zero-delay timer is a real task, so a chain of
    // them yields to other timers instead of starving them in the microtask queue
    const r = waitAsync(new Int32Array(new SharedArrayBuffer(4)), 0, 0, Math.max(1, Number(ms) || 0));
    apply(then, r.async ? r.value : resolved, [fire]);
    return id;
  }
  function clearTimeout(id) { timers.delete(id); }
  // Timers do not outlive the calls that set them: when no call is in flight, pending ones
  // are dropped (their callbacks never run), so no work continues after a call returned.
  let inflight = 0;
  function callStarted() { inflight++; }
  function callEnded() { if (--inflight <= 0) { inflight = 0; timers.clear(); } }
  function queueMicrotask(fn) { apply(then, resolved, [() => fn()]); }
  for (const [k, f] of [["setTimeout", setTimeout], ["clearTimeout", clearTimeout], ["queueMicrotask", queueMicrotask]]) {
    defineProperty(G, k, { value: f, writable: true, configurable: true, enumerable: false });
  }

  // -- off-heap buffers: refuse single allocations beyond the memory limit ----------------------
  // (the V8 heap itself is capped by the host; ArrayBuffer memory lives outside that heap)
  const limit = cfg.limit;
  function refuse(n) {
    throw new RangeError("fnb-memory: allocating " + n + " bytes exceeds the " + cfg.limitMb +
      " MB memory limit");
  }
  function guard(holder, name, bytesOf) {
    const C = holder[name];
    if (typeof C !== "function") return;
    const P = new Proxy(C, {
      construct(target, args, newTarget) {
        const n = bytesOf(args);
        if (n > limit) refuse(n);
        return construct(target, args, newTarget === P ? target : newTarget);
      },
    });
    defineProperty(C.prototype, "constructor", { value: P, writable: true, configurable: true, enumerable: false });
    defineProperty(holder, name, { value: P, writable: true, configurable: true, enumerable: false });
  }
  function guardMethod(proto, name, bytesOf) {
    const f = proto && proto[name];
    if (typeof f !== "function") return;
    defineProperty(proto, name, {
      value: { [name](...args) { const n = bytesOf(this, args); if (n > limit) refuse(n); return apply(f, this, args); } }[name],
      writable: true, configurable: true, enumerable: false,
    });
  }
  const num = (x) => (typeof x === "number" ? x : Number(x) || 0);
  const lengthOf = (a) => {
    if (a === null || a === undefined) return 0;
    if (typeof a !== "object") return num(a);
    if (a instanceof AB || a instanceof SharedArrayBuffer) return 0;  // a view on existing memory
    return num(a.length);
  };
  for (const name of ["Int8Array", "Uint8Array", "Uint8ClampedArray", "Int16Array", "Uint16Array",
    "Float16Array", "Int32Array", "Uint32Array", "Float32Array", "Float64Array", "BigInt64Array",
    "BigUint64Array"]) {
    const size = G[name] ? G[name].BYTES_PER_ELEMENT : 1;
    guard(G, name, (args) => size * lengthOf(args[0]));
  }
  const bufferBytes = (args) => Math.max(num(args[0]), args[1] && typeof args[1] === "object" ? num(args[1].maxByteLength) : 0);
  guard(G, "ArrayBuffer", bufferBytes);
  guard(G, "SharedArrayBuffer", bufferBytes);
  guardMethod(AB.prototype, "resize", (_, a) => num(a[0]));
  guardMethod(AB.prototype, "transfer", (_, a) => num(a[0]));
  guardMethod(AB.prototype, "transferToFixedLength", (_, a) => num(a[0]));
  guardMethod(SharedArrayBuffer.prototype, "grow", (_, a) => num(a[0]));
  if (typeof WebAssembly === "object") {
    guard(WebAssembly, "Memory", (args) => 65536 * (args[0] && typeof args[0] === "object" ? num(args[0].initial) : 0));
    guardMethod(WebAssembly.Memory.prototype, "grow", (m, a) => {
      let current = 0;
      try { current = m.buffer.byteLength; } catch (e) { current = 0; }
      return current + 65536 * num(a[0]);
    });
  }

  // -- the call path ------------------------------------------------------------------------
  let entry = null;
  const kinds = cfg.kinds;
  const nparams = kinds.length;
  const rk = cfg.result;
  const done = [];

  const bigs = cfg.bigs || "";
  const isSafeInteger = Number.isSafeInteger;
  const BigIntCtor = BigInt;
  const entriesOfObject = Object.entries;
  const digits = /^-?[0-9]+$/;
  const test = RegExp.prototype.test;
  // JSON.parse source text access: an integer written beyond 2**53 becomes a BigInt (exactly)
  function reviveBig(k, v, context) {
    if (typeof v === "number" && !isSafeInteger(v) && context && apply(test, digits, [context.source])) {
      return BigIntCtor(context.source);
    }
    return v;
  }
  function parseArg(i, text) {
    return bigs[i] === "1" ? parse(text, reviveBig) : parse(text);
  }

  function decode(args) {
    const n = args.length < nparams ? args.length : nparams;  // omitted ones take their defaults
    for (let i = 0; i < n; i++) {
      switch (kinds[i]) {
        case "j": args[i] = parseArg(i, args[i]); break;
        case "M": {  // a dict arrives as its [key, value] pairs: keys keep their types
          const o = parseArg(i, args[i]);
          args[i] = isArray(o) ? new MapCtor(o)
            : o !== null && typeof o === "object" ? new MapCtor(entriesOfObject(o)) : o;
          break;
        }
        case "S": {
          const a = parseArg(i, args[i]);
          args[i] = isArray(a) ? new SetCtor(a) : a;
          break;
        }
        case "b": args[i] = fromB64(args[i]); break;
        case "F": case "E": case "I": case "L": {
          const u = fromB64(args[i]);
          const T = TYPED[kinds[i]];
          args[i] = new T(u.buffer, u.byteOffset, u.byteLength / T.BYTES_PER_ELEMENT);
          break;
        }
      }
    }
  }

  function drain(env) {
    if (lines.length) env.c = lines;
    if (dropped) env.d = dropped;
    lines = [];
    bytes = 0;
    dropped = 0;
    return env;
  }

  // -- exact JSON results: Map, Set, BigInt, NaN and the infinities ------------------------------
  // JSON.stringify turns a Map or Set into {}, NaN and the infinities into null and throws on a
  // BigInt. The prelude gives Map and Set a non-enumerable toJSON (same {} as before) that notes
  // it was used; a text holding null is checked once more for non-finite numbers. A result that
  // used one, or held a BigInt, is sent instead in the tagged form below (envelope field "t"):
  //   {"i": "123"} BigInt, {"f": "NaN"|"Infinity"|"-Infinity"} non-finite number,
  //   {"a": [...]} array, {"o": {...}} object, {"m": [[k, v], ...]} Map,
  //   {"s": [...]} Set; strings, finite numbers, booleans and null as themselves.
  let special = false;
  const MapCtor = Map;
  const SetCtor = Set;
  const entriesOf = Map.prototype.entries;
  const valuesOf = Set.prototype.values;
  const keysOf = Object.keys;
  const isFinite = Number.isFinite;
  const objectIs = Object.is;
  const includes = String.prototype.includes;
  function noteNonFinite(k, x) {
    if (typeof x === "number" && !isFinite(x)) special = true;
    return x;
  }
  // A typed array inside a JSON result is the list of its items (JSON.stringify alone makes
  // {"0": ..., "1": ...} of it); a BigInt64Array's items are BigInts (the tagged form).
  defineProperty(Object.getPrototypeOf(Int8Array.prototype), "toJSON", {
    value: function toJSON() { return apply(arrayFrom, undefined, [this]); },
    writable: true, configurable: true, enumerable: false,
  });
  for (const C of [MapCtor, SetCtor]) {
    defineProperty(C.prototype, "toJSON", {
      value: function toJSON() { special = true; return {}; },
      writable: true, configurable: true, enumerable: false,
    });
  }

  function tag(v, depth) {
    if (depth > 100) throw new RangeError("the result is nested more than 100 levels deep");
    switch (typeof v) {
      case "bigint": return { i: StringCtor(v) };
      case "string": case "boolean": return v;
      case "number": return isFinite(v) ? v : { f: StringCtor(v) };
      case "undefined": case "function": case "symbol": return null;
    }
    if (v === null) return null;
    if (v instanceof MapCtor) {
      const out = [];
      for (const [k, x] of apply(entriesOf, v, [])) out.push([tag(k, depth + 1), tag(x, depth + 1)]);
      return { m: out };
    }
    if (v instanceof SetCtor) {
      const out = [];
      for (const x of apply(valuesOf, v, [])) out.push(tag(x, depth + 1));
      return { s: out };
    }
    if (typeof v.toJSON === "function") return tag(v.toJSON(""), depth);
    if (isArray(v)) return { a: v.map((x) => tag(x, depth + 1)) };
    const out = {};
    for (const k of keysOf(v)) {
      const x = v[k];
      if (x === undefined || typeof x === "function" || typeof x === "symbol") continue;
      out[k] = tag(x, depth + 1);
    }
    return { o: out };
  }

  function errorInfo(e) {
    try {
      if (e instanceof ErrorCtor) {
        return { n: StringCtor(e.name), m: StringCtor(e.message), s: StringCtor(e.stack || "") };
      }
      return { n: "", m: "threw " + show(e, 1), s: "" };
    } catch (err) {
      return { n: "", m: "threw an unprintable value", s: "" };
    }
  }

  function envelope(env) {
    special = false;
    let failure = null;
    try {
      const text = stringify(env);
      // null in the text: was it a NaN or an infinity? (same traversal, noting them)
      if (!special && "v" in env && apply(includes, text, ["null"])) stringify(env.v, noteNonFinite);
      if (!special) return text;
    } catch (e) {
      failure = e;
    }
    try {
      if (!("v" in env)) throw failure;
      const v = env.v;
      delete env.v;
      env.t = tag(v, 0);
      return stringify(env);
    } catch (e2) {
      return stringify({ e: { n: "TypeError", m: "the result is not JSON-serializable: " + e2.message, s: "" }, c: env.c, d: env.d });
    }
  }

  function result(v) {
    // -> the envelope's value field for the declared result kind
    switch (rk) {
      case "u": return {};
      case "b": case "F": case "E": case "I": case "L":
        if (isView(v)) return { b: apply(toB64, new U8(v.buffer, v.byteOffset, v.byteLength), []) };
        if (v instanceof AB) return { b: apply(toB64, new U8(v), []) };
        return { v: v };
      case "n":  // NaN, the infinities and -0 do not survive JSON
        if (typeof v === "number" && (!isFinite(v) || objectIs(v, -0))) return { x: objectIs(v, -0) ? "-0" : StringCtor(v) };
        return { v: v };
      case "i": return typeof v === "bigint" ? { x: StringCtor(v) } : { v: v };
      default: return { v: v };
    }
  }

  function finish(v, direct) {
    if (direct && lines.length === 0 && dropped === 0) {
      if (rk === "n" && typeof v === "number") return v;
      if (rk === "z" && typeof v === "boolean") return v;
      if (rk === "u") return undefined;
    }
    let env;
    try {
      env = result(v);
    } catch (e) {
      env = { e: errorInfo(e) };
    }
    return envelope(drain(env));
  }

  function fail(e) {
    return envelope(drain({ e: errorInfo(e) }));
  }

  function settle(id, text) {
    apply(push, done, [id + "\n" + text]);
    notify();
  }

  function isThenable(v) {
    try {
      return v !== null && (typeof v === "object" || typeof v === "function") && typeof v.then === "function";
    } catch (e) {
      return false;
    }
  }

  function call(id, ...args) {
    let v;
    callStarted();
    try {
      decode(args);
      v = apply(entry, undefined, args);
    } catch (e) {
      callEnded();
      return fail(e);
    }
    if (isThenable(v)) {
      apply(then, PromiseCtor.resolve(v), [(r) => { callEnded(); settle(id, finish(r, false)); },
                                           (e) => { callEnded(); settle(id, fail(e)); }]);
      return "P";
    }
    callEnded();
    return finish(v, true);
  }

  function bind() {
    const m = G.__fnb_cell;
    entry = m ? m.__fnb_entry : undefined;
    G.__fnb_cell = undefined;
    delete G.__fnb_bind;
    timers.clear();  // the cell's top level set them: no call is in flight
    if (typeof entry !== "function") {
      throw new TypeError(cfg.name + " is not a function (the cell must define function " + cfg.name + ")");
    }
  }

  const fixed = { writable: false, configurable: false, enumerable: false };
  defineProperty(G, "__fnb_call", { value: call, ...fixed });
  defineProperty(G, "__fnb_take", { value: () => apply(shift, done, []), ...fixed });
  defineProperty(G, "__fnb_bind", { value: bind, writable: false, configurable: true, enumerable: false });
})(/*FNB_CONFIG*/);
