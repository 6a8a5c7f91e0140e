"""JavaScript cells (V8 isolates in the shared V8 host; every value crosses as JSON)."""

from __future__ import annotations

from ..spec import Cells
from .typescript import NO_FILES

_JSON = "untyped JavaScript parameters are JSON: {} needs a TypeScript annotation"

CELLS = Cells(
    language="javascript",
    identity={k: "function {name}(x) {{\n  return x;\n}}\n"
              for k in ("i32", "u32", "f64", "bool", "str", "list", "dict")},
    # JSON numbers: no NaN, infinities or negative zero
    values={"f64": (0.1, 1.7976931348623157e308, 5e-324, -2.5e-308)},
    compile_error="function broken(a) {\n  return a +* 1;\n}\n",
    compile_error_line=2,
    boom='function boom(x) {\n  if (x > 0) {\n    throw new RangeError("bad input " + x);\n'
         "  }\n  return x;\n}\n",
    boom_line=3,
    spin="function spin(n) {\n  let x = n;\n  while (n !== 0) { x = (x * 31) % 1000003; }\n"
         "  return x;\n}\n",
    bomb="function bomb(mb) {\n  const kept = [];\n"
         "  for (let i = 0; i < mb * 8; i++) kept.push(new Array(16384).fill(i + 0.5));\n"
         "  return kept.length / 8;\n}\n",
    escape='''async function escape(what, arg) {
  try {
    if (what === "read") return require("fs").readFileSync(arg, "utf8");
    if (what === "write") {
      require("fs").writeFileSync(arg, "escaped");
      return "written";
    }
    if (what === "connect") return String((await fetch("http://" + arg + "/")).status);
    if (what === "spawn") return String(require("child_process").execSync(arg));
    if (what === "env") return String(process.env[arg]) + JSON.stringify(process.env);
  } catch (e) {
    return "refused: " + String(e);
  }
  return "unknown";
}
''',
    talk='function talk(s) {\n  console.log("out: " + s);\n  console.error("err: " + s);\n'
         "  return s.length;\n}\n",
    linger='''let count = 0;

function tick() {
  const end = Date.now() + 2;
  while (Date.now() < end) count++;
  setTimeout(tick, 1);
}

async function linger(op) {
  if (op === "start") {
    setTimeout(tick, 0);
    await new Promise((resolve) => setTimeout(resolve, 50)); // ticking when the call returns
  }
  return count;
}
''',
    hoard="const kept = [];\n\nfunction hoard(mb) {\n"
          "  for (let i = 0; i < mb * 8; i++) kept.push(new Array(16384).fill(i + 0.5));\n"
          "  return kept.length / 8;\n}\n",
    hoard_fds=None,
    victim='''const VICTIM_SECRET = "victim-secret-5f1c9e";

function victim(x) {
  globalThis.victimState = VICTIM_SECRET;
  return "ok:" + [...x].sort().join("");
}
''',
    attacker='''function attacker(s) {
  const found = [];
  for (const k of Object.getOwnPropertyNames(globalThis)) {
    try {
      if (typeof globalThis[k] === "string") found.push(k + "=" + globalThis[k]);
    } catch (e) {
      found.push(k + "?");
    }
  }
  globalThis.victimState = "changed";
  Array.prototype.sort = function () { return ["p", "w", "n", "e", "d"]; };
  String.prototype.concat = function () { return "pwned"; };
  return found.join(" ") || "nothing";
}
''',
    not_applicable={
        "identity[i64]": "JavaScript numbers are doubles: 64-bit integers need a bigint "
                         "(TypeScript) parameter",
        "identity[u64]": "JavaScript numbers are doubles: 64-bit integers need a bigint "
                         "(TypeScript) parameter",
        "identity[f32]": "JavaScript has no 32-bit float",
        "identity[bytes]": _JSON.format("bytes (Uint8Array)"),
        "identity[f64[]]": _JSON.format("a float array (Float64Array)"),
        "hoard_fds": NO_FILES,
    },
)
