"""``func``: the command-line front end (deploy, invoke, ls, logs, sql, doctor).

Each command imports what it needs when it runs: ``func invoke`` loads the store, the loader
and the runtime, not the compilers, DuckDB, pandas or pyarrow."""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any, NoReturn

from . import cli_human
from .errors import BadArguments, FunctionsError
from .models import parse_target


def _fx(args: argparse.Namespace) -> Any:
    from .client import Functions

    return Functions(store=args.store)


def cmd_deploy(args: argparse.Namespace) -> int:
    from . import languages

    path = Path(args.file)
    lang = args.lang or languages.language_of(path.name)
    if lang is None:
        known = ", ".join(f"{ext} ({lang})" for ext, lang in languages.extensions().items())
        raise FunctionsError(f"cannot tell the language of {path.name} from its extension "
                             f"(known: {known}); pass --lang")
    try:  # a model (.onnx) is deployed from its bytes
        source = path.read_bytes() if lang == "onnx" else path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise FunctionsError(f"cannot read {path}: {exc}") from None
    flags = {k: v for k in ("toolchain", "edition") if (v := getattr(args, k)) is not None}
    info = _fx(args).deploy(lang, source, args.name or path.name.split(".")[0],
                            timeout=args.timeout, memory_mb=args.memory, force=args.force,
                            flags=flags)
    how = "unchanged" if info.cached else f"compiled in {info.compile_ms:.0f} ms"
    print(f"deployed {info.target} ({info.language}, {how}) {info.signature}")
    return 0


def cmd_invoke(args: argparse.Namespace) -> int:
    try:
        parsed = json.loads(args.args_json) if args.args_json else []
    except json.JSONDecodeError as exc:
        raise BadArguments(f"ARGS_JSON is not JSON ({exc}); e.g. '[2, 3]'") from None
    except RecursionError:
        raise BadArguments("ARGS_JSON is nested too deeply to read") from None
    values = parsed if isinstance(parsed, list) else [parsed]
    fx = _fx(args)
    ex = fx.run(args.name, *values, timeout=args.timeout)
    for level, message, _ts in ex.console:
        print(f"[{level}] {message}", file=sys.stderr)
    value = ex.result()
    print(json.dumps(value, default=lambda v: v.decode("latin-1") if isinstance(v, bytes)
                     else v.tolist() if hasattr(v, "tolist") else repr(v)))  # numpy: as lists
    return 0


def cmd_ls(args: argparse.Namespace) -> int:
    for info in _fx(args).list():
        print(f"{info.name:<24} v{info.version:<4} {info.language:<8} {info.signature}  "
              f"{info.created_at}")
    return 0


def cmd_logs(args: argparse.Namespace) -> int:
    df = _fx(args).logs(args.name, limit=args.limit)
    for row in df.itertuples():
        err = f" {row.error_kind}: {row.error_message}" if row.status != "ok" else ""
        print(f"{row.started_at} {row.id} {row.function}@{row.version} {row.status} "
              f"{row.duration_ms} ms{err}")
        for line in row.console if row.console is not None else []:
            print(f"    [{line['level']}] {line['message']}")
    return 0


def cmd_sql(args: argparse.Namespace) -> int:
    import pandas as pd

    with pd.option_context("display.max_rows", 200, "display.width", 200):
        print(_fx(args).sql(args.query).to_string(index=False))
    return 0


def cmd_doctor(args: argparse.Namespace) -> int:
    from .doctor import doctor, format_report

    rows = doctor()
    print(json.dumps(rows, indent=1) if args.json else format_report(rows))
    return 0


def cmd_versions(args: argparse.Namespace) -> int:
    for row in _fx(args).versions(args.name, detail=True):
        mark = "*" if row["latest"] else " "
        print(f"{mark} {row['name']}@{row['version']:<4} {row['language']:<6} {row['size']:>8} B  "
              f"{row['code_sha256'][:12]}  {row['created_at']}  {row['store']}")
    return 0


def cmd_rollback(args: argparse.Namespace) -> int:
    name, version = parse_target(args.target)
    if version is None:
        raise BadArguments("usage: func rollback NAME@VERSION")
    info = _fx(args).rollback(name, version)
    print(f"latest of {name} is now {info.target}")
    return 0


def cmd_rm(args: argparse.Namespace) -> int:
    deleted = _fx(args).delete(args.target)
    print(f"deleted {args.target.partition('@')[0]} versions {', '.join(map(str, deleted))}")
    return 0


def _pair(args: argparse.Namespace) -> Any:
    from .client import Functions

    return Functions(store=args.to, fallback=args.from_, history=False)


def cmd_migrate(args: argparse.Namespace) -> int:
    report = _pair(args).migrate(args.name, progress=sys.stderr.isatty())
    print(json.dumps(report, indent=1))
    return 1 if report["failed"] else 0


def cmd_cleanup(args: argparse.Namespace) -> int:
    print(json.dumps(_pair(args).cleanup_fallback(args.name, dry_run=args.dry_run), indent=1))
    return 0


def _add_deploy(sub: Any) -> None:
    d = sub.add_parser("deploy", help="compile and deploy a source file")
    d.add_argument("file")
    d.add_argument("--lang", help="language (default: from the file extension)")
    d.add_argument("--name", help="function name (default: the file name)")
    d.add_argument("--timeout", type=float, default=30.0)
    d.add_argument("--memory", type=int, default=64, help="memory limit in MB")
    d.add_argument("--force", action="store_true")
    d.add_argument("--toolchain", default=None,
                   help="compiler version, where the language offers a choice (zig: zig-0.17, "
                        "the default, or zig-0.16, fetched on first use)")
    d.add_argument("--edition", default=None,
                   help="language edition, where it has them (rust: 2024, the default, or 2021)")
    d.set_defaults(func=cmd_deploy)


def _add_invoke(sub: Any) -> None:
    i = sub.add_parser("invoke", help="invoke NAME[@VERSION] with a JSON array of arguments")
    i.add_argument("name")
    i.add_argument("args_json", nargs="?", default="[]", metavar="ARGS_JSON")
    i.add_argument("--timeout", type=float, default=None)
    i.set_defaults(func=cmd_invoke)


def _add_ls(sub: Any) -> None:
    sub.add_parser("ls", help="list deployed functions").set_defaults(func=cmd_ls)


def _add_logs(sub: Any) -> None:
    lg = sub.add_parser("logs", help="recent executions of a function")
    lg.add_argument("name", nargs="?")
    lg.add_argument("--limit", type=int, default=20)
    lg.set_defaults(func=cmd_logs)


def _add_sql(sub: Any) -> None:
    q = sub.add_parser("sql", help="DuckDB SQL over the executions table")
    q.add_argument("query")
    q.set_defaults(func=cmd_sql)


def _add_versions(sub: Any) -> None:
    v = sub.add_parser("versions", help="versions of a function with hash, size, created time")
    v.add_argument("name")
    v.set_defaults(func=cmd_versions)


def _add_rollback(sub: Any) -> None:
    rb = sub.add_parser("rollback", help="point latest at NAME@VERSION")
    rb.add_argument("target")
    rb.set_defaults(func=cmd_rollback)


def _add_rm(sub: Any) -> None:
    rm = sub.add_parser("rm", help="delete NAME@VERSION, or every version of NAME")
    rm.add_argument("target")
    rm.set_defaults(func=cmd_rm)


def _add_pair(cmd: str) -> Callable[[Any], None]:
    fn, text = {"migrate": (cmd_migrate, "copy functions from one store to another"),
                "cleanup": (cmd_cleanup, "delete from --from what --to holds verified")}[cmd]

    def add(sub: Any) -> None:
        m = sub.add_parser(cmd, help=text)
        m.add_argument("--from", dest="from_", required=True, metavar="URL")
        m.add_argument("--to", required=True, metavar="URL")
        m.add_argument("--name", default=None)
        if cmd == "cleanup":
            m.add_argument("--dry-run", action="store_true")
        m.set_defaults(func=fn)
    return add


def _add_doctor(sub: Any) -> None:
    dr = sub.add_parser("doctor", help="check language toolchains")
    dr.add_argument("--json", action="store_true")
    dr.set_defaults(func=cmd_doctor)


def _add_human(sub: Any) -> None:
    cli_human.add_parser(sub).set_defaults(func=lambda a: cli_human.run(a, _fx))


#: Each subcommand's parser, added in this order (``func --help`` lists them so).
SUBCOMMANDS: dict[str, Callable[[Any], None]] = {
    "deploy": _add_deploy, "invoke": _add_invoke, "ls": _add_ls, "logs": _add_logs,
    "sql": _add_sql, "versions": _add_versions, "rollback": _add_rollback, "rm": _add_rm,
    "migrate": _add_pair("migrate"), "cleanup": _add_pair("cleanup"), "doctor": _add_doctor,
    "human": _add_human}


def build_parser(only: str | None = None) -> argparse.ArgumentParser:
    """``func``'s parser; ``only``: just that subcommand's (a command line names one, and
    building all of them is a tenth of a short ``func invoke``)."""
    p = argparse.ArgumentParser(prog="func", description="functions-nb command line")
    p.add_argument("--store", default=None,
                   help="fsspec URL of the store (default: $FUNCTIONS_NB_STORE or ~/.functions-nb/store)")
    sub = p.add_subparsers(dest="command", required=True)
    for name, add in SUBCOMMANDS.items():
        if only is None or name == only:
            add(sub)
    return p


def _command_of(argv: list[str]) -> str | None:
    """The subcommand a command line names, if it is a known one and no help comes before it."""
    words = iter(argv)
    for word in words:
        if word in ("-h", "--help"):
            return None
        if word == "--store":
            next(words, None)
        elif not word.startswith("-"):
            return word if word in SUBCOMMANDS else None
    return None


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    args = build_parser(only=_command_of(argv)).parse_args(argv)
    try:
        return args.func(args)
    except FunctionsError as exc:
        print(f"error: {type(exc).__name__}: {exc}", file=sys.stderr)
        return 1


def run() -> NoReturn:
    """The ``func`` command: :func:`main`, then a quick exit. Output is flushed and the exit
    handlers run (the history's last flush among them), but the interpreter is not torn down
    module by module, which was about a tenth of a short ``func invoke``."""
    try:
        code: Any = main()
    except SystemExit as exc:  # argparse: --help, usage errors
        code = exc.code
    except BrokenPipeError:  # the reader went away (`func ls | head -1`): quietly
        code = 1
    if code is None:
        code = 0
    elif not isinstance(code, int):
        print(code, file=sys.stderr)
        code = 1
    import atexit
    import os

    atexit._run_exitfuncs()
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except (OSError, ValueError):  # a closed pipe: nothing more to say
            code = code or 1
    os._exit(code)


if __name__ == "__main__":
    run()
