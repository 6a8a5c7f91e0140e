"""``fx.map`` over a model: inputs coalesced into batched session runs.

**A numpy array of rows** (``fx.map("iris", X)``, ``X`` of shape ``(n, 4)`` for a model
taking ``float64[N,4]``) is never split into a list of rows: it is checked once against the
model's input (dtype and shape; every row has the same, so either all rows fit or none
does), then run in slices of :data:`BATCH_ROWS` rows, each one ONNX Runtime call under the
executor's admission (a slot per run), the function's circuit breaker and a time limit of
the per-call timeout times the rows in the run. Each run is ONE execution record, id
``{map_id}-{first}`` (``first``: the index of its first row), its input the run's array
summary (dtype, shape, ``rows``), its output a summary (shapes; a classifier's first labels
and top probabilities), its duration the run's. The results (:class:`BatchResults`) are a
list whose item ``i`` is what ``fx.invoke`` gives for row ``i``, made from the batch outputs
when first read (building 10k result objects costs several times the runs themselves).
An array that does not fit the model is refused as a whole (:class:`BadArguments` naming
row 0 and why; nothing runs or is recorded). When a run fails for another reason than
its time limit (or an abort, or no slot), e.g. ONNX Runtime refused a value, its rows run
again one by one as plain invocations (record ``{map_id}-{i}`` each), so the row that fails
is found and fails alone.

**A list of inputs** (rows, batches, lists of numbers, tuples of arguments) keeps the
per-input behaviour: inputs that pass the model's checks are stacked into batches of up to
:data:`BATCH_ROWS` rows, each input still gets its own execution record (id ``{map_id}-{i}``,
its input and output; ``duration_ms`` its share of the run), and an input that does not fit
is refused alone.

On a Dask cluster each worker runs its chunk the same way (an array's chunk is an array),
with its own session cache.
"""

from __future__ import annotations

import operator
import time
from collections.abc import Callable, Sequence
from typing import Any

from .breaker import CLOSED
from .errors import (
    Aborted,
    BadArguments,
    CircuitOpen,
    FunctionsError,
    FunctionTimeout,
    InvocationError,
    QueueFull,
    error_status,
)
from .executor import Executor, LoadedFunction
from .map_results import MapResults
from .models import ExecutionRecord
from .runtimes.base import CallContext
from .runtimes.onnx import array_summary, output_summary

#: Most rows per session run.
BATCH_ROWS = 4096


class _Item:
    __slots__ = ("index", "args", "feeds", "row", "rows")

    def __init__(self, index: int, args: tuple, feeds: dict[str, Any], row: bool,
                 rows: int) -> None:
        self.index, self.args, self.feeds, self.row, self.rows = index, args, feeds, row, rows


def map_model(executor: Executor, fn: LoadedFunction, items: Sequence[Any], *, start: int = 0,
              map_id: str, timeout: float | None, raise_errors: bool = False,
              done: Callable[[int], None] | None = None) -> list[Any]:
    """Results of ``fn`` (an ONNX model) for ``items`` (inputs ``start``, ``start + 1``, …),
    in order; a failed input's slot holds its exception (``raise_errors`` raises it)."""
    model = fn.code
    if mappable(model, items):  # an array of rows (a Dask chunk of one)
        return map_array(executor, fn, items, start=start, map_id=map_id, timeout=timeout,
                         raise_errors=raise_errors, done=done)
    out: list[Any] = [None] * len(items)
    batch: list[_Item] = []
    rows = 0

    def single(i: int, args: tuple) -> None:
        """One input as a plain invocation (checks, run and record by the executor)."""
        try:
            out[i] = executor.run(fn, args, timeout, exec_id=f"{map_id}-{start + i}")
        except FunctionsError as exc:
            if raise_errors:
                raise
            out[i] = exc

    def flush() -> None:
        nonlocal batch, rows
        if batch:
            _run_batch(executor, fn, batch, rows, out, start=start, map_id=map_id,
                       timeout=timeout, single=single, raise_errors=raise_errors)
            if done is not None:
                done(len(batch))
        batch, rows = [], 0

    stacked = _stack_rows(model, items)
    if stacked is not None:  # every input a row of the same dtype: checked once, as a batch
        feeds, n = stacked
        name = model.inputs[0].name
        for lo in range(0, n, BATCH_ROWS):
            batch = [_Item(i, (items[i],), {}, True, 1) for i in range(lo, min(lo + BATCH_ROWS, n))]
            rows = len(batch)
            _run_batch(executor, fn, batch, rows, out, start=start, map_id=map_id,
                       timeout=timeout, single=single, raise_errors=raise_errors,
                       feeds={name: feeds[name][lo:lo + rows]})
            if done is not None:
                done(rows)
        return out
    for i, item in enumerate(items):
        args = item if isinstance(item, tuple) else (item,)
        try:
            feeds, row = model.feeds(fn.info.signature.bind(args))
            n = model.batch_size(feeds)
        except FunctionsError:
            flush()
            single(i, args)  # refused as invoke refuses it, and recorded the same way
            if done is not None:
                done(1)
            continue
        if rows + n > BATCH_ROWS:
            flush()
        batch.append(_Item(i, args, feeds, row, n))
        rows += n
    flush()
    return out


def _stack_rows(model: Any, items: Sequence[Any]) -> tuple[dict[str, Any], int] | None:
    """Items that are all 1-D numpy rows of one dtype, for a one-input batched model: the
    checked 2-D batch (None otherwise, or when the check fails: then item by item)."""
    import numpy as np

    if len(model.inputs) != 1 or not model.inputs[0].batched or not items:
        return None
    first = items[0]
    if type(first) is not np.ndarray or first.ndim != len(model.inputs[0].shape) - 1:
        return None
    dtype, shape = first.dtype, first.shape
    for it in items:
        if type(it) is not np.ndarray or it.dtype != dtype or it.shape != shape:
            return None
    try:
        feeds, _ = model.feeds((np.stack(items),))
    except FunctionsError:
        return None
    return feeds, len(items)


def _run_batch(executor: Executor, fn: LoadedFunction, batch: list[_Item], rows: int,
               out: list[Any], *, start: int, map_id: str, timeout: float | None,
               single: Callable[[int, tuple], None], raise_errors: bool,
               feeds: dict[str, Any] | None = None) -> None:
    """Run ``batch`` as one session run and put each input's result in ``out``."""
    import numpy as np

    model = fn.code
    if feeds is None:
        names = [s.name for s in model.inputs]
        feeds = {n: np.concatenate([it.feeds[n] for it in batch]) if len(batch) > 1
                 else batch[0].feeds[n] for n in names}
    limit = (fn.timeout if timeout is None else timeout) * len(batch)
    ctx = CallContext(f"{map_id}-{start + batch[0].index}", limit)
    started = time.time()
    breaker = fn.breaker
    error: FunctionsError | None = None
    queue_ms = duration_ms = 0.0
    try:
        if breaker.state is not CLOSED:
            breaker.before_call()
        executor._active[ctx.id] = (ctx, fn, started)  # fx.running() / fx.abort() see it
        queue_ms = executor._admit(ctx)
    except FunctionsError as exc:
        executor._active.pop(ctx.id, None)
        error = exc
    else:
        t0 = time.perf_counter()
        try:
            outs = model.run(feeds, ctx)
        except FunctionsError as exc:
            error = exc
        except Exception as exc:  # noqa: BLE001 - as the executor: a runtime bug is our error
            error = InvocationError(f"{fn.name}: {type(exc).__name__}: {exc}")
        finally:
            duration_ms = (time.perf_counter() - t0) * 1000
            executor._release()
            executor._active.pop(ctx.id, None)
    if error is not None and not isinstance(error, FunctionTimeout) and \
            not error.caller_error and len(batch) > 1:
        breaker.on_ignored()  # not the function's failure yet: each input alone says
        for it in batch:
            single(it.index, it.args)
        return
    if error is not None:
        if error.caller_error:
            breaker.on_ignored()
        elif queue_ms or duration_ms:
            breaker.on_failure()
        _record_all(executor, fn, batch, rows, started, queue_ms, duration_ms, ctx, None, error,
                    start, map_id)
        if raise_errors:
            raise error
        for it in batch:
            out[it.index] = error
        return
    breaker.on_success()
    values = _split(model, outs, batch, rows)
    for it, value in zip(batch, values, strict=True):
        out[it.index] = value
    _record_all(executor, fn, batch, rows, started, queue_ms, duration_ms, ctx, values, None,
                start, map_id)


def _split(model: Any, outs: list[Any], batch: list[_Item], rows: int) -> list[Any]:
    """Each input's share of the batch's outputs, as ``invoke`` returns it."""
    names = model.output_names
    if rows == len(batch) and all(it.row for it in batch):  # one row each: iterate the rows
        columns = [list(o) for o in outs]
        if len(columns) == 1:
            return columns[0]
        return [dict(zip(names, vals, strict=True)) for vals in zip(*columns, strict=True)]
    values = []
    at = 0
    for it in batch:
        part = [o[at] if it.row else o[at:at + it.rows] for o in outs]
        at += it.rows
        values.append(part[0] if len(part) == 1 else dict(zip(names, part, strict=True)))
    return values


def _record_all(executor: Executor, fn: LoadedFunction, batch: list[_Item], rows: int,
                started: float, queue_ms: float, duration_ms: float, ctx: CallContext,
                values: list[Any] | None, error: FunctionsError | None, start: int,
                map_id: str) -> None:
    record = executor._record
    if record is None:
        return
    status = "ok" if error is None else error_status(error)
    kind = None if error is None else getattr(error, "kind", type(error).__name__)
    message = None if error is None else str(error)
    share = duration_ms / max(rows, 1)
    name, version, language = fn.name, fn.version, fn.language
    for k, it in enumerate(batch):
        record(ExecutionRecord(
            f"{map_id}-{start + it.index}", name, version, language, "code", 1, status, kind,
            message, started, queue_ms, share * it.rows, ctx.cold and k == 0, it.args,
            values[k] if values is not None else None, None, None, None, None))


__all__ = ["BATCH_ROWS", "BatchResults", "check_array", "map_array", "map_model", "mappable"]


# -- a numpy array of rows: checked once, one record per session run -------------------------

def mappable(model: Any, inputs: Any) -> bool:
    """Whether ``inputs`` is a numpy array of rows for ``model`` (one input with a dynamic
    batch dimension; the array has the input's rank and a numeric dtype): mapped as a whole
    by :func:`map_array`. Anything else is a list of inputs (:func:`map_model`)."""
    one = getattr(model, "_one", None)
    if one is None or not one.batched or type(inputs).__module__ != "numpy":
        return False
    return getattr(inputs, "ndim", 0) == len(one.shape) and inputs.dtype.kind in "biuf"


def check_array(fn: LoadedFunction, array: Any) -> dict[str, Any]:
    """The feeds of ``array`` as one batch, or :class:`BadArguments` saying why its rows do
    not fit (every row has the array's dtype and shape: row 0 is named)."""
    model = fn.code
    try:
        feeds, _ = model.feeds((array,))
    except BadArguments as exc:
        why = str(exc)
        if len(array):
            try:
                model.feeds((array[0],))
            except BadArguments as row:
                why = str(row)
        raise BadArguments(f"{fn.name}: the rows of a {array.dtype} array of shape "
                           f"{tuple(array.shape)} do not fit the model, so none ran; row 0: "
                           f"{why}") from None
    return feeds


def map_array(executor: Executor, fn: LoadedFunction, array: Any, *, start: int = 0,
              map_id: str, timeout: float | None, raise_errors: bool = False,
              done: Callable[[int], None] | None = None) -> BatchResults:
    """Results of ``fn`` (an ONNX model) for each row of ``array`` (rows ``start``, …):
    :data:`BATCH_ROWS` rows per session run, one execution record per run (see the module
    docstring). Raises :class:`BadArguments` when the array does not fit the model."""
    model = fn.code
    n = len(array)
    results = BatchResults(n, map_id, model.output_names)
    if not n:
        return results
    feeds = check_array(fn, array)  # refused as a whole: nothing ran, nothing recorded
    name = model._one.name
    whole = feeds[name]
    single_timeout = fn.timeout if timeout is None else timeout
    for lo in range(0, n, BATCH_ROWS):
        part = whole[lo:lo + BATCH_ROWS]
        rows = len(part)
        exec_id = f"{map_id}-{start + lo}"
        outs, error, started, queue_ms, duration_ms, ctx = _guarded_run(
            executor, fn, {name: part}, rows, exec_id, single_timeout * rows)
        breaker = fn.breaker
        if error is None:
            breaker.on_success()
            results._put(lo, outs)
            _record_run(executor, fn, exec_id, started, queue_ms, duration_ms, ctx.cold, part,
                        outs, None)
        elif rows > 1 and not isinstance(error, _WHOLE):
            # the run failed (ONNX Runtime refused a value, ran out of memory, ...): not the
            # function's failure yet; each row alone says which row it was
            breaker.on_ignored()
            for i in range(lo, lo + rows):
                try:
                    results._alone[i] = executor.run(fn, (array[i],), timeout,
                                                     exec_id=f"{map_id}-{start + i}")
                except FunctionsError as exc:
                    if raise_errors:
                        raise
                    results._alone[i] = exc
        else:
            if error.caller_error:
                breaker.on_ignored()
            elif queue_ms or duration_ms:
                breaker.on_failure()
            _record_run(executor, fn, exec_id, started, queue_ms, duration_ms, ctx.cold, part,
                        None, error)
            if raise_errors:
                raise error
            results._put(lo, error)
        if done is not None:
            done(rows)
    return results


#: Errors that are a run's as a whole (its time limit, an abort, admission): no row alone
#: would do better.
_WHOLE = (FunctionTimeout, Aborted, CircuitOpen, QueueFull)


def _guarded_run(executor: Executor, fn: LoadedFunction, feeds: dict[str, Any], rows: int,
                 exec_id: str, limit: float) -> tuple[list[Any] | None, FunctionsError | None,
                                                       float, float, float, CallContext]:
    """One session run as an execution: breaker check, admission (visible to
    ``fx.running()`` / ``fx.abort()``), time limit ``limit``. Returns the outputs or the
    error, and the start, queue and run times (the caller tells the breaker the outcome)."""
    ctx = CallContext(exec_id, limit)
    started = time.time()
    breaker = fn.breaker
    queue_ms = duration_ms = 0.0
    try:
        if breaker.state is not CLOSED:
            breaker.before_call()
        executor._active[exec_id] = (ctx, fn, started)
        queue_ms = executor._admit(ctx)
    except FunctionsError as exc:
        executor._active.pop(exec_id, None)
        return None, exc, started, queue_ms, duration_ms, ctx
    t0 = time.perf_counter()
    try:
        return fn.code.run(feeds, ctx, rows), None, started, queue_ms, \
            (time.perf_counter() - t0) * 1000, ctx
    except FunctionsError as exc:
        error: FunctionsError = exc
    except Exception as exc:  # noqa: BLE001 - as the executor: a runtime bug is our error
        error = InvocationError(f"{fn.name}: {type(exc).__name__}: {exc}")
    finally:
        executor._release()
        executor._active.pop(exec_id, None)
    return None, error, started, queue_ms, (time.perf_counter() - t0) * 1000, ctx


def _record_run(executor: Executor, fn: LoadedFunction, exec_id: str, started: float,
                queue_ms: float, duration_ms: float, cold: bool, part: Any,
                outs: list[Any] | None, error: FunctionsError | None) -> None:
    """The one execution record of a session run over ``part`` (an array of rows)."""
    record = executor._record
    if record is None:
        return
    if outs is None:
        output = None
    elif len(outs) == 1:
        output = output_summary(outs[0])
    else:
        output = output_summary(dict(zip(fn.code.output_names, outs, strict=True)))
    record(ExecutionRecord(
        exec_id, fn.name, fn.version, fn.language, "code", 1,
        "ok" if error is None else error_status(error),
        None if error is None else getattr(error, "kind", type(error).__name__),
        None if error is None else str(error), started, queue_ms, duration_ms, cold,
        [array_summary(part, rows=len(part))], output, None, None, None, None))


class BatchResults(MapResults):
    """A map's results over an array of rows, kept as the batch outputs: item ``i`` (what
    ``fx.invoke`` gives for row ``i``: an array row or number, or a dict of them for a model
    with several outputs) is made when read. Indexing one item makes only that item; any
    other use (iteration, slices, ``==``, ``repr``, changing it, pickling) makes them all
    once, then it is an ordinary list."""

    def __init__(self, n: int, map_id: str, names: list[str]) -> None:
        super().__init__((), map_id)
        self._n = n
        self._names = names
        #: Batch number -> its outputs (a list of arrays) or the error every row of it got.
        self._batches: dict[int, Any] = {}
        #: Row -> value or error, for rows that ran alone (their batch failed).
        self._alone: dict[int, Any] = {}
        self._pending = True

    def _put(self, lo: int, outs: Any) -> None:
        self._batches[lo // BATCH_ROWS] = outs

    def _item(self, i: int) -> Any:
        if i in self._alone:
            return self._alone[i]
        outs = self._batches[i // BATCH_ROWS]
        if isinstance(outs, BaseException):
            return outs
        j = i % BATCH_ROWS
        if len(outs) == 1:
            return outs[0][j]
        return {k: o[j] for k, o in zip(self._names, outs, strict=True)}

    def _fill(self) -> None:
        """Make every item (once); from then on this is a plain list."""
        if not self._pending:
            return
        self._pending = False
        items: list[Any] = []
        names = self._names
        for b in range(-(-self._n // BATCH_ROWS)):
            lo = b * BATCH_ROWS
            hi = min(lo + BATCH_ROWS, self._n)
            outs = self._batches.get(b)
            if outs is None:  # every row of it ran alone
                items.extend(self._alone[i] for i in range(lo, hi))
            elif isinstance(outs, BaseException):
                items.extend([outs] * (hi - lo))
            elif len(outs) == 1:
                items.extend(outs[0])
            elif len(outs) == 2:  # a classifier: labels and probabilities
                a, b = names
                items += [{a: x, b: y} for x, y in zip(outs[0], outs[1], strict=True)]
            else:
                items += [dict(zip(names, vals, strict=True)) for vals in zip(*outs, strict=True)]
        list.extend(self, items)
        self._batches, self._alone = {}, {}

    def __len__(self) -> int:
        return self._n if self._pending else list.__len__(self)

    def __bool__(self) -> bool:
        return len(self) > 0

    def __getitem__(self, index: Any) -> Any:
        if self._pending and not isinstance(index, slice) and hasattr(index, "__index__"):
            i = operator.index(index)
            if i < 0:
                i += self._n
            if not 0 <= i < self._n:
                raise IndexError("list index out of range")
            return self._item(i)
        self._fill()
        return list.__getitem__(self, index)

    @property
    def errors(self) -> dict[int, BaseException]:
        """Index -> exception of every row that failed (no item is made for this)."""
        if not self._pending:
            return super().errors
        out = {i: v for i, v in self._alone.items() if isinstance(v, BaseException)}
        for b, outs in self._batches.items():
            if isinstance(outs, BaseException):
                for i in range(b * BATCH_ROWS, min((b + 1) * BATCH_ROWS, self._n)):
                    out[i] = outs
        return dict(sorted(out.items()))

    def __reduce__(self) -> Any:
        if self._pending:  # the batch outputs cross (a Dask chunk's result), not 10k items
            return (_restore, (self._n, self.map_id, self._names, self._batches, self._alone))
        return (MapResults, (list(self), self.map_id))

    def __repr__(self) -> str:
        self._fill()
        return list.__repr__(self)


def _restore(n: int, map_id: str, names: list[str], batches: dict[int, Any],
             alone: dict[int, Any]) -> BatchResults:
    out = BatchResults(n, map_id, names)
    out._batches, out._alone = batches, alone
    return out


def _filled(name: str) -> Any:
    method = getattr(list, name)

    def wrapper(self: BatchResults, *args: Any, **kwargs: Any) -> Any:
        self._fill()
        return method(self, *args, **kwargs)
    wrapper.__name__ = name
    wrapper.__doc__ = method.__doc__
    return wrapper


# every other list operation reads or changes the items: they are made first
for _name in ("__iter__", "__reversed__", "__contains__", "__eq__", "__ne__", "__lt__",
              "__le__", "__gt__", "__ge__", "__add__", "__mul__", "__rmul__", "__iadd__",
              "__imul__", "__setitem__", "__delitem__", "__sizeof__",
              "append", "extend", "insert", "pop", "remove", "clear", "index", "count",
              "copy", "sort", "reverse"):
    setattr(BatchResults, _name, _filled(_name))


def _radd(self: BatchResults, other: Any) -> Any:
    self._fill()
    if isinstance(other, list):
        return list.__add__(other, self)
    return NotImplemented


BatchResults.__radd__ = _radd  # type: ignore[attr-defined]
BatchResults.__hash__ = None  # type: ignore[assignment]
