"""Mapping a function over inputs: the results list, execution ids, and the Dask chunk
machinery behind ``Functions.map`` on a cluster and :func:`functions_nb.distributed.map_on_cluster`.

This module knows nothing of :class:`~functions_nb.client.Functions` (the client imports it):
whoever starts a map passes ``factory``, the class the workers build their client with.

The client cuts the inputs into chunks (a few hundred to a few thousand inputs per task, so
10k inputs are tens of tasks, not 10k) and submits one task per chunk. Each worker process
builds its own :class:`~functions_nb.client.Functions` for the store once (cached here, keyed
by store URL and options): its own loader cache, circuit breakers and executor, loading
functions from the shared store and recording history into the same store.

History is batched per worker, not per chunk: a chunk only appends its records to the worker's
buffer, which the worker's History writes every ``flush_interval`` seconds (one file per
worker per interval, not one per chunk). The rule that makes every record queryable when
``map`` returns (:meth:`ClusterMap.settle`): once the results are in, the caller asks every
worker to write what it still holds (one ``Client.run``); each chunk's result names the
worker *process* that ran it, and a chunk whose process did not answer (it died, or was
replaced, after running the chunk and before writing its records) is run again, which records
the same ids. A worker that answers but cannot write (the store is down) keeps its records and
its background writer tries again; the map warns. A worker that closes writes its records
at exit (the History's own exit hook), like any process.

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
import os
import pickle
import re
import threading
import uuid
import warnings
from collections import OrderedDict
from collections.abc import Callable, Iterable
from typing import Any

from .errors import BadArguments, FunctionsError
from .map_results import MapResults

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
#: This process, as chunk results name it: a worker restarted by its nanny is another process
#: (its predecessor's buffered records died with it), even at the same address and pid.
_PROCESS = f"{os.getpid()}-{uuid.uuid4().hex[:12]}"


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
def client_key(spec: dict[str, Any], factory: Factory) -> str:
    """The key of the worker clients built from ``spec`` by ``factory`` (computed by the
    caller, once per map)."""
    return json.dumps([factory.__module__, factory.__qualname__, spec], sort_keys=True,
                      default=repr)


def worker_functions(spec: dict[str, Any], factory: Factory, key: str | None = None) -> Any:
    """This process's ``factory(**spec)`` (``spec``: ``Functions`` keyword arguments), created
    on first use and cached under ``key`` (default :func:`client_key`): each worker has its
    own loader cache, breakers, executor and history buffer."""
    key = client_key(spec, factory) if key is None else key
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
              target: str, timeout: float | None, map_id: str,
              cache_key: str | None = None) -> bytes:
    """One task: run ``target`` on the pickled list of inputs ``payload`` (inputs ``start``,
    ``start + 1``, …) in this worker, each as execution ``map_id-index``; failures stay in
    their slot. Returns the pickled ``(process, results)``: the records stay in this
    process's history buffer (:func:`flush_worker` writes them).

    Inputs and results cross as one pickle each: Dask walks a list argument item by item
    looking for tasks, and serializes a returned list item by item (about 30 µs per item,
    3x the invocation itself)."""
    items = pickle.loads(payload)
    fx = worker_functions(spec, factory, cache_key)
    try:
        fn = fx.loader.get(target)  # any other failure fails the task: Dask tries it again
    except FunctionsError as exc:
        if not exc.caller_error:
            raise
        return pickle.dumps((_PROCESS, exc))  # unknown function: no retry can help
    if fn.info.runtime == "onnx":  # a model: rows coalesced into batched runs
        from .model_map import map_model

        out = map_model(fx.executor, fn, items, start=start, map_id=map_id, timeout=timeout)
        for r in out.errors.values() if isinstance(out, MapResults) else out:
            if isinstance(r, BaseException):
                r.__traceback__ = None
        return pickle.dumps((_PROCESS, out), protocol=pickle.HIGHEST_PROTOCOL)
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
    return pickle.dumps((_PROCESS, out), protocol=pickle.HIGHEST_PROTOCOL)


def flush_worker(key: str) -> tuple[str, str | None]:
    """``Client.run`` target: write the records this process's client ``key`` holds.
    Returns ``(process, None)``, or ``(process, error)`` when the store refused them (they
    stay buffered; the background writer tries again)."""
    fx = _workers.get(key)
    history = getattr(fx, "history", None)
    if history is not None:
        try:
            history.flush()
        except Exception as exc:  # noqa: BLE001 - reported to the map's caller
            return _PROCESS, f"{type(exc).__name__}: {exc}"
    return _PROCESS, None


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


class ClusterMap:
    """One map on a Dask cluster: :meth:`gather` runs the chunks and collects the results,
    :meth:`settle` makes every record queryable (see the module docstring for the rule).
    :func:`map_chunks` is both in a row."""

    def __init__(self, client: Any, factory: Factory, store_url: str,
                 storage_options: dict[str, Any] | None, target: str, items: list[Any], *,
                 timeout: float | None = None, chunk_size: int | None = None,
                 retries: int = RETRIES, map_id: str | None = None,
                 options: dict[str, Any] | None = None) -> None:
        self.client = connect(client)
        self.items = items
        self.target = target
        self.map_id = check_map_id(map_id)
        self.retries = retries
        self.results = MapResults([None] * len(items), self.map_id)
        if chunk_size is None:
            chunk_size = auto_chunk_size(len(items), sum(self.client.nthreads().values()))
        elif chunk_size < 1:
            raise BadArguments("chunk_size must be at least 1")
        self.chunk_size = chunk_size
        self.spec = {**(options or {}), "store": store_url, "storage_options": storage_options}
        self.key = client_key(self.spec, factory)
        self.history = bool(self.spec.get("history", True))
        self._task = {"spec": self.spec, "factory": factory, "target": target,
                      "timeout": timeout, "map_id": self.map_id, "cache_key": self.key}
        #: Worker process -> starts of the chunks it ran whose records it may still hold.
        self.ran: dict[str, list[int]] = {}
        self._tag = uuid.uuid4().hex[:8]  # task keys of this call only, even for a reused map_id
        self._round = 0

    def _submit(self, starts: list[int]) -> list[Any]:
        self._round += 1
        size = self.chunk_size
        payloads = [pickle.dumps(self.items[s:s + size], protocol=pickle.HIGHEST_PROTOCOL)
                    for s in starts]
        # a task key ends with its chunk's number (start // chunk_size)
        keys = [f"fnb-{self.map_id}-{self._tag}-{self._round}-{s // size}" for s in starts]
        return self.client.map(run_chunk, starts, payloads, key=keys, retries=self.retries,
                               **self._task)

    def gather(self, *, raise_errors: bool = False, bar: Any = None) -> MapResults:
        """Run every chunk; results in input order (a failed input's slot holds its error;
        ``raise_errors``: the first one is raised and the remaining chunks are cancelled)."""
        from distributed import as_completed

        futures = self._submit(list(range(0, len(self.items), self.chunk_size)))
        start_of = {f.key: int(str(f.key).rsplit("-", 1)[1]) * self.chunk_size for f in futures}
        pending = {f.key: f for f in futures}
        try:
            done = as_completed(futures, loop=self.client.loop, with_results=True)
            del futures  # only `pending` holds them: a fetched chunk is released at once
            for future, raw in done:
                process, part = pickle.loads(raw)
                if isinstance(part, BaseException):
                    raise part
                start = start_of[future.key]
                del pending[future.key]
                self.ran.setdefault(process, []).append(start)
                self.results[start:start + len(part)] = part
                if raise_errors:
                    first = next((r for r in part if isinstance(r, FunctionsError)), None)
                    if first is not None:
                        raise first
                if bar is not None:
                    bar.update(len(part))
        finally:
            if pending:
                self.client.cancel(list(pending.values()))
        return self.results

    def flush(self) -> set[str]:
        """Ask every worker to write the records it holds; returns the processes that
        answered (a refused write is warned about: those records stay buffered there)."""
        answers = self.client.run(flush_worker, self.key, on_error="return")
        answered = set()
        for address, answer in answers.items():
            if isinstance(answer, BaseException):
                continue  # a worker gone or going: its chunks count as lost
            process, error = answer
            answered.add(process)
            if error is not None:
                warnings.warn(f"functions-nb: worker {address} could not write the history of "
                              f"map {self.map_id} yet ({error}); its background writer retries",
                              stacklevel=3)
        return answered

    def settle(self) -> None:
        """Make every record of this map queryable: workers write what they hold; chunks
        whose worker process is gone are run again (same ids), up to ``retries`` times."""
        if not self.history:
            return
        for _ in range(self.retries + 1):
            if not self.ran:
                return
            answered = self.flush()
            lost = sorted(s for process, starts in self.ran.items() if process not in answered
                          for s in starts)
            self.ran = {}
            if not lost:
                return
            raws = self.client.gather(self._submit(lost))
            for start, raw in zip(lost, raws, strict=True):
                process, _ = pickle.loads(raw)
                self.ran.setdefault(process, []).append(start)
        warnings.warn(f"functions-nb: the records of map {self.map_id} could not all be written "
                      f"(workers kept dying); results are complete", stacklevel=2)


def map_chunks(client: Any, factory: Factory, store_url: str,
               storage_options: dict[str, Any] | None, target: str, inputs: Iterable[Any], *,
               timeout: float | None = None, progress: bool | None = None,
               raise_errors: bool = False, chunk_size: int | None = None,
               retries: int = RETRIES, map_id: str | None = None,
               options: dict[str, Any] | None = None) -> MapResults:
    """Invoke ``target`` once per input on the Dask workers of ``client``, each worker with
    its own ``factory(store=store_url, storage_options=..., **options)`` client; results in
    input order, every record queryable on return.

    * ``store_url`` / ``storage_options``: the store as the workers open it (a local folder
      only works when every worker sees it, e.g. a ``LocalCluster``; S3 for real clusters).
      ``options`` are further ``Functions`` keyword arguments for the workers (``fallback``,
      ``breaker``, ``history``, ``flush_interval``, …). Pin the version (``name@N``) so every
      worker runs the same.
    * An input is a tuple of arguments or one argument. A failing input fails alone: its slot
      holds the exception (``raise_errors``: the first failure seen is raised and the
      remaining chunks are cancelled). A chunk that fails as a whole (the function cannot be
      loaded, workers keep dying) is tried ``retries`` more times, then raises.
    * ``chunk_size`` inputs per task (default: about 8 tasks per worker thread, 100-5000
      inputs each); ``progress`` shows a bar over completed chunks (default: 100+ inputs).
    * ``map_id`` (default ``map-<random>``): input ``i`` runs as execution ``map_id-i``.
    """
    # a numpy array stays one (a model's chunks are arrays: one session run per batch)
    items = inputs if isinstance(inputs, list) or type(inputs).__module__ == "numpy" \
        else list(inputs)
    job = ClusterMap(client, factory, store_url, storage_options, target, items,
                     timeout=timeout, chunk_size=chunk_size, retries=retries, map_id=map_id,
                     options=options)
    if not len(items):
        return job.results
    show = len(items) >= 100 if progress is None else progress
    bar = None
    if show:
        from .widgets.progress import progress as progress_bar  # HTML in a notebook, not a widget

        bar = progress_bar(total=len(items), desc=f"{target} on {len(job.client.nthreads())} "
                           "workers", unit="call")
    try:
        job.gather(raise_errors=raise_errors, bar=bar)
    except BaseException:
        try:  # what ran is still written now, not a second later
            job.flush()
        except Exception:  # noqa: BLE001 - the map's own error matters more
            pass
        raise
    finally:
        if bar is not None:
            bar.close()
    job.settle()
    return job.results


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
