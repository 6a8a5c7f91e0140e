"""IPython magics: ``%%function``, ``%invoke``, ``%fn_sql``, ``%fn_store``.

Errors are shown as their message (compiler output with cell line numbers for compile
errors), never as a traceback into functions-nb. Line numbers count the ``%%function``
line as line 1, as JupyterLab's line numbers do.
"""

from __future__ import annotations

import io
import re
import threading
import time
import tokenize
from typing import Any

from IPython.core.magic import Magics, cell_magic, line_cell_magic, line_magic, magics_class
from IPython.core.magic_arguments import argument, magic_arguments, parse_argstring
from IPython.display import display

from .client import Functions, current_client
from .config import DEFAULT_MEMORY_MB, DEFAULT_TIMEOUT
from .errors import BadArguments
from .models import FunctionInfo

PROGRESS_AFTER = 0.5


def format_seconds(seconds: float) -> str:
    """A duration in seconds, always in seconds: ``0.09 s``, ``1.3 s``, ``12 s``."""
    if seconds >= 10:
        return f"{seconds:.0f} s"
    return f"{seconds:.1f} s" if seconds >= 0.1 else f"{seconds:.2f} s"


def deployed_message(info: FunctionInfo) -> str:
    """What ``%%function`` prints: the target, the compile time (one number, one unit) or that
    nothing was compiled, the signature, and the compiler's warnings."""
    how = "unchanged, no compile" if info.cached else f"compiled in {format_seconds(info.compile_ms / 1000)}"
    text = f"deployed {info.language} {info.target} ({how}) · {info.signature}"
    if info.warnings and not info.cached:
        text += "\n" + str(info.warnings).rstrip()
    return text


def split_arguments(text: str) -> list[str]:
    """Split ``%invoke`` arguments into Python expressions.

    Arguments are separated by commas or by whitespace outside brackets and strings:
    ``2 3``, ``2, 3``, ``[1, 2] "a b" x``. An expression with spaces at top level
    (``x + 1``) needs commas between arguments or parentheses around it.
    """
    text = text.strip()
    if not text:
        return []
    try:
        tokens = [t for t in tokenize.generate_tokens(io.StringIO(text).readline)
                  if t.type not in (tokenize.NEWLINE, tokenize.NL, tokenize.ENDMARKER,
                                    tokenize.INDENT, tokenize.DEDENT, tokenize.COMMENT)]
    except (tokenize.TokenError, IndentationError, SyntaxError) as exc:
        raise BadArguments(f"cannot read the arguments {text!r}: {exc}") from None
    has_comma = False
    depth = 0
    for t in tokens:
        if t.string in "([{" and t.type == tokenize.OP:
            depth += 1
        elif t.string in ")]}" and t.type == tokenize.OP:
            depth -= 1
        elif t.string == "," and depth == 0:
            has_comma = True
    groups: list[tuple[int, int]] = []
    depth = 0
    start = end = None
    for t in tokens:
        gap = end is not None and t.start[1] > end
        sep = t.type == tokenize.OP and t.string == "," and depth == 0
        if start is not None and depth == 0 and (sep or (gap and not has_comma)):
            groups.append((start, end))
            start = None
        if sep:
            end = t.end[1]
            continue
        if start is None:
            start = t.start[1]
        if t.type == tokenize.OP and t.string in "([{":
            depth += 1
        elif t.type == tokenize.OP and t.string in ")]}":
            depth -= 1
        end = t.end[1]
    if start is not None:
        groups.append((start, end))
    return [text[a:b] for a, b in groups]


_KEYWORD = re.compile(r"([A-Za-z_]\w*)\s*=(?!=)\s*(.+)", re.S)


def keyword_argument(expr: str) -> tuple[str | None, str]:
    """``name="Bob"`` -> ("name", '"Bob"'); any other expression -> (None, expr)."""
    m = _KEYWORD.fullmatch(expr.strip())
    return (m.group(1), m.group(2)) if m else (None, expr)


#: ``%invoke`` flags without a value: flag -> (cascade option, value).
_FLAGS = {"--parallel": ("parallel", True), "--no-fallback": ("fallback", False),
          "--wait-human": ("wait_human", True)}


def _pairs(text: str) -> list[tuple[str, str]]:
    """``code=2,generative=1`` -> [("code", "2"), ("generative", "1")]."""
    out = []
    for item in filter(None, text.split(",")):
        key, sep, value = item.partition("=")
        if not sep:
            raise ValueError(item)
        out.append((key.strip(), value.strip()))
    return out


@magics_class
class FunctionsMagics(Magics):
    """Deploy and invoke functions from notebook cells."""

    def __init__(self, shell: Any, fx: Functions | None = None) -> None:
        super().__init__(shell)
        self._fx = fx
        self._default: Functions | None = None
        self.last: FunctionInfo | None = None

    @property
    def fx(self) -> Functions:
        """The client the magics use: the one given (or chosen with ``%fn_store URL``), else
        the ``Functions`` most recently created in this kernel (so ``fx = Functions(model=…)``
        in a cell is what ``%invoke``, ``%functions`` … see), else a default one."""
        if self._fx is not None:
            return self._fx
        latest = current_client()
        if latest is None:
            self._default = latest = Functions()  # kept alive here; it is then the current one
        return latest

    @line_magic
    def fn_store(self, line: str) -> Functions:
        """``%fn_store [URL]``: show the store, or switch to the fsspec URL given."""
        if line.strip():
            self._fx = Functions(store=line.strip())
        return self.fx

    @magic_arguments()
    @argument("language", help="rust, zig, go, assemblyscript, typescript, javascript, python, "
                                "csharp or generative (see `func doctor`)")
    @argument("name", help="function name; the entry point is the function with this name")
    @argument("--timeout", type=float, default=DEFAULT_TIMEOUT,
              help=f"default time limit per call in seconds (default {DEFAULT_TIMEOUT:g})")
    @argument("--memory", type=int, default=DEFAULT_MEMORY_MB,
              help=f"memory limit per call in MB (default {DEFAULT_MEMORY_MB})")
    @argument("--force", action="store_true",
              help="compile and store a new version even if the cell is unchanged")
    @argument("--quiet", action="store_true", help="print nothing on success (no progress line)")
    @argument("--toolchain", default=None,
              help="compiler version to build with, where the language offers a choice "
                   "(zig: zig-0.17, the default, or zig-0.16, fetched on first use)")
    @argument("--edition", default=None,
              help="language edition, where the language has them (rust: 2024, the default, "
                   "or 2021)")
    @argument("--runtime", default=None,
              help="python: pyodide or wasi (numpy, pandas, SciPy, scikit-learn); default: "
                   "chosen from the cell's imports")
    @cell_magic
    def function(self, line: str, cell: str) -> None:
        """Compile the cell and deploy it as a new version of NAME.

        Re-running an unchanged cell returns the existing version without compiling.
        Compile errors show the compiler's output with cell line numbers.
        """
        opts = parse_argstring(self.function, line)
        # --toolchain/--edition/--runtime become deploy flags only when given (else the default
        # applies)
        flags = {k: v for k in ("toolchain", "edition", "runtime")
                 if (v := getattr(opts, k)) is not None}
        box: dict[str, Any] = {}

        def work() -> None:
            try:
                box["info"] = self.fx.deploy(opts.language, cell, opts.name,
                                             timeout=opts.timeout, memory_mb=opts.memory,
                                             force=opts.force, line_offset=1, flags=flags)
            except BaseException as exc:  # noqa: BLE001 - re-raised in the cell's thread
                box["error"] = exc

        worker = threading.Thread(target=work, name="functions-nb-compile", daemon=True)
        started = time.perf_counter()
        worker.start()
        worker.join(PROGRESS_AFTER)
        handle = None
        while worker.is_alive():
            if not opts.quiet:
                progress = {"text/plain": f"compiling {opts.language} function {opts.name!r} … "
                                          f"{format_seconds(time.perf_counter() - started)}"}
                if handle is None:
                    handle = display(progress, raw=True, display_id=True)
                else:
                    handle.update(progress, raw=True)
            worker.join(0.25)
        info: FunctionInfo | None = box.get("info")
        if info is not None:
            self.last = info
        # the progress line turns into the outcome: the deploy line, or nothing before an error
        message = "" if info is None or opts.quiet else deployed_message(info)
        if handle is not None:
            handle.update({"text/plain": message} if message else {}, raw=True)
        elif message:
            print(message)
        if "error" in box:
            raise box["error"]

    @magic_arguments()
    @argument("--timeout", type=float, default=None, help="time limit for this call in seconds")
    @argument("--quiet", action="store_true", help="show only the value")
    @argument("--cascade", action="store_true", help="escalate through the tiers on failure")
    @argument("--start-tier", help="first tier: code, generative, agentic or human")
    @argument("--skip-tiers", help="tiers to skip, comma-separated")
    @argument("--retries", help="retries per tier, e.g. code=2,generative=1")
    @argument("--tier-timeouts", help="seconds per tier, e.g. code=1,generative=30")
    @argument("--total-timeout", type=float, help="seconds for the whole cascade")
    @argument("--parallel", action="store_true", help="run the tiers at once; first success wins")
    @argument("--no-fallback", action="store_true", help="do not pass earlier failures on")
    @argument("--model", help="model for the LLM tiers, e.g. openai:gpt-4o-mini")
    @argument("--wait-human", action="store_true", help="block until a person answers")
    @argument("target", help="NAME or NAME@VERSION")
    @argument("args", nargs="*", help="arguments: Python expressions in the notebook namespace")
    @line_magic
    def invoke(self, line: str) -> Any:
        """Invoke a deployed function; each argument is a Python expression.

        Shows version, duration, cold/warm and console output; returns the value (the cell's
        ``Out``), so ``x = %invoke add 2 3`` works; raises the error as one readable line.
        """
        opts, target, rest = self._parse_invoke(line)
        values: list[Any] = []
        named: dict[str, Any] = {}
        for expr in split_arguments(rest):
            key, value = keyword_argument(expr)
            if key is None:
                if named:
                    raise BadArguments(f"%invoke: positional argument {expr!r} after a keyword "
                                       "argument")
                values.append(self.shell.ev(value))
            elif key in named:
                raise BadArguments(f"%invoke: argument {key!r} given twice")
            else:
                named[key] = self.shell.ev(value)
        if opts["cascade"]:
            if named:
                values = list(self.fx.info(target).signature.bind(tuple(values), named))
            return self._cascade(target, values, opts)
        ex = self.fx.run(target, *values, timeout=opts["timeout"], **named)
        if not opts["quiet"] and not getattr(ex.error, "caller_error", False):
            from .widgets.result import ResultView

            # how the call went; the value is the cell's Out, the error is raised: each once
            display(ResultView(ex, show_value=False, show_error=False))
        return ex.result()

    def _cascade(self, target: str, values: list[Any], opts: dict[str, Any]) -> Any:
        from .errors import CascadeExhaustedError
        from .widgets.result import ResultView

        try:
            result = self.fx.cascade(target, *values, timeout=opts["timeout"], **opts["cascade"])
        except CascadeExhaustedError as exc:
            if not opts["quiet"]:
                display(ResultView(exc, fx=self.fx, show_error=False))
            raise
        if not hasattr(result, "tier"):
            return result  # a human tier's Pending handle: it shows itself as the cell's Out
        if not opts["quiet"]:
            display(ResultView(result, target=target, fx=self.fx, show_value=False))
        return result.value

    @magic_arguments()
    @argument("name", nargs="?", help="NAME or NAME@VERSION (default: every function)")
    @argument("--level", default=None, help="minimum level: debug, log, info, warn, error")
    @argument("--since", default=None, help="5m, 1h, 1d, SECONDS or all (default all)")
    @argument("--text", default=None, help="only lines containing this (case-insensitive)")
    @argument("--limit", type=int, default=200, help="newest N lines (default 200)")
    @argument("--tail", action="store_true", help="live tail: re-query every --interval seconds")
    @argument("--interval", type=float, default=1.0, help="live-tail period in seconds")
    @line_magic
    def fn_logs(self, line: str) -> Any:
        """Console lines and errors across executions, with level/time/text filters and a
        live tail (the view's ``.stop()`` or its toggle ends it)."""
        from .widgets.logs import LogsView

        args = parse_argstring(self.fn_logs, line)
        try:
            return LogsView(self.fx, args.name, level=args.level, since=args.since,
                            text=args.text, limit=args.limit, tail=args.tail,
                            interval=args.interval)
        except ValueError as exc:
            raise BadArguments(str(exc)) from None

    @magic_arguments()
    @argument("name", help="NAME or NAME@VERSION")
    @argument("--minutes", type=int, default=60, help="per-minute window (default 60)")
    @argument("--bins", type=int, default=30, help="histogram bins (default 30)")
    @line_magic
    def fn_metrics(self, line: str) -> Any:
        """Latency over time, latency histogram (p50/p95/p99), calls and errors per minute,
        cold vs warm, calls per tier and status, caller mistakes apart; with a Refresh button.
        The numbers are defined in ``functions_nb.history_queries`` (as ``%functions``)."""
        from .widgets.metrics import MetricsView

        args = parse_argstring(self.fn_metrics, line)
        return MetricsView(self.fx, args.name, minutes=args.minutes, bins=args.bins)

    def _parse_invoke(self, line: str) -> tuple[dict[str, Any], str, str]:
        opts: dict[str, Any] = {"timeout": None, "quiet": False, "cascade": {}}
        cascade = opts["cascade"]
        rest = line.strip()
        while rest.startswith("--"):
            word, _, rest = rest.partition(" ")
            rest = rest.strip()
            if word in _FLAGS:
                cascade[_FLAGS[word][0]] = _FLAGS[word][1]
                continue
            if word == "--quiet":
                opts["quiet"] = True
                continue
            if word == "--cascade":
                cascade.setdefault("fallback", True)
                continue
            value, _, rest = rest.partition(" ")
            rest = rest.strip()
            try:
                if word == "--timeout":
                    opts["timeout"] = float(value)
                elif word == "--total-timeout":
                    cascade["total_timeout"] = float(value)
                elif word == "--start-tier":
                    cascade["start_tier"] = value
                elif word == "--skip-tiers":
                    cascade["skip_tiers"] = [t for t in value.split(",") if t]
                elif word == "--retries":
                    cascade["tier_retries"] = {k: int(v) for k, v in _pairs(value)}
                elif word == "--tier-timeouts":
                    cascade["tier_timeouts"] = {k: float(v) for k, v in _pairs(value)}
                elif word == "--model":
                    cascade["model"] = value
                else:
                    raise BadArguments(f"unknown option {word}; see %invoke?")
            except ValueError:
                raise BadArguments(f"{word}: cannot read {value!r}; see %invoke?") from None
        opts["cascade"] = cascade if cascade else {}
        if cascade:
            opts["cascade"]["fallback"] = cascade.get("fallback", True)
        target, _, rest = rest.partition(" ")
        if not target:
            raise BadArguments("usage: %invoke [--timeout S] NAME[@VERSION] ARG ...")
        return opts, target, rest

    @magic_arguments()
    @argument("--sort", default="name",
              help="name, language, calls, error_rate, caller_errors, p50 or p95 (default name)")
    @argument("--desc", action="store_true", help="descending order")
    @argument("--latest", action="store_true", help="statistics of the latest versions only")
    @line_magic
    def functions(self, line: str) -> Any:
        """Table of deployed functions: language, latest version, calls, error rate, caller
        mistakes, p50/p95 latency, last call, breaker state; sortable, with a Refresh button.
        The numbers are defined in ``functions_nb.history_queries`` (as ``%fn_metrics``)."""
        from .widgets.functions import FunctionsTable

        args = parse_argstring(self.functions, line)
        try:
            return FunctionsTable(self.fx, sort=args.sort, descending=args.desc,
                                  latest_only=args.latest)
        except ValueError as exc:
            raise BadArguments(str(exc)) from None

    @magic_arguments()
    @argument("name", nargs="?", help="only this function's versions")
    @argument("--no-live", action="store_true", help="no countdown thread; use Refresh")
    @line_magic
    def fn_breakers(self, line: str) -> Any:
        """Circuit breakers of this kernel: state, failures, trips, time until half-open,
        transition timeline and a Reset button each."""
        from .widgets.breakers import BreakersView

        args = parse_argstring(self.fn_breakers, line)
        return BreakersView(self.fx, args.name, live=not args.no_live)

    @magic_arguments()
    @argument("name", help="function name")
    @argument("model", help="a Python expression: the model (scikit-learn estimator or "
                            "pipeline, torch module, onnx ModelProto, .onnx bytes or path)")
    @argument("example", nargs="?", default=None,
              help="a Python expression: an example input, e.g. X[:1] (gives the input type)")
    @argument("--timeout", type=float, default=DEFAULT_TIMEOUT,
              help=f"default time limit per call in seconds (default {DEFAULT_TIMEOUT:g})")
    @argument("--memory", type=int, default=DEFAULT_MEMORY_MB,
              help=f"memory limit per call in MB (default {DEFAULT_MEMORY_MB})")
    @argument("--input-type", default=None, help="float32, float64 or int64 (scikit-learn)")
    @argument("--quiet", action="store_true", help="print nothing on success")
    @line_magic
    def fn_model(self, line: str) -> None:
        """Deploy a model as a new version of NAME: ``%fn_model iris clf X[:1]``. The model
        is converted to ONNX (scikit-learn with skl2onnx, PyTorch with torch.onnx.export)
        and runs in ONNX Runtime; re-deploying an unchanged model makes no new version
        (the deployed version's info is then ``fx.info(NAME)``)."""
        opts = parse_argstring(self.fn_model, line)
        model = self.shell.ev(opts.model)
        example = self.shell.ev(opts.example) if opts.example is not None else None
        flags = {"input_type": opts.input_type} if opts.input_type else None
        info = self.fx.deploy("onnx", model, opts.name, timeout=opts.timeout,
                              memory_mb=opts.memory, flags=flags, example=example)
        self.last = info
        if not opts.quiet:
            how = "unchanged" if info.cached else f"converted in {format_seconds(info.compile_ms / 1000)}"
            print(f"deployed model {info.target} ({how}) · {info.signature}")

    @line_cell_magic
    def fn_sql(self, line: str, cell: str | None = None) -> Any:
        """DuckDB SQL over the ``executions`` table; returns a pandas DataFrame."""
        return self.fx.sql(cell if cell is not None else line)
