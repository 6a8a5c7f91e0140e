"""Thin tornado handlers over :class:`functions_nb.client.Functions`.

Every route is a Jupyter ``APIHandler``: Jupyter's identity provider authenticates the request
(token, password, JupyterHub, ...), a request without a user is refused before anything else
(also before the rate limiter), and each method asks Jupyter's Authorizer for its action on
the resource ``functions`` (:data:`RESOURCE`): ``read`` (listing, info, logs, metrics, SQL,
summary, breakers, human tasks, health, the OpenAPI document), ``execute`` (invoke) or
``write`` (deploy, answering human tasks). The SQL route runs on the read-only connection of
:mod:`functions_nb.history_sql`. Blocking work (compiling, running, DuckDB) runs in a thread
pool so the server stays responsive. Errors are JSON ``{"error": {"code", "message"}}``; the
status codes are in :data:`STATUS`.
"""

from __future__ import annotations

import asyncio
import datetime as _dt
import hashlib
import http
import json
import math
import re
import threading
import time
from collections.abc import Callable
from typing import Any

import tornado.web
from jupyter_server.auth.decorator import authorized
from jupyter_server.base.handlers import APIHandler
from jupyter_server.utils import url_path_join

from .. import history_sql
from ..breaker import TransitionLog
from ..config import MAX_LINE_OFFSET
from ..dependencies import pinned
from ..errors import (
    BadArguments,
    CircuitOpen,
    CompileError,
    FunctionNotFound,
    FunctionsError,
    InvocationError,
    QueueFull,
    StorageError,
    ToolchainMissing,
)
from ..history_queries import empty_stats, function_stats, iso, last_errors, of_functions, stats_of
from ..models import check_name
from .config import MAX_TIER_RETRIES, FunctionsNB

PREFIX = "functions-nb/api"
#: The resource the handlers ask Jupyter's Authorizer about (actions: read, execute, write).
RESOURCE = "functions"

#: HTTP status per error class (first match wins). InvocationError (the function itself
#: failed: trap, panic, timeout, memory limit, exhausted cascade) is 422, never 500.
STATUS: list[tuple[type[BaseException], int]] = [
    (CompileError, 400),
    (BadArguments, 400),
    (FunctionNotFound, 404),
    (CircuitOpen, 503),
    (QueueFull, 429),
    (InvocationError, 422),
    (ToolchainMissing, 501),
    (StorageError, 503),
    (FunctionsError, 500),
]


class ApiError(Exception):
    """An error with its own HTTP status and code (request problems found by the handlers)."""

    def __init__(self, status: int, code: str, message: str, headers: dict[str, str] | None = None):
        super().__init__(message)
        self.status = status
        self.code = code
        self.headers = headers or {}


class RateLimiter:
    """A token bucket per client: ``rate`` tokens a second, up to ``burst``."""

    def __init__(self, rate: float, burst: int) -> None:
        self.rate = rate
        self.burst = max(1, burst)
        self._buckets: dict[str, tuple[float, float]] = {}
        self._lock = threading.Lock()

    def take(self, client: str) -> float:
        """0 if the request may go on, else the seconds until a token is free."""
        if self.rate <= 0:
            return 0.0
        now = time.monotonic()
        with self._lock:
            tokens, last = self._buckets.get(client, (float(self.burst), now))
            tokens = min(float(self.burst), tokens + (now - last) * self.rate)
            if tokens >= 1.0:
                self._buckets[client] = (tokens - 1.0, now)
                return 0.0
            self._buckets[client] = (tokens, now)
            if len(self._buckets) > 10000:  # forget idle clients
                self._buckets = {k: v for k, v in self._buckets.items() if now - v[1] < 60}
            return (1.0 - tokens) / self.rate


class ServerState:
    """What the handlers share: the configuration, the rate limiter and one ``Functions``."""

    def __init__(self, config: FunctionsNB) -> None:
        self.config = config
        self.limiter = RateLimiter(config.rate_limit, config.rate_burst)
        self._fx: Any = None
        self._lock = threading.Lock()

    @property
    def fx(self) -> Any:
        with self._lock:
            if self._fx is None:
                from ..client import Functions

                self._fx = Functions(store=self.config.store, ceilings=self.config.ceilings())
            return self._fx

    def close(self) -> None:
        with self._lock:
            if self._fx is not None:
                self._fx.close()
                self._fx = None


def jsonable(value: Any) -> Any:
    """A JSON-safe copy of ``value``: numpy arrays and scalars -> lists / numbers, bytes -> text,
    NaN / infinity -> null, anything else -> its repr."""
    def default(obj: Any) -> Any:
        if isinstance(obj, (bytes, bytearray, memoryview)):
            return bytes(obj).decode("utf-8", "replace")
        if hasattr(obj, "tolist"):
            return obj.tolist()
        if hasattr(obj, "to_dict"):
            return obj.to_dict()
        if isinstance(obj, (set, frozenset, tuple)):
            return list(obj)
        return repr(obj)

    def clean(obj: Any) -> Any:
        if isinstance(obj, float) and not math.isfinite(obj):
            return None
        if isinstance(obj, list):
            return [clean(v) for v in obj]
        if isinstance(obj, dict):
            return {k: clean(v) for k, v in obj.items()}
        return obj

    return clean(json.loads(json.dumps(value, default=default)))


def frame_rows(frame: Any) -> list[dict[str, Any]]:
    """A pandas DataFrame as JSON records (timestamps ISO, NaN null)."""
    return json.loads(frame.to_json(orient="records", date_format="iso", default_handler=str))


def stats_json(stats: dict[str, Any]) -> dict[str, Any]:
    """A function's history numbers (:mod:`functions_nb.history_queries`) as the API shows
    them: ``count`` (calls), ``errors``, ``caller_errors``, ``error_rate``, ``p50``/``p95``/
    ``p99`` (ms), ``last_status`` and ``last_at`` (ISO 8601, UTC)."""
    keys = ("count", "errors", "caller_errors", "error_rate", "p50", "p95", "p99", "last_status")
    return {**{k: stats[k] for k in keys}, "last_at": iso(stats["last_at"])}


def info_dict(info: Any, short: bool = False) -> dict[str, Any]:
    if short:
        return {"name": info.name, "version": info.version, "language": info.language,
                "signature": str(info.signature)}
    data = jsonable(info.to_dict())
    data["signature_text"] = str(info.signature)
    data["target"] = info.target
    data["cached"] = bool(getattr(info, "cached", False))
    return data


class BaseHandler(APIHandler):
    """JSON in / out, body-size and rate limits, errors as ``{"error": {code, message}}``."""

    @property
    def state(self) -> ServerState:
        return self.settings["functions_nb"]

    @property
    def fx(self) -> Any:
        return self.state.fx

    def client_key(self) -> str:
        """The rate-limit key: the identity that authenticated the request. A request
        authenticated by a token is keyed by (a hash of) that token: Jupyter's token login
        makes a new anonymous user per request, so the user name is no stable key there; any
        other request (cookie, password, JupyterHub) by its user name."""
        provider = self.identity_provider
        if provider.is_token_authenticated(self):
            token = provider.get_token(self) or ""
            return "token:" + hashlib.sha256(token.encode()).hexdigest()[:32]
        return f"user:{self.current_user.username}"

    async def prepare(self) -> None:
        await super().prepare()
        if self._finished:
            return
        if not self.current_user:
            # refused before the rate limiter: a request without credentials never spends an
            # authenticated identity's budget (the limiter is keyed by identity)
            raise tornado.web.HTTPError(403, "authentication required")
        limit = self.state.config.max_body_bytes
        length = self.request.headers.get("Content-Length")
        if (length and length.isdigit() and int(length) > limit) or len(self.request.body or b"") > limit:
            self.send_error_json(ApiError(413, "body_too_large",
                                          f"request body is larger than {limit} bytes"))
            return
        wait = self.state.limiter.take(self.client_key())
        if wait > 0:
            self.send_error_json(ApiError(429, "rate_limited",
                                          f"too many requests; retry in {wait:.2f} s",
                                          {"Retry-After": str(max(1, math.ceil(wait)))}))

    def send_error_json(self, err: ApiError) -> None:
        self.clear()
        self.set_status(err.status)
        for key, value in err.headers.items():
            self.set_header(key, value)
        self.set_header("Content-Type", "application/json")
        self.finish(json.dumps({"error": {"code": err.code, "message": str(err)}}))

    def write_error(self, status_code: int, **kwargs: Any) -> None:
        """Tornado's errors (403 unauthenticated, 404, 405, uncaught) in our JSON form."""
        exc = kwargs.get("exc_info", (None, None, None))[1]
        message = self._reason
        if isinstance(exc, tornado.web.HTTPError) and exc.log_message:
            message = exc.log_message % exc.args if exc.args else exc.log_message
        code = _http_code(status_code)
        self.set_header("Content-Type", "application/json")
        self.finish(json.dumps({"error": {"code": code, "message": message}}))

    def body(self) -> dict[str, Any]:
        """The JSON object of the request (at most ``max_body_bytes``, checked in
        :meth:`prepare`, and nested at most ``max_json_depth`` deep)."""
        if not self.request.body:
            return {}
        depth = self.state.config.max_json_depth
        too_deep = ApiError(400, "bad_json", f"the body is nested deeper than {depth} levels "
                                             "of arrays and objects")
        try:
            data = json.loads(self.request.body)
        except RecursionError:
            raise too_deep from None
        except (ValueError, UnicodeDecodeError) as exc:
            raise ApiError(400, "bad_json", f"the body is not JSON: {exc}") from None
        if not isinstance(data, dict):
            raise ApiError(400, "bad_json", "the body must be a JSON object")
        if json_depth(data, depth) > depth:
            raise too_deep
        return data

    def reply(self, data: Any, status: int = 200) -> None:
        self.set_status(status)
        self.set_header("Content-Type", "application/json")
        self.finish(json.dumps(jsonable(data)))

    async def call(self, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        return await asyncio.get_running_loop().run_in_executor(None, lambda: fn(*args, **kwargs))

    async def guarded(self, work: Callable[[], Any]) -> None:
        """Run the handler's coroutine and turn errors into JSON with the right status."""
        try:
            await work()
        except ApiError as err:
            self.send_error_json(err)
        except FunctionsError as err:
            status = next(code for cls, code in STATUS if isinstance(err, cls))
            headers = {}
            if isinstance(err, CircuitOpen):
                headers["Retry-After"] = str(max(1, math.ceil(err.retry_after or 1)))
            self.send_error_json(ApiError(status, getattr(err, "kind", "error"), str(err), headers))


def json_depth(value: Any, limit: int) -> int:
    """How deeply ``value`` nests lists and objects (a scalar is 0), counted up to
    ``limit + 1`` (no recursion: safe for any depth)."""
    deepest = 0
    stack: list[tuple[Any, int]] = [(value, 0)]
    while stack:
        item, level = stack.pop()
        if isinstance(item, (list, dict)):
            level += 1
            if level > limit:
                return level
            deepest = max(deepest, level)
            stack.extend((v, level) for v in (item.values() if isinstance(item, dict) else item))
    return deepest


#: A version in a path: ASCII digits only (``str.isdigit`` also accepts ``²`` and ``١``).
_VERSION = re.compile(r"[0-9]{1,9}", re.ASCII)


def check_target(target: str) -> str:
    """``target`` (``name`` or ``name@N`` from a path) if ``N`` is at most 9 ASCII digits.
    The server's own check: the SDK's :func:`functions_nb.models.parse_target` checks the name
    and ``N >= 1``, but ``str.isdigit`` let ``add@²`` through to a ValueError (500) and
    ``add@١`` to version 1."""
    _, sep, version = target.partition("@")
    if sep and not _VERSION.fullmatch(version):
        raise ApiError(400, "bad_arguments",
                       f"invalid version {version!r} in {target!r}: a version is a number "
                       "written with the ASCII digits 0-9 (name@N)")
    return target


def _http_code(status: int) -> str:
    """The error code of a status tornado or Jupyter set (400 for a body tornado cannot parse,
    403 unauthenticated, 405, ...): its reason in snake case; every 5xx is ``server_error``."""
    if status >= 500:
        return "server_error"
    try:
        return http.HTTPStatus(status).phrase.lower().replace(" ", "_").replace("-", "_")
    except ValueError:
        return "client_error"



def _number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def check_cascade_options(options: dict[str, Any], where: str = "options") -> None:
    """JSON-level checks of the cascade's engine options, so a wrong type is a 400 and not
    an exception deep in the engine; the engine still checks the values (tier names, ...).

    ``timeout`` belongs at the top level of the request, and ``wait_human`` is refused: over
    HTTP a human tier answers 202 with a task, and waiting would hold a server thread for up
    to the human tier's timeout (a day by default)."""
    def bad(message: str) -> ApiError:
        return ApiError(400, "bad_arguments", f"{where}: {message}")

    if "timeout" in options:
        raise bad("timeout is a top-level field of the request, not a cascade option")
    if "wait_human" in options and options["wait_human"] is not False:
        raise bad("wait_human is not supported over HTTP: a human tier answers 202 with a task "
                  "(GET human/tasks, POST human/tasks/{id}/answer)")
    if "start_tier" in options and not isinstance(options["start_tier"], str):
        raise bad("start_tier must be a tier name")
    skip = options.get("skip_tiers", ())
    if not isinstance(skip, str) and not (isinstance(skip, list | tuple)
                                          and all(isinstance(t, str) for t in skip)):
        raise bad("skip_tiers must be a tier name or a list of tier names")
    retries = options.get("tier_retries", {})
    if not (isinstance(retries, dict) and all(
            isinstance(n, int) and not isinstance(n, bool) and 0 <= n <= MAX_TIER_RETRIES
            for n in retries.values())):
        raise bad(f"tier_retries must be an object of tier -> integer 0..{MAX_TIER_RETRIES}")
    timeouts = options.get("tier_timeouts", {})
    if not (isinstance(timeouts, dict) and all(_number(t) and t > 0 for t in timeouts.values())):
        raise bad("tier_timeouts must be an object of tier -> positive number of seconds")
    if "total_timeout" in options and not (_number(options["total_timeout"])
                                           and options["total_timeout"] > 0):
        raise bad("total_timeout must be a positive number of seconds")
    if "backoff" in options and not (_number(options["backoff"]) and options["backoff"] >= 0):
        raise bad("backoff must be a non-negative number of seconds")
    for key in ("parallel", "fallback"):
        if key in options and not isinstance(options[key], bool):
            raise bad(f"{key} must be true or false")


def _int(value: str | None, name: str, default: int, lo: int = 1, hi: int = 10000) -> int:
    if value is None or value == "":
        return default
    try:
        number = int(value)
    except ValueError:
        raise ApiError(400, "bad_arguments", f"{name} must be an integer, got {value!r}") from None
    if not lo <= number <= hi:
        raise ApiError(400, "bad_arguments", f"{name} must be within {lo}..{hi}")
    return number


class HealthHandler(BaseHandler):
    @authorized("read", resource=RESOURCE)
    async def get(self) -> None:
        async def work() -> None:
            from .. import __version__

            self.reply({"status": "ok", "version": __version__, "store": self.state.config.store})
        await self.guarded(work)


class FunctionsHandler(BaseHandler):
    @authorized("read", resource=RESOURCE)
    async def get(self) -> None:
        async def work() -> None:
            infos = await self.call(self.fx.list)
            self.reply({"functions": [info_dict(i, short=True) for i in infos]})
        await self.guarded(work)

    @authorized("write", resource=RESOURCE)
    async def post(self) -> None:
        async def work() -> None:
            data = self.body()
            missing = [k for k in ("language", "source", "name") if not isinstance(data.get(k), str)]
            if missing:
                raise ApiError(400, "bad_arguments", f"deploy needs text fields: {', '.join(missing)}")
            kwargs: dict[str, Any] = {}
            for key, kind in (("timeout", (int, float)), ("memory_mb", int), ("options", dict),
                              ("flags", dict), ("force", bool), ("line_offset", int)):
                if data.get(key) is not None:
                    if not isinstance(data[key], kind) or (key != "force" and isinstance(data[key], bool)):
                        raise ApiError(400, "bad_arguments", f"{key} has the wrong type")
                    kwargs[key] = data[key]
            if not 0 <= kwargs.get("line_offset", 0) <= MAX_LINE_OFFSET:
                raise ApiError(400, "bad_arguments", f"line_offset must be within 0..{MAX_LINE_OFFSET}")
            cascade = kwargs.get("options", {}).get("cascade")
            if cascade is not None:
                if not isinstance(cascade, dict):
                    raise ApiError(400, "bad_arguments", "options.cascade must be a JSON object")
                check_cascade_options(cascade, "options.cascade")
                from ..cascade.engine import CascadeOptions

                CascadeOptions.parse(cascade)  # tier names and values: BadArguments, a 400
            source: Any = data["source"]
            if data["language"].lower() == "onnx":  # a model's bytes, base64 (never a server path)
                import base64
                import binascii

                try:
                    source = base64.b64decode(source, validate=True)
                except (binascii.Error, ValueError):
                    raise ApiError(400, "bad_arguments", "an onnx deploy's source is the model's "
                                   "bytes, base64-encoded") from None
            info = await self.call(self.fx.deploy, data["language"], source, data["name"],
                                   **kwargs)
            self.reply(info_dict(info), 200 if info.cached else 201)
        await self.guarded(work)


class FunctionHandler(BaseHandler):
    @authorized("read", resource=RESOURCE)
    async def get(self, target: str) -> None:
        async def work() -> None:
            info = await self.call(self.fx.info, check_target(target))
            data = info_dict(info)
            data["versions"] = await self.call(self.fx.versions, info.name, True)
            self.reply(data)
        await self.guarded(work)


class InvokeHandler(BaseHandler):
    @authorized("execute", resource=RESOURCE)
    async def post(self, target: str) -> None:
        async def work() -> None:
            check_target(target)
            data = self.body()
            args = data.get("args", [])
            options = data.get("options") or {}
            if not isinstance(args, list):
                raise ApiError(400, "bad_arguments", "args must be a JSON list")
            if not isinstance(options, dict):
                raise ApiError(400, "bad_arguments", "options must be a JSON object")
            check_cascade_options(options)
            timeout = data.get("timeout")
            if timeout is not None and (not _number(timeout) or timeout <= 0):
                raise ApiError(400, "bad_arguments", "timeout must be a positive number")
            self.reply(*await self.call(self._invoke, target, args, options, timeout))
        await self.guarded(work)

    def _invoke(self, target: str, args: list[Any], options: dict[str, Any],
                timeout: float | None) -> tuple[dict[str, Any], int]:
        fx = self.fx
        info = fx.loader.get(target).info
        if not options and not info.options.get("cascade") and info.runtime != "prompt":
            exe = fx.run(target, *args, timeout=timeout)
            if exe.error is not None:
                raise exe.error
            return {"value": exe.value, "status": exe.status, "duration_ms": exe.duration_ms,
                    "execution_id": exe.id, "version": exe.version, "cold": exe.cold}, 200
        result = fx.cascade(target, *args, timeout=timeout, **options)
        if hasattr(result, "tier"):
            return {"value": result.value, "tier": result.tier, "status": "ok",
                    "duration_ms": result.duration_ms, "execution_id": result.cascade_id,
                    "attempts": result.timeline()}, 200
        # a human Pending: the answer comes later (GET human/tasks, POST .../answer)
        return {"status": "pending", "task_id": result.task_id, "execution_id": result.execution_id,
                "tier": "human", "attempts": [a.to_dict() for a in result.attempts]}, 202


class LogsHandler(BaseHandler):
    @authorized("read", resource=RESOURCE)
    async def get(self) -> None:
        async def work() -> None:
            name = self.get_query_argument("name", None) or None
            limit = _int(self.get_query_argument("limit", None), "limit", 20)
            frame = await self.call(self.fx.logs, name, limit)
            self.reply({"rows": frame_rows(frame)})
        await self.guarded(work)


class MetricsHandler(BaseHandler):
    @authorized("read", resource=RESOURCE)
    async def get(self, name: str) -> None:
        async def work() -> None:
            check_name(name)
            stats = await self.call(stats_of, self.fx.sql, name)
            self.reply({"name": name, **stats_json(stats)})
        await self.guarded(work)


def recorded_transitions(fx: Any) -> dict[str, dict[str, Any]]:
    """Function name -> the newest breaker transition any process recorded in the store
    (:class:`~functions_nb.breaker.TransitionLog`), as JSON: ``at`` in ISO 8601 and
    ``server`` true when it is this server's own breaker."""
    own = fx.loader.transitions.writer
    found = {}
    for name, change in TransitionLog.newest(fx.store).items():
        at = _dt.datetime.fromtimestamp(change["at"], _dt.UTC)
        found[name] = {**{k: v for k, v in change.items() if k != "writer"}, "at": iso(at),
                       "server": change["writer"] == own}
    return found


class BreakersHandler(BaseHandler):
    """This server's breakers, and the newest transition per function recorded by any process
    on the store (a kernel's breaker is in the kernel: only its transitions are shared)."""

    @authorized("read", resource=RESOURCE)
    async def get(self) -> None:
        async def work() -> None:
            fx = self.fx
            recorded = await self.call(recorded_transitions, fx)
            self.reply({"breakers": fx.loader.breakers(),
                        "recorded": [recorded[n] for n in sorted(recorded)]})
        await self.guarded(work)


class SummaryHandler(BaseHandler):
    """Everything the sidebar shows, in one request: each function with its language, version
    count, breaker state and history numbers (:func:`stats_json`); the recent executions; the
    pending human tasks. ``breaker`` is this server's own breaker of the latest version;
    ``breaker_last`` the newest transition any process on the store recorded (a kernel's
    breaker, whose, when and why: :func:`recorded_transitions`); ``last_error`` the newest
    failed record (an error or a caller mistake, told apart by ``caller``)."""

    @authorized("read", resource=RESOURCE)
    async def get(self) -> None:
        async def work() -> None:
            limit = _int(self.get_query_argument("recent", None), "recent", 20, hi=500)
            self.reply(await self.call(self._summary, limit))
        await self.guarded(work)

    def _summary(self, limit: int) -> dict[str, Any]:
        fx = self.fx
        infos = fx.list()
        stats: dict[str, dict[str, Any]] = {}
        errors: dict[str, dict[str, Any]] = {}
        recent: list[dict[str, Any]] = []
        if fx.history is not None:
            stats = function_stats(fx.sql, of_functions(i.name for i in infos))
            errors = last_errors(fx.sql, of_functions(i.name for i in infos))
            recent = frame_rows(fx.sql(
                "SELECT started_at, id, function, version, coalesce(tier, 'code') AS tier, status, "
                "error_kind, error_message, round(duration_ms, 3) AS duration_ms, output "
                f"FROM executions ORDER BY started_at DESC LIMIT {limit}"))
        breakers: dict[str, str] = {}
        for snap in fx.loader.breakers():  # name@version; the latest version's state wins below
            breakers[str(snap["name"])] = str(snap["state"])
        recorded = recorded_transitions(fx)
        functions = []
        for info in infos:
            functions.append({
                **info_dict(info, short=True),
                "versions": len(fx.versions(info.name)),
                "dependencies": [f"{p['name']} {p['version']}" for p in pinned(info.dependencies)],
                "breaker": breakers.get(f"{info.name}@{info.version}", "closed"),
                "breaker_last": recorded.get(info.name),
                "last_error": ({**errors[info.name], "at": iso(errors[info.name]["at"])}
                               if info.name in errors else None),
                **stats_json(stats.get(info.name) or empty_stats())})
        return {"functions": functions, "recent": recent, "tasks": fx.human.ls("pending")}


class SqlHandler(BaseHandler):
    @authorized("read", resource=RESOURCE)
    async def post(self) -> None:
        async def work() -> None:
            query = self.body().get("query")
            if not isinstance(query, str) or not query.strip():
                raise ApiError(400, "bad_arguments", "query must be a non-empty SQL text")
            limit = _int(self.get_query_argument("limit", None), "limit", 1000, hi=100000)
            history = self.fx.history
            if history is None:
                raise ApiError(400, "bad_arguments", "this server records no history")
            config = self.state.config
            result = await self.call(history_sql.query, history, query, max_rows=limit,
                                     timeout=config.sql_timeout, memory_mb=config.sql_memory_mb,
                                     threads=config.sql_threads)
            self.reply({"columns": result.columns, "row_count": result.row_count,
                        "rows": frame_rows(result.frame)})
        await self.guarded(work)


class HumanTasksHandler(BaseHandler):
    @authorized("read", resource=RESOURCE)
    async def get(self) -> None:
        async def work() -> None:
            status = self.get_query_argument("status", "pending")
            rows = await self.call(self.fx.human.ls, None if status == "all" else status)
            self.reply({"tasks": rows})
        await self.guarded(work)


class HumanAnswerHandler(BaseHandler):
    @authorized("write", resource=RESOURCE)
    async def post(self, task_id: str) -> None:
        async def work() -> None:
            data = self.body()
            decision = data.get("decision")
            who = data.get("who") or self.client_user()
            why = data.get("why") or ""
            if not isinstance(why, str) or not isinstance(who, str | None):
                raise ApiError(400, "bad_arguments", "who and why must be text")
            desk = self.fx.human
            if decision == "value":
                if "value" not in data:
                    raise ApiError(400, "bad_arguments", "decision 'value' needs a value")
                answer = await self.call(desk.answer, task_id, data["value"], who=who, why=why)
            elif decision == "approve":
                answer = await self.call(desk.approve, task_id, who=who, why=why)
            elif decision == "reject":
                answer = await self.call(desk.reject, task_id, why, who=who)
            else:
                raise ApiError(400, "bad_arguments", "decision must be value, approve or reject")
            self.reply(answer)
        await self.guarded(work)

    def client_user(self) -> str | None:
        user = self.current_user
        return getattr(user, "username", None) if user else None


class OpenAPIHandler(BaseHandler):
    @authorized("read", resource=RESOURCE)
    async def get(self) -> None:
        async def work() -> None:
            from .openapi import openapi

            self.reply(openapi(url_path_join(self.base_url, PREFIX)))
        await self.guarded(work)


class NotFoundHandler(BaseHandler):
    @authorized("read", resource=RESOURCE)
    async def get(self, path: str) -> None:
        self.send_error_json(ApiError(404, "not_found", f"no route /{PREFIX}/{path}"))

    post = get


_NAME = r"([^/]+)"


def handlers(base_url: str) -> list[tuple[str, type]]:
    """The routes, under ``{base_url}functions-nb/api/``."""
    routes = [
        ("health", HealthHandler),
        ("openapi.json", OpenAPIHandler),
        ("functions", FunctionsHandler),
        (f"functions/{_NAME}", FunctionHandler),
        (f"functions/{_NAME}/invoke", InvokeHandler),
        ("logs", LogsHandler),
        (f"metrics/{_NAME}", MetricsHandler),
        ("breakers", BreakersHandler),
        ("summary", SummaryHandler),
        ("sql", SqlHandler),
        ("human/tasks", HumanTasksHandler),
        (f"human/tasks/{_NAME}/answer", HumanAnswerHandler),
        ("(.*)", NotFoundHandler),
    ]
    return [(url_path_join(base_url, PREFIX, path), cls) for path, cls in routes]
