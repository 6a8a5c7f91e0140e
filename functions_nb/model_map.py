"""``fx.map`` over a model: inputs coalesced into batched session runs.

Rows (or small batches) that pass the model's input checks are stacked into batches of up to
:data:`BATCH_ROWS` rows and run as one ONNX Runtime call each, under the executor's
admission (a slot per batch), the function's circuit breaker and a time limit of the per-call
timeout times the number of inputs in the batch. Results come back in input order, each
exactly what ``fx.invoke`` gives for that input. Each input still gets its own execution
record (id ``{map_id}-{i}``, its input and output; ``duration_ms`` is its share of the batch's
run), so the map's history reads as it does for code.

A failing input fails alone: an input that does not fit the model is refused before any
batch (its record as for a refused invoke), and when a batch's run fails for another reason
than its time limit, its inputs run again one by one, so the one that fails is found.
On a Dask cluster each worker runs its chunk this way, with its own session cache.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from typing import Any

from .breaker import CLOSED
from .errors import FunctionsError, FunctionTimeout, InvocationError
from .executor import Executor, LoadedFunction
from .models import ExecutionRecord
from .runtimes.base import CallContext

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
    from .errors import error_status

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


__all__ = ["BATCH_ROWS", "map_model"]
