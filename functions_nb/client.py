"""The SDK: deploy / invoke / list / logs / sql. Every front end goes through this class."""

from __future__ import annotations

import importlib
import json
import time
import weakref
from typing import TYPE_CHECKING, Any

from .config import (
    DEFAULT_MEMORY_MB,
    DEFAULT_TIMEOUT,
    LATEST_TTL,
    LOG_RETENTION_DAYS,
    LRU_SIZE,
    MAX_CONCURRENCY,
    MAX_LINE_OFFSET,
    MAX_QUEUE,
    BreakerConfig,
    Ceilings,
    default_store_url,
)
from .errors import BadArguments, FunctionNotFound, FunctionsError, StorageError, error_status
from .executor import Executor
from .history import History
from .loader import Loader
from .models import (
    Execution,
    ExecutionRecord,
    FunctionInfo,
    Signature,
    check_name,
    parse_target,
)
from .storage import HybridStore, open_store

if TYPE_CHECKING:
    from .mapping import MapResults

# Deploying (languages, hashlib), mapping, the cascade beyond a plain call and history
# queries (DuckDB, pandas) import what they need when first used: a process that only
# invokes loads none of it.

#: Tiers beyond code, imported when first needed (module:class).
_OPTIONAL_TIERS = {
    "generative": "functions_nb.cascade.generative:GenerativeTier",
    "agentic": "functions_nb.cascade.agentic:AgenticTier",
    "human": "functions_nb.cascade.human:HumanTier",
}


_current: weakref.ref[Functions] | None = None


def current_client() -> Functions | None:
    """The ``Functions`` most recently created in this process that is still alive."""
    return _current() if _current is not None else None


class Functions:
    """Deploy functions into an fsspec store and invoke them sandboxed.

    >>> fx = Functions(store="file:///tmp/fx")            # doctest: +SKIP
    >>> fx.deploy("rust", "fn add(a: i32, b: i32) -> i32 { a + b }", name="add")  # doctest: +SKIP
    >>> fx.invoke("add", 2, 3)                            # doctest: +SKIP
    5
    """

    def __init__(self, store: str | None = None, *, fallback: str | None = None,
                 prefer_primary: bool = True, write_primary: bool = True,
                 auto_migrate: bool = False, storage_options: dict[str, Any] | None = None,
                 fallback_options: dict[str, Any] | None = None, cache_size: int = LRU_SIZE,
                 max_concurrency: int = MAX_CONCURRENCY, max_queue: int = MAX_QUEUE,
                 breaker: BreakerConfig | None = None, history: bool = True,
                 retention_days: float = LOG_RETENTION_DAYS, latest_ttl: float = LATEST_TTL,
                 flush_interval: float = 1.0, model: Any = None, agent_model: Any = None,
                 cluster: Any = None, ceilings: Ceilings | None = None) -> None:
        #: The largest memory and time limits a deploy or a call may ask for.
        self.ceilings = ceilings or Ceilings.from_env()
        self.store = open_store(store or default_store_url(), fallback=fallback,
                                prefer_primary=prefer_primary, write_primary=write_primary,
                                auto_migrate=auto_migrate, storage_options=storage_options,
                                fallback_options=fallback_options)
        self.history = History(self.store, retention_days=retention_days,
                               flush_interval=flush_interval) if history else None
        self.loader = Loader(self.store, size=cache_size, breaker=breaker, latest_ttl=latest_ttl)
        self.executor = Executor(max_concurrency, max_queue,
                                 record=self.history.record if self.history else None)
        self._get = self.loader.get
        self._run = self.executor.run
        #: Dask cluster for :meth:`map`: a ``distributed.Client``, a scheduler address or a
        #: cluster object; its workers open the store with the same options.
        self.cluster = cluster
        self._dask: Any = None
        self._worker_options = {
            "storage_options": storage_options, "fallback_options": fallback_options,
            "prefer_primary": prefer_primary, "write_primary": write_primary,
            "auto_migrate": auto_migrate, "cache_size": cache_size,
            "max_concurrency": max_concurrency, "max_queue": max_queue, "breaker": breaker,
            "history": history, "retention_days": retention_days, "latest_ttl": latest_ttl,
            "flush_interval": flush_interval, "ceilings": self.ceilings}
        #: Default models of the generative / agentic tiers ("provider:model" or a model).
        self.model = model
        self.agent_model = agent_model
        self._cascade: Any = None
        self._human: Any = None
        self._services_obj: Any = None
        global _current
        _current = weakref.ref(self)

    def __repr__(self) -> str:
        return f"Functions(store={self.store.url!r})"

    # deploy ----------------------------------------------------------------------
    def deploy(self, language: str, source: str, name: str, *, timeout: float = DEFAULT_TIMEOUT,
               memory_mb: int = DEFAULT_MEMORY_MB, force: bool = False,
               line_offset: int = 0, flags: dict[str, Any] | None = None,
               options: dict[str, Any] | None = None, example: Any = None) -> FunctionInfo:
        """Compile ``source`` and store it as a new version of ``name``.

        Re-deploying identical source, flags, options and toolchain returns the existing
        version without compiling (``info.cached`` is True) unless ``force``. ``line_offset``
        shifts reported line numbers (the magic passes 1 for the ``%%function`` line).
        ``options`` are stored with the version: ``cascade`` (default cascade options, e.g.
        ``{"tier_retries": {"code": 2}}``; their presence makes every invoke a cascade),
        ``description``, and tier options such as ``model``, ``prompt``, ``question``.
        Raises :class:`CompileError` with the compiler's text on failure, and
        :class:`BadArguments` for input it refuses before compiling (a limit above its
        :class:`~functions_nb.config.Ceilings`, source too long, options that are not JSON).

        ``language="onnx"`` deploys a model: ``source`` is an ONNX ModelProto, bytes, a path,
        a scikit-learn estimator or a PyTorch module, ``example`` an input
        (:mod:`functions_nb.languages.onnx`).
        """
        check_name(name)
        timeout = self.ceilings.check_timeout(timeout)
        memory_mb = self.ceilings.check_memory(memory_mb)
        model = isinstance(language, str) and language.lower() == "onnx"
        if not model:
            source = self.ceilings.check_source(source)
        if type(line_offset) is not int or not 0 <= line_offset <= MAX_LINE_OFFSET:
            raise BadArguments(f"line_offset must be a whole number 0..{MAX_LINE_OFFSET}")
        if not isinstance(language, str):
            raise BadArguments(f"language must be text, got {type(language).__name__}")
        flags = _json_dict(flags, "flags")
        options = _json_dict(options, "options")
        if "cascade" in options:
            self._check_cascade(options["cascade"], "options['cascade']")
        import hashlib

        from .languages import get_language

        lang = get_language(language)
        lang.require_toolchain()
        artifact = None
        if model:  # a model object, converted and checked first; its bytes are the artifact
            artifact = lang.convert(source, name, flags, example, memory_mb)  # type: ignore[attr-defined]
            source = artifact.source
        deps = None
        if not model and lang.ecosystem:  # declared dependencies: pinned, from the store
            from .dependencies import combine, prepare

            deps = prepare(lang, source, flags, name, self.store,
                           lambda: self._latest_lock(name), line_offset)
        code_hash = lang.code_hash(source, name, flags, line_offset)
        if deps is not None:
            code_hash = combine(code_hash, deps)
        content_hash = hashlib.sha256(json.dumps(
            [code_hash, float(timeout), int(memory_mb), options], sort_keys=True,
            default=repr).encode()).hexdigest()[:32]
        if not force:
            existing = self.store.find_by_hash(name, content_hash)
            if existing is not None:
                if self.store.latest_version(name) != existing.version:
                    self.store.set_latest(name, existing.version)
                    self.loader.invalidate(name)
                return existing
        if artifact is None:
            artifact = lang.compile(source, name, flags, line_offset=line_offset, force=force,
                                    deps=deps)
        info = self.store.put_version(name, artifact, content_hash=content_hash,
                                      timeout=timeout, memory_mb=memory_mb, options=options)
        self.loader.invalidate(name)
        return info

    # invoke --------------------------------------------------------------------------
    def invoke(self, target: str, *args: Any, timeout: float | None = None,
               **options: Any) -> Any:
        """Run ``target`` (``name`` or ``name@version``) with ``args``.

        A keyword named like one of the function's parameters is that argument
        (``fx.invoke("two_fer", name="Bob")``); an omitted trailing parameter with a default
        gets the language's own default; a variadic one (Go ``...T``) takes the rest of the
        positional arguments. Other keyword arguments are invocation options: ``timeout``
        in seconds overrides the deployed default for this call. Cascade options
        (``start_tier``, ``skip_tiers``,
        ``tier_retries``, ``tier_timeouts``, ``total_timeout``, ``parallel``, ``fallback``,
        and tier options such as ``model``, ``prompt``, ``question``, ``wait_human``), or a
        function deployed with ``options={"cascade": ...}`` or prompt-only, run the cascade
        (:meth:`cascade`): the value comes from the first tier that succeeds, or a
        :class:`~functions_nb.cascade.human.Pending` handle when a person must answer.
        """
        if timeout is not None:
            timeout = self.ceilings.check_timeout(timeout)
        fn = self._get(target)
        if fn.direct and not options:  # positional arguments, code tier only: run as given
            return self._run(fn, args, timeout)
        sig = fn.info.signature
        args = sig.bind(args, _arguments(sig, options)) if options else sig.bind(args)
        if not options and not fn.info.options.get("cascade") and fn.info.runtime != "prompt":
            return self._run(fn, args, timeout)
        result = self.cascade(target, *args, timeout=timeout, **options)
        return result.value if hasattr(result, "tier") else result

    def map(self, target: str, inputs: Any, *, timeout: float | None = None,
            progress: bool | None = None, raise_errors: bool = False,
            map_id: str | None = None, chunk_size: int | None = None) -> MapResults:
        """Invoke ``target`` once per input (a tuple of arguments, or one argument), in input
        order. A failing input fails alone: its slot holds the exception (``raise_errors``
        raises the first instead). ``progress`` shows a bar (in a notebook an HTML output
        updated in place, which a saved notebook still shows); default: on for 100 inputs or more.

        Returns a list (:class:`~functions_nb.mapping.MapResults`) whose ``map_id`` names
        the executions: input ``i`` runs as execution ``f"{map_id}-{i}"`` (``map_id`` default
        ``map-<random>``), so ``fx.sql(f"... WHERE {res.where}")`` selects them. With a
        ``cluster`` the inputs run on its Dask workers, ``chunk_size`` per task (default:
        about 8 tasks per worker thread, 100-5000 inputs each); a chunk Dask runs again
        records the same ids, so count successes with ``count(DISTINCT id)``."""
        from .mapping import MapResults, check_map_id, cluster_map

        if timeout is not None:
            timeout = self.ceilings.check_timeout(timeout)
        fn = array = None
        if type(inputs).__module__ == "numpy":  # a model's rows: mapped as one array
            from .model_map import check_array, mappable

            fn = self._get(target)
            if fn.info.runtime == "onnx" and mappable(fn.code, inputs):
                check_array(fn, inputs)
                array = inputs
        try:
            items = array if array is not None else list(inputs)
        except TypeError as exc:
            raise BadArguments(f"map needs an iterable of inputs: {exc}") from None
        if self.cluster is not None:
            return cluster_map(self, target, items, timeout=timeout, progress=progress,
                               raise_errors=raise_errors, chunk_size=chunk_size, map_id=map_id)
        map_id = check_map_id(map_id)
        show = len(items) >= 100 if progress is None else progress
        fn = fn or self._get(target)
        run = self._run
        bind = fn.info.signature.bind  # variadics and omitted defaults, as in invoke
        out = MapResults(map_id=map_id)
        bar = None
        if show:
            from .widgets.progress import progress as progress_bar

            bar = progress_bar(total=len(items), desc=f"{target}", unit="call")
        try:
            if array is not None:  # one record per batched run; items made when read
                from .model_map import map_array

                return map_array(self.executor, fn, array, map_id=map_id, timeout=timeout,
                                 raise_errors=raise_errors,
                                 done=bar.update if bar is not None else None)
            if fn.info.runtime == "onnx":  # a model: rows coalesced into batched runs
                from .model_map import map_model

                out.extend(map_model(self.executor, fn, items, map_id=map_id, timeout=timeout,
                                     raise_errors=raise_errors,
                                     done=bar.update if bar is not None else None))
                return out
            for i, item in enumerate(items):
                args = item if isinstance(item, tuple) else (item,)
                try:
                    out.append(run(fn, bind(args), timeout, exec_id=f"{map_id}-{i}"))
                except FunctionsError as exc:
                    if raise_errors:
                        raise
                    out.append(exc)
                if bar is not None:
                    bar.update(1)
        finally:
            if bar is not None:
                bar.close()
        return out

    def run(self, target: str, *args: Any, timeout: float | None = None,
            **kwargs: Any) -> Execution:
        """Like :meth:`invoke` but never raises for a failed call: returns the
        :class:`Execution` with value or error, duration, cold/warm and console output.
        Keyword arguments are the function's arguments by parameter name."""
        if timeout is not None:
            timeout = self.ceilings.check_timeout(timeout)
        fn = self._get(target)
        try:
            args = fn.info.signature.bind(args, kwargs)
        except BadArguments as exc:
            info = fn.info
            return Execution(self.executor.new_id(), info.name, info.version, info.language,
                             "error", error=exc, started_at=time.time())
        return self._run(fn, args, timeout, detail=True)

    def cascade(self, target: str, *args: Any, timeout: float | None = None,
                **options: Any) -> Any:
        """Run ``target`` through the tiers code -> generative -> agentic -> human.

        Returns a :class:`~functions_nb.cascade.engine.CascadeResult` (``value``, ``tier``,
        ``attempts``), or a ``Pending`` handle (``wait()``, ``value``) when the human tier
        was reached and ``wait_human`` is not set. Raises ``CascadeExhaustedError`` with the
        attempt history when every tier failed, and caller errors at once.
        """
        from .cascade.base import HumanPending

        info = self._get(target).info  # the loader's cached resolution, like invoke
        self._check_cascade(options, "options")
        if timeout is not None:
            timeout = self.ceilings.check_timeout(timeout)
            options["tier_timeouts"] = {"code": timeout, **options.get("tier_timeouts", {})}
        if info.runtime != "prompt":
            info.signature.check_arity(args)
        try:
            return self._engine().run(info, args, options)
        except HumanPending as signal:
            return signal.pending

    def _check_cascade(self, options: Any, what: str) -> None:
        """Cascade options as the engine reads them, and their time limits under the ceilings."""
        from .cascade.engine import CascadeOptions

        if not isinstance(options, dict):
            raise BadArguments(f"{what} must be a dict of cascade options")
        where = "" if what == "options" else f"{what}: "
        timeouts = options.get("tier_timeouts", {})
        if not isinstance(timeouts, dict):
            raise BadArguments(f"{where}tier_timeouts must be a dict of tier -> seconds")
        for tier, value in timeouts.items():
            self.ceilings.check_timeout(value, f"{where}tier_timeouts[{tier!r}]", str(tier))
        if options.get("total_timeout") is not None:
            self.ceilings.check_timeout(options["total_timeout"], f"{where}total_timeout",
                                        "total")
        try:
            CascadeOptions.parse(options)
        except (TypeError, ValueError, AttributeError) as exc:
            raise BadArguments(f"invalid cascade {what}: {exc}") from None

    @property
    def human(self) -> Any:
        """Human tasks of this store: ``ls()``, ``get(id)`` (a ``Pending`` handle, also for
        tasks created before a restart), ``answer``, ``approve``, ``reject``, ``widget()``."""
        if self._human is None:
            from .cascade.human import HumanDesk, Pending

            tasks = self._engine_services().tasks

            def make_pending(task: Any) -> Any:
                return Pending(tasks, task, on_resolved=self._record_human(task))

            self._human = HumanDesk(tasks, make_pending)
        return self._human

    def _record_human(self, task: Any) -> Any:
        """The final history record of a human attempt whose task was created in another
        process (or before a restart), written when its answer is seen here."""
        record = self.history.record if self.history else None

        def resolved(_pending: Any, status: str, value: Any, error: BaseException | None) -> None:
            if record is None or not getattr(task, "execution_id", None):
                return
            import time as _time

            kind = getattr(error, "kind", type(error).__name__) if error is not None else None
            try:
                language = self.info(task.function).language
            except Exception:  # noqa: BLE001 - the record matters more than its language
                language = None
            record(ExecutionRecord(
                id=task.execution_id, function=task.name, version=task.version,
                language=language, tier="human", attempt=1,
                status="ok" if error is None else error_status(error), error_kind=kind,
                error_message=str(error) if error is not None else None,
                started_at=_time.time(), queue_ms=0.0, duration_ms=0.0, cold=False,
                input=task.args, output=value, console=[]))
        return resolved

    def _engine_services(self) -> Any:
        if self._services_obj is None:
            self._services_obj = self._services()
        return self._services_obj

    def _engine(self) -> Any:
        if self._cascade is None:
            from .cascade.code import CodeTier
            from .cascade.engine import Cascade

            tiers = {"code": CodeTier(self._get, self.executor)}
            services = self._engine_services()
            for name, path in _OPTIONAL_TIERS.items():
                module, cls = path.split(":")
                try:
                    tier_cls = getattr(importlib.import_module(module), cls)
                except ImportError:
                    continue
                tiers[name] = tier_cls(services)
            tasks = services.tasks
            self._cascade = Cascade(tiers, record=self.history.record if self.history else None,
                                    new_id=self.executor.new_id,
                                    withdraw=tasks.withdraw if tasks is not None else None)
        return self._cascade

    def _services(self) -> Any:
        from .cascade.base import TierServices

        def plain_invoke(target: str, *args: Any) -> Any:
            return self._run(self._get(target), args, None)

        try:
            from .storage.tasks import TaskQueue

            tasks = TaskQueue(self.store)
        except ImportError:
            tasks = None
        from .history_sql import reader

        return TierServices(invoke=plain_invoke, list_functions=self.list, sql=reader(self.history),
                            tasks=tasks, model=self.model, agent_model=self.agent_model)

    def __getitem__(self, target: str) -> FunctionHandle:
        parse_target(target)
        return FunctionHandle(self, target)

    # registry ------------------------------------------------------------------------
    def list(self) -> list[FunctionInfo]:
        """Every deployed function at its latest version."""
        return self.store.list()

    def info(self, target: str) -> FunctionInfo:
        name, version = parse_target(target)
        return self.store.get_info(name, version)

    def _latest_lock(self, name: str) -> dict[str, Any] | None:
        """The dependency lock of ``name``'s latest version (None: no version, or none)."""
        try:
            return self.store.get_info(name).dependencies
        except FunctionNotFound:
            return None

    def versions(self, name: str, detail: bool = False) -> list[Any]:
        """Version numbers of ``name``; with ``detail``, dicts with hash, size, language,
        created time, the pinned ``dependencies`` (ecosystem, name, version, file, sha256)
        and which one is latest."""
        if detail:
            return self.store.version_table(check_name(name))
        return self.store.versions(check_name(name))

    def delete(self, target: str) -> list[int]:
        """Delete ``name@N`` or every version of ``name``; returns the versions deleted."""
        name, version = parse_target(target)
        deleted = self.store.delete(name, version)
        self.loader.invalidate(name)
        return deleted

    def migrate(self, name: str | None = None, version: int | None = None,
                progress: bool = True) -> dict[str, Any]:
        """Copy versions from the fallback into the primary (all, one function, or one
        version), each verified by content hash; shows progress (an HTML bar in a notebook,
        tqdm's text bar elsewhere). Returns ``{"copied", "already", "failed"}``."""
        return self._hybrid().migrate(name, version, progress=progress)

    def cleanup_fallback(self, name: str | None = None, dry_run: bool = False) -> dict[str, Any]:
        """Delete from the fallback only the versions verified identical in the primary."""
        return self._hybrid().cleanup_fallback(name, dry_run=dry_run)

    def _hybrid(self) -> HybridStore:
        if not isinstance(self.store, HybridStore):
            raise BadArguments("this needs a fallback store: Functions(store=..., fallback=...)")
        return self.store

    def rollback(self, name: str, version: int) -> FunctionInfo:
        """Point ``latest`` of ``name`` at an earlier ``version``."""
        if type(version) is not int or version < 1:
            raise BadArguments(f"version must be a whole number >= 1, got {version!r:.40}")
        self.store.set_latest(check_name(name), version)
        self.loader.invalidate(name)
        return self.store.get_info(name, version)

    # control -------------------------------------------------------------------------
    def running(self) -> list[dict[str, Any]]:
        """Executions queued or running in this process."""
        return self.executor.running()

    def abort(self, execution_id: str) -> bool:
        """Abort a queued or running execution by id."""
        return self.executor.abort(execution_id)

    def breaker(self, target: str) -> dict[str, Any]:
        """Circuit-breaker state of a function version (loads it if needed)."""
        return self._get(target).breaker.snapshot()

    def stats(self) -> dict[str, Any]:
        """Loader cache, executor and breaker figures."""
        return {"cache": self.loader.snapshot(), "executor": self.executor.snapshot(),
                "breakers": self.loader.breakers()}

    # history -------------------------------------------------------------------------
    def sql(self, query: str) -> Any:
        """DuckDB SQL over the ``executions`` table; returns a pandas DataFrame."""
        if self.history is None:
            raise BadArguments("history is disabled for this Functions(history=False)")
        if not isinstance(query, str):
            raise BadArguments(f"query must be SQL text, got {type(query).__name__}")
        import duckdb

        try:
            return self.history.sql(query)
        except duckdb.IOException as exc:  # a file the query (or the history) reads
            raise StorageError(f"SQL failed reading: {exc}") from exc
        except duckdb.Error as exc:
            raise BadArguments(f"SQL failed: {type(exc).__name__}: {exc}") from exc

    def logs(self, name: str | None = None, limit: int = 20) -> Any:
        """Recent executions (newest first) with status, timings and console output."""
        where = ""
        if name is not None:
            fn, version = parse_target(name)
            where = f"WHERE function = '{fn}'" + (f" AND version = {version}" if version else "")
        return self.sql(
            "SELECT started_at, id, function, version, status, error_kind, error_message, "
            "round(duration_ms, 3) AS duration_ms, cold, input, output, console "
            f"FROM executions {where} ORDER BY started_at DESC LIMIT {_count(limit)}")

    def cleanup_history(self, older_than: float | None = None) -> list[str]:
        """Delete history older than ``older_than`` days (default: the retention, 7 days,
        which also runs by itself when a client starts); returns the days removed."""
        return self.history.cleanup(older_than) if self.history is not None else []

    def compact_history(self) -> int:
        """Merge the history's small record files into Parquet (also done in the
        background every 5 minutes); returns how many files were merged."""
        return self.history.compact(min_files=1) if self.history is not None else 0

    def flush(self) -> None:
        """Write buffered history records now."""
        if self.history is not None:
            self.history.flush()

    def close(self) -> None:
        if self.history is not None:
            self.history.close()
        self.loader.clear()
        if self._dask is not None and self._dask is not self.cluster:
            self._dask.close()  # a Client this object opened for a scheduler address
            self._dask = None


def _json_dict(value: Any, what: str) -> dict[str, Any]:
    """``value`` (a dict, or None for empty) that JSON can hold, as stored with a version."""
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise BadArguments(f"{what} must be a dict, got {type(value).__name__}")
    from .values import Refused, to_json_text

    try:
        to_json_text(value)
    except Refused as exc:
        raise BadArguments(f"{what}: {exc}") from None
    return dict(value)


def _count(value: Any) -> int:
    if type(value) is not int or value < 0:
        raise BadArguments(f"limit must be a whole number >= 0, got {value!r:.40}")
    return value


def _arguments(signature: Signature, options: dict[str, Any]) -> dict[str, Any]:
    """Take the keywords named like ``signature``'s parameters out of ``options``."""
    names = {p.name for p in signature.params}
    return {key: options.pop(key) for key in [k for k in options if k in names]}


class FunctionHandle:
    """A callable bound to one function: ``fx["add"](2, 3)``."""

    def __init__(self, fx: Functions, target: str) -> None:
        self.fx = fx
        self.target = target

    def __call__(self, *args: Any, timeout: float | None = None, **options: Any) -> Any:
        return self.fx.invoke(self.target, *args, timeout=timeout, **options)

    def run(self, *args: Any, timeout: float | None = None, **kwargs: Any) -> Execution:
        return self.fx.run(self.target, *args, timeout=timeout, **kwargs)

    @property
    def info(self) -> FunctionInfo:
        return self.fx.info(self.target)

    def __repr__(self) -> str:
        info = self.info
        return f"<function {info.target} ({info.language}) {info.signature}>"
