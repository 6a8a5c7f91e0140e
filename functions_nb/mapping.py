"""Mapping a function over inputs: the results list, execution ids, and the Dask chunk
machinery behind ``Functions.map`` on a cluster and :func:`functions_nb.distributed.map_on_cluster`.

This module knows nothing of :class:`~functions_nb.client.Functions` (the client imports it):
whoever starts a map passes ``factory``, the class the workers build their client with.

The client cuts the inputs into chunks (a few hundred to a few thousand inputs per task, so
10k inputs are tens of tasks, not 10k) and submits one task per chunk. Each worker process
builds its own :class:`~functions_nb.client.Functions` for the store once (cached here, keyed
by store URL and options): its own loader cache, circuit breakers and executor, loading
functions from the shared store and recording history into the same store. A worker writes
its history at the end of every chunk, so when ``map`` returns every row is in the store; a
worker killed mid-chunk loses at most the rows of that chunk it had not written yet.

Execution ids are deterministic: input ``i`` of map ``M`` runs as execution ``M-i``
(:func:`execution_id`). When Dask runs a chunk again (a worker died while running it, or
while holding its result before the client fetched it; or the task raised and ``retries``
allowed another try), the rerun records the same ids, so a query counts inputs, not rows::

    SELECT count(DISTINCT id) FROM executions
    WHERE starts_with(id, 'map-…-') AND status = 'ok'

Results come back in input order; a failing input fails alone (its slot holds the
exception) unless ``raise_errors``. Importing this module does not import Dask.
"""

from __future__ import annotations

import json
import math
import pickle
import re
import threading
import uuid
import warnings
from collections import OrderedDict
from collections.abc import Callable, Iterable
from typing import Any

from .errors import BadArguments, FunctionsError

#: What builds a worker's client from ``Functions`` keyword arguments (the ``Functions`` class).
Factory = Callable[..., Any]

#: Inputs per task when ``chunk_size`` is not given: about CHUNKS_PER_THREAD tasks per worker
#: thread (so a slow worker does not hold up the end), within [MIN_CHUNK, MAX_CHUNK].
MIN_CHUNK = 100
MAX_CHUNK = 5000
CHUNKS_PER_THREAD = 8
#: Extra tries of a chunk whose task raised (e.g. the store was unreachable while loading the
#: function). A chunk whose worker *died* is rescheduled by Dask by itself, up to
#: ``distributed.scheduler.allowed-failures`` (default 3) times, then ``KilledWorker``.
RETRIES = 3
#: ``Functions`` kept per worker process (one per store and options; least recently used closed).
WORKER_CLIENTS = 8

_MAP_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.:-]{0,63}")
_workers: OrderedDict[str, Any] = OrderedDict()  # key -> a worker's client
_workers_lock = threading.Lock()


class MapResults(list):
    """The results of a map in input order (a ``list``); ``map_id`` names its executions:
    input ``i`` ran as execution ``f"{map_id}-{i}"``."""

    def __init__(self, items: Iterable[Any] = (), map_id: str = "") -> None:
        super().__init__(items)
        self.map_id = map_id

    @property
    def errors(self) -> dict[int, BaseException]:
        """Index -> exception of every input that failed."""
        return {i: r for i, r in enumerate(self) if isinstance(r, BaseException)}

    @property
    def where(self) -> str:
        """SQL condition selecting this map's executions, e.g.
        ``fx.sql(f"SELECT count(DISTINCT id) FROM executions WHERE {res.where}")``."""
        return f"starts_with(id, '{self.map_id}-')"


def new_map_id() -> str:
    return f"map-{uuid.uuid4().hex[:16]}"


def check_map_id(map_id: str | None) -> str:
    """``map_id`` if it is usable as an id prefix (letters, digits, ``_.:-``), else a new one."""
    if map_id is None:
        return new_map_id()
    if not isinstance(map_id, str) or not _MAP_ID.fullmatch(map_id):
        raise BadArguments(f"map_id {map_id!r}: 1-64 letters, digits or '_.:-', starting with "
                           "a letter or digit")
    return map_id


def execution_id(map_id: str, index: int) -> str:
    """The execution id of input ``index`` of map ``map_id`` (the same on every retry)."""
    return f"{map_id}-{index}"


# worker side ----------------------------------------------------------------------------
def worker_functions(spec: dict[str, Any], factory: Factory) -> Any:
    """This process's ``factory(**spec)`` (``spec``: ``Functions`` keyword arguments), created
    on first use and cached: each worker has its own loader cache, breakers and executor."""
    key = json.dumps([factory.__module__, factory.__qualname__, spec], sort_keys=True,
                     default=repr)
    with _workers_lock:
        fx = _workers.get(key)
        if fx is not None:
            _workers.move_to_end(key)
            return fx
        fx = factory(**spec)
        _workers[key] = fx
        while len(_workers) > WORKER_CLIENTS:
            _, old = _workers.popitem(last=False)
            old.close()
        return fx


def run_chunk(start: int, payload: bytes, *, spec: dict[str, Any], factory: Factory,
              target: str, timeout: float | None, map_id: str) -> bytes:
    """One task: run ``target`` on the pickled list of inputs ``payload`` (inputs ``start``,
    ``start + 1``, …) in this worker, each as execution ``map_id-index``; failures stay in
    their slot. Writes the worker's buffered history, then returns the pickled results.

    Inputs and results cross as one pickle each: Dask walks a list argument item by item
    looking for tasks, and serializes a returned list item by item (about 30 µs per item,
    3x the invocation itself)."""
    items = pickle.loads(payload)
    fx = worker_functions(spec, factory)
    try:
        fn = fx.loader.get(target)  # any other failure fails the task: Dask tries it again
    except FunctionsError as exc:
        if not exc.caller_error:
            raise
        return pickle.dumps(exc)  # unknown function: no retry can help; the client raises it
    run = fx.executor.run
    out: list[Any] = []
    append = out.append
    for i, item in enumerate(items, start):
        args = item if isinstance(item, tuple) else (item,)
        try:
            append(run(fn, args, timeout, exec_id=f"{map_id}-{i}"))
        except FunctionsError as exc:
            exc.__traceback__ = None  # travels back to the client: the message is what matters
            append(exc)
    if fx.history is not None:
        try:
            fx.history.flush()
        except Exception as exc:  # noqa: BLE001 - results matter more; the rows stay buffered
            warnings.warn(f"functions-nb: history of map {map_id} not written yet ({exc}); "
                          "the background writer retries", stacklevel=1)
    return pickle.dumps(out, protocol=pickle.HIGHEST_PROTOCOL)


# client side ----------------------------------------------------------------------------
def connect(cluster: Any) -> Any:
    """A ``distributed.Client`` for ``cluster``: a Client (returned as is), a scheduler
    address such as ``"tcp://10.0.0.5:8786"``, or a cluster object (``LocalCluster``, …)."""
    from distributed import Client

    if isinstance(cluster, Client):
        return cluster
    if isinstance(cluster, str) or hasattr(cluster, "scheduler_address"):
        return Client(cluster, set_as_default=False)
    raise BadArguments(f"cluster must be a dask.distributed.Client, a scheduler address or a "
                       f"cluster object, not {type(cluster).__name__}")


def auto_chunk_size(n: int, threads: int) -> int:
    size = math.ceil(n / max(1, threads * CHUNKS_PER_THREAD))
    return max(1, min(n, max(MIN_CHUNK, min(MAX_CHUNK, size))))


def map_chunks(client: Any, factory: Factory, store_url: str,
               storage_options: dict[str, Any] | None, target: str, inputs: Iterable[Any], *,
               timeout: float | None = None, progress: bool | None = None,
               raise_errors: bool = False, chunk_size: int | None = None,
               retries: int = RETRIES, map_id: str | None = None,
               options: dict[str, Any] | None = None) -> MapResults:
    """Invoke ``target`` once per input on the Dask workers of ``client``, each worker with
    its own ``factory(store=store_url, storage_options=..., **options)`` client; results in
    input order.

    * ``store_url`` / ``storage_options``: the store as the workers open it (a local folder
      only works when every worker sees it, e.g. a ``LocalCluster``; S3 for real clusters).
      ``options`` are further ``Functions`` keyword arguments for the workers (``fallback``,
      ``breaker``, ``history``, …). Pin the version (``name@N``) so every worker runs the same.
    * An input is a tuple of arguments or one argument. A failing input fails alone: its slot
      holds the exception (``raise_errors``: the first failure seen is raised and the
      remaining chunks are cancelled). A chunk that fails as a whole (the function cannot be
      loaded, workers keep dying) is tried ``retries`` more times, then raises.
    * ``chunk_size`` inputs per task (default: about 8 tasks per worker thread, 100-5000
      inputs each); ``progress`` shows a bar over completed chunks (default: 100+ inputs).
    * ``map_id`` (default ``map-<random>``): input ``i`` runs as execution ``map_id-i``.
    """
    from distributed import as_completed

    client = connect(client)
    items = inputs if isinstance(inputs, list) else list(inputs)
    n = len(items)
    map_id = check_map_id(map_id)
    results = MapResults([None] * n, map_id)
    if not n:
        return results
    if chunk_size is None:
        chunk_size = auto_chunk_size(n, sum(client.nthreads().values()))
    elif chunk_size < 1:
        raise BadArguments("chunk_size must be at least 1")
    spec = {**(options or {}), "store": store_url, "storage_options": storage_options}
    starts = list(range(0, n, chunk_size))
    tag = uuid.uuid4().hex[:8]  # task keys of this call only, even when map_id is reused
    payloads = [pickle.dumps(items[s:s + chunk_size], protocol=pickle.HIGHEST_PROTOCOL)
                for s in starts]
    futures = client.map(run_chunk, starts, payloads,
                         key=[f"fnb-{map_id}-{tag}-{k}" for k in range(len(starts))],
                         retries=retries, spec=spec, factory=factory, target=target,
                         timeout=timeout, map_id=map_id)
    start_of = {f.key: s for f, s in zip(futures, starts, strict=True)}
    pending = {f.key: f for f in futures}
    show = n >= 100 if progress is None else progress
    bar = None
    if show:
        from .widgets.progress import progress as progress_bar  # HTML in a notebook, not a widget

        bar = progress_bar(total=n, desc=f"{target} on {len(client.nthreads())} workers", unit="call")
    try:
        done = as_completed(futures, loop=client.loop, with_results=True)
        del futures, payloads  # only `pending` holds them: a fetched chunk is released at once
        for future, raw in done:
            part = pickle.loads(raw)
            if isinstance(part, BaseException):
                raise part
            start = start_of[future.key]
            del pending[future.key]
            results[start:start + len(part)] = part
            if raise_errors:
                first = next((r for r in part if isinstance(r, FunctionsError)), None)
                if first is not None:
                    raise first
            if bar is not None:
                bar.update(len(part))
    finally:
        if pending:
            client.cancel(list(pending.values()))
        if bar is not None:
            bar.close()
    return results


def cluster_map(fx: Any, target: str, items: list[Any], *, timeout: float | None,
                progress: bool | None, raise_errors: bool, chunk_size: int | None = None,
                map_id: str | None = None) -> MapResults:
    """``fx.map`` when ``fx`` has a cluster: pins the version here (so every worker runs the
    same one, and an unknown function fails at once), then :func:`map_chunks` with the
    store and options ``fx`` was opened with (the workers build a ``type(fx)``)."""
    fn = fx._get(target)
    if getattr(fx, "_dask", None) is None:
        fx._dask = connect(fx.cluster)
    primary = getattr(fx.store, "primary", fx.store)
    options = dict(getattr(fx, "_worker_options", {}))
    storage_options = options.pop("storage_options", None)
    fallback = getattr(fx.store, "fallback", None)
    if fallback is not None:
        options["fallback"] = _url(fallback)
    return map_chunks(fx._dask, type(fx), _url(primary), storage_options,
                      f"{fn.name}@{fn.version}", items, timeout=timeout, progress=progress,
                      raise_errors=raise_errors, chunk_size=chunk_size, map_id=map_id,
                      options=options)


def _url(store: Any) -> str:
    """The store's URL as a worker process opens it (local folders as absolute paths)."""
    from .storage.fsutil import is_local

    return store.root if is_local(store.fs) else store.url
