"""TypeScript cells (V8 isolates in the shared V8 host)."""

from __future__ import annotations

from ..spec import Cells


def _id(ty: str) -> str:
    return "export function {name}(x: TYPE): TYPE {{\n  return x;\n}}\n".replace("TYPE", ty)


_NUMBERS = "TypeScript has only number (a double) and bigint (crosses as i64)"
NO_FILES = "functions in V8 have no file API: no file can be opened"

ESCAPE = '''export async function escape(what: string, arg: string): Promise<string> {
  const g = globalThis as any;
  try {
    if (what === "read") return g.require("fs").readFileSync(arg, "utf8");
    if (what === "write") {
      g.require("fs").writeFileSync(arg, "escaped");
      return "written";
    }
    if (what === "connect") return String((await g.fetch("http://" + arg + "/")).status);
    if (what === "spawn") return String(g.require("child_process").execSync(arg));
    if (what === "env") return String(g.process.env[arg]) + JSON.stringify(g.process.env);
  } catch (e) {
    return "refused: " + String(e);
  }
  return "unknown";
}
'''

LINGER = '''let count = 0;

function tick(): void {
  const end = Date.now() + 2;
  while (Date.now() < end) count++;
  setTimeout(tick, 1);
}

export async function linger(op: string): Promise<number> {
  if (op === "start") {
    setTimeout(tick, 0);
    await new Promise((resolve) => setTimeout(resolve, 50)); // ticking when the call returns
  }
  return count;
}
'''

VICTIM = '''const VICTIM_SECRET = "victim-secret-5f1c9e";

export function victim(x: string): string {
  (globalThis as any).victimState = VICTIM_SECRET;
  return "ok:" + [...x].sort().join("");
}
'''

ATTACKER = '''export function attacker(s: string): string {
  const g = globalThis as any;
  const found: string[] = [];
  for (const k of Object.getOwnPropertyNames(g)) {
    try {
      if (typeof g[k] === "string") found.push(k + "=" + g[k]);
    } catch (e) {
      found.push(k + "?");
    }
  }
  g.victimState = "changed";
  Array.prototype.sort = function (this: any) { return ["p", "w", "n", "e", "d"]; } as any;
  String.prototype.concat = function () { return "pwned"; };
  return found.join(" ") || "nothing";
}
'''

CELLS = Cells(
    language="typescript",
    identity={
        "i64": _id("bigint"), "f64": _id("number"), "bool": _id("boolean"), "str": _id("string"),
        "bytes": _id("Uint8Array"), "list": _id("unknown[]"),
        "dict": _id("Record<string, unknown>"), "f64[]": _id("Float64Array"),
    },
    compile_error='export function broken(a: number): number {\n  const b: string = a;\n'
                  "  return a;\n}\n",
    compile_error_line=2,
    boom='export function boom(x: number): number {\n  if (x > 0) {\n'
         '    throw new RangeError("bad input " + x);\n  }\n  return x;\n}\n',
    boom_line=3,
    spin="export function spin(n: number): number {\n  let x = n;\n"
         "  while (n !== 0) { x = (x * 31) % 1000003; }\n  return x;\n}\n",
    bomb="export function bomb(mb: number): number {\n  const kept: number[][] = [];\n"
         "  for (let i = 0; i < mb * 8; i++) kept.push(new Array(16384).fill(i + 0.5));\n"
         "  return kept.length / 8;\n}\n",
    escape=ESCAPE,
    talk='export function talk(s: string): number {\n  console.log("out: " + s);\n'
         '  console.error("err: " + s);\n  return s.length;\n}\n',
    linger=LINGER,
    hoard="const kept: number[][] = [];\n\nexport function hoard(mb: number): number {\n"
          "  for (let i = 0; i < mb * 8; i++) kept.push(new Array(16384).fill(i + 0.5));\n"
          "  return kept.length / 8;\n}\n",
    hoard_fds=None,
    victim=VICTIM,
    attacker=ATTACKER,
    not_applicable={
        **{f"identity[{k}]": _NUMBERS for k in ("i32", "u32", "u64", "f32")},
        "hoard_fds": NO_FILES,
    },
)
