"""The ML runtime: ONNX models run by ONNX Runtime, in the calling process, warm and shared.

One :class:`OnnxRuntime` per process keeps ONNX Runtime sessions in an LRU keyed by the
model's sha256 and the execution providers (a version's bytes are content-addressed, so every
client and every version with the same bytes shares one session). A call:

1. checks each input against the model's element type and shape (exact values only: a numpy
   array is converted only when numpy calls the cast safe, a list only when every element
   keeps its value; a 1-D row for a model with a dynamic batch dimension is one row, and its
   outputs come back without the batch dimension);
2. refuses a batch whose estimated working memory is above the function's ``memory_mb``
   (:class:`~functions_nb.errors.LimitExceeded`, before anything runs);
3. runs the session in the caller's thread with a ``RunOptions`` that one watchdog thread
   terminates at the call's deadline (or when the call is aborted).

Why in-process and not a host process: an ONNX model is data (a graph of ONNX Runtime's own
operators), not code; custom-operator libraries are never registered and a model that keeps
tensors in external files is refused, so a model cannot load code or read host files. What a
crafted model can still do is use time and memory: time is stopped by ``RunOptions.terminate``,
memory by the size checks here (model size at deploy and load, the per-batch estimate per
call). A host process would add an OS memory cap and protect the kernel from a bug in ONNX
Runtime's parser, at a round trip (tens of µs) longer than a small model's whole run.
"""

from __future__ import annotations

import hashlib
import itertools
import json
import math
import os
import threading
import time
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from ..errors import (
    Aborted,
    BadArguments,
    FunctionTimeout,
    InvocationError,
    LimitExceeded,
    ToolchainMissing,
)
from .base import CallContext, Isolation, ModuleCache

if TYPE_CHECKING:
    from ..models import Signature

INSTALL_HINT = "pip install 'functions-nb[onnx]'"
#: Sessions kept per process (least recently used dropped first).
SESSIONS = 32
#: Environment variable naming the execution providers, comma-separated, best first.
PROVIDERS_ENV = "FUNCTIONS_NB_ONNX_PROVIDERS"
#: The watchdog checks running calls for an abort this often (seconds) while any runs.
ABORT_POLL = 0.1
_MIB = 1 << 20

#: ONNX element type name (as ONNX Runtime writes ``tensor(float)``) -> numpy dtype name.
ELEMENT_DTYPES = {
    "float": "float32", "double": "float64", "float16": "float16",
    "int8": "int8", "int16": "int16", "int32": "int32", "int64": "int64",
    "uint8": "uint8", "uint16": "uint16", "uint32": "uint32", "uint64": "uint64",
    "bool": "bool", "string": "str",
}


def require_onnxruntime() -> Any:
    """The ``onnxruntime`` module, or :class:`ToolchainMissing` saying how to install it."""
    try:
        import onnxruntime
    except ImportError as exc:
        raise ToolchainMissing(f"ONNX Runtime is needed to run models ({exc}); install it with: "
                               f"{INSTALL_HINT}") from None
    return onnxruntime


# -- the signature of a model: what each input and output is -----------------------------

@dataclass(frozen=True)
class TensorSpec:
    """One model input or output: name, numpy dtype name and shape (None: a dynamic dim)."""

    name: str
    dtype: str
    shape: tuple[int | None, ...]

    @property
    def type(self) -> str:
        """As shown in signatures: ``float32[N,4]`` (``N`` a dynamic dimension)."""
        dims = ",".join("N" if d is None else str(d) for d in self.shape)
        return f"{self.dtype}[{dims}]"

    @property
    def batched(self) -> bool:
        """The first dimension is dynamic: the model takes a batch of rows."""
        return bool(self.shape) and self.shape[0] is None

    @classmethod
    def parse(cls, name: str, text: str) -> TensorSpec:
        """Inverse of :attr:`type`."""
        dtype, _, dims = text.partition("[")
        shape = tuple(None if d == "N" else int(d) for d in dims.rstrip("]").split(",") if d)
        return cls(name, dtype, shape)


def result_type(outputs: Sequence[TensorSpec]) -> str:
    """The result type written in the signature: one output's type, or ``{name: type; ...}``."""
    if len(outputs) == 1:
        return outputs[0].type
    return "{" + "; ".join(f"{o.name}: {o.type}" for o in outputs) + "}"


# -- input checks --------------------------------------------------------------------------

def _refuse(sig: Any, spec: TensorSpec, value: Any, why: str) -> BadArguments:
    """The bad-argument error (as :func:`functions_nb.values.bad_argument` words it), an
    array shown by dtype and shape."""
    from ..values import shown

    if hasattr(value, "shape") and hasattr(value, "dtype"):
        given = f"a {value.dtype} array of shape {tuple(value.shape)}"
    else:
        given = shown(value)
    return BadArguments(f"{sig}: argument {spec.name!r} expects {spec.type}, got {given} ({why})")


def to_tensor(value: Any, spec: TensorSpec, sig: Any) -> Any:
    """``value`` (numpy array, list, or number) as a numpy array of ``spec``'s dtype, with no
    value changed; raises :class:`BadArguments` naming the input, expected and given."""
    import numpy as np

    if spec.dtype == "str":
        arr = np.asarray(value, dtype=object)
        if arr.size and not all(isinstance(v, str) for v in arr.ravel()):
            raise _refuse(sig, spec, value, "expected text elements")
        return arr
    want = np.dtype(spec.dtype)
    if isinstance(value, np.ndarray):
        arr = value
        if arr.dtype != want:
            if arr.dtype.kind not in "biuf" or not np.can_cast(arr.dtype, want, "safe"):
                raise _refuse(sig, spec, value, f"{arr.dtype} cannot become {want} without "
                              f"losing values; convert it with .astype(np.{want})")
            arr = arr.astype(want)
    elif isinstance(value, (list, tuple, int, float, bool, np.generic)):
        try:
            arr = np.asarray(value)
        except ValueError as exc:  # ragged rows
            raise _refuse(sig, spec, value, str(exc).split(";")[0]) from None
        if arr.dtype.kind not in "biuf":
            raise _refuse(sig, spec, value, f"expected numbers of type {want}")
        if arr.dtype.kind != "b" and _has_bool(value, np.bool_):
            raise _refuse(sig, spec, value, f"true/false is not a number of type {want}")
        arr = _exact(arr, want, sig, spec, value)
    else:
        raise _refuse(sig, spec, value, "pass a numpy array or a (nested) list of numbers")
    return arr


def _has_bool(value: Any, np_bool: type) -> bool:
    """Whether a (nested) list holds a bool (numpy would read True as 1.0)."""
    if isinstance(value, (list, tuple)):
        return any(_has_bool(v, np_bool) for v in value)
    return isinstance(value, (bool, np_bool))


def _exact(arr: Any, want: Any, sig: Any, spec: TensorSpec, value: Any) -> Any:
    """A list's array as ``want``, refused if any element would change (the rules of
    :mod:`functions_nb.values`: an f32 rounds as a literal would, never to infinity)."""
    import numpy as np

    if arr.dtype == want:
        return arr
    if arr.dtype.kind == "b" and want.kind != "b":
        raise _refuse(sig, spec, value, f"true/false is not a number of type {want}")
    if want.kind == "b":
        raise _refuse(sig, spec, value, "expected true or false")
    if arr.dtype.kind == "f" and want.kind in "iu":
        raise _refuse(sig, spec, value, f"a number with a fraction or exponent is not {want}")
    with np.errstate(all="ignore"):
        out = arr.astype(want)
        if want.kind == "f" and arr.dtype.kind == "f":
            bad = np.isfinite(arr) & ~np.isfinite(out)
            why = f"out of range for {want}"
        else:
            bad = out.astype(arr.dtype) != arr
            why = f"no exact {want} value"
    if bad.any():
        i = int(np.argmax(bad.ravel()))
        raise _refuse(sig, spec, value, f"element {i} = {arr.ravel()[i].item()!r}: {why}")
    return out


def check_shape(arr: Any, spec: TensorSpec, sig: Any, value: Any) -> tuple[Any, bool]:
    """``arr`` with ``spec``'s rank (a single row gets a batch axis: True is returned then)."""
    rank = len(spec.shape)
    row = False
    if arr.ndim == rank - 1 and spec.batched:
        arr, row = arr[None, ...], True
    if arr.ndim != rank:
        raise _refuse(sig, spec, value, f"expected {rank} dimensions (shape "
                      f"{_shape_text(spec.shape)}), got {arr.ndim}")
    for axis, (want, got) in enumerate(zip(spec.shape, arr.shape, strict=True)):
        if want is not None and want != got:
            raise _refuse(sig, spec, value, f"dimension {axis} must be {want} (shape "
                          f"{_shape_text(spec.shape)}), got {got}")
    return arr, row


def _shape_text(shape: tuple[int | None, ...]) -> str:
    return "(" + ", ".join("N" if d is None else str(d) for d in shape) + ")"


# -- what the history keeps of a model call ------------------------------------------------

#: An array of at most this many elements is recorded with its values; a classifier's
#: labels and top probabilities are recorded for at most this many rows.
SUMMARY_VALUES = 16
_DTYPE_NAMES: dict[Any, str] = {}
#: (dtype, shape) -> a one-array input's record: its summary as JSON text (made once per shape).
_INPUTS: dict[tuple[Any, tuple[int, ...]], str] = {}
_ARRAYS: tuple[type, ...] = ()


def array_summary(arr: Any, rows: int | None = None, values: bool = True) -> dict[str, Any]:
    """A record's view of ``arr``: ``{"array": dtype, "shape": [...]}``, ``rows`` when
    given, and (``values``) its values when it has at most :data:`SUMMARY_VALUES` elements."""
    dtype = arr.dtype
    name = _DTYPE_NAMES.get(dtype)
    if name is None:  # numpy works a dtype's name out in Python (µs): once per dtype
        name = _DTYPE_NAMES[dtype] = dtype.name
    out: dict[str, Any] = {"array": name, "shape": list(arr.shape)}
    if rows is not None:
        out["rows"] = rows
    if values and arr.size <= SUMMARY_VALUES:
        out["values"] = arr.tolist()
    return out


def output_summary(value: Any) -> Any:
    """A record's view of a model's outputs: one output as :func:`array_summary`; for a
    classifier (one integer or text output, one float output with one more dimension:
    labels and probabilities) the ``label`` and ``top_probability`` of its first
    :data:`SUMMARY_VALUES` rows and each output's shape (``shapes``); other outputs each
    as :func:`array_summary`, by name."""
    arrays = _arrays()
    if isinstance(value, arrays):
        return array_summary(value)
    if type(value) is not dict:
        return value
    for v in value.values():
        if not isinstance(v, arrays):
            return value  # e.g. a summary a batched map recorded already
    if len(value) == 2:
        label, prob = value.values()
        if label.dtype.kind == "f":
            label, prob = prob, label
        if label.dtype.kind in "iubOU" and prob.dtype.kind == "f" and \
                prob.ndim == label.ndim + 1 and prob.shape[:-1] == label.shape:
            k = SUMMARY_VALUES
            if label.ndim == 0:
                labels: Any = label.item()
                top: Any = max(prob.tolist()) if prob.size else None
            elif label.ndim == 1:
                if len(label) > k:
                    label, prob = label[:k], prob[:k]
                labels = label.tolist()
                top = [max(r) if r else None for r in prob.tolist()]
            else:
                labels = None
            if labels is not None:
                (k0, v0), (k1, v1) = value.items()
                return {"label": labels, "top_probability": top,
                        "shapes": {k0: list(v0.shape), k1: list(v1.shape)}}
    return {key: array_summary(v) for key, v in value.items()}


def record_summary(value: Any) -> Any:
    """What a model call's history record keeps of its input (the argument tuple: each
    array's dtype and shape) or its output (:func:`output_summary`); values that hold no
    arrays (a refused list, a summary a batched map recorded already) as they are. The
    history calls this when it writes the records of language ``onnx`` (see
    :data:`functions_nb.history.RECORD_SUMMARIES`) and encodes what it returns. Worked out
    once per dtype and shape: the usual call's input (one array), kept as its JSON text
    (:class:`~functions_nb.history.RawJSON`), and whether a two-array output is a
    classifier's (then only its labels and top probabilities are read per call)."""
    arrays = _arrays()
    if type(value) is tuple:
        if len(value) == 1 and type(value[0]) is arrays[0]:  # one array: the usual call
            arr = value[0]
            key = (arr.dtype, arr.shape)
            summary = _INPUTS.get(key)
            if summary is None:
                if len(_INPUTS) > 256:
                    _INPUTS.clear()
                from ..history import raw_json  # (on a miss only: an import costs µs)

                summary = _INPUTS[key] = raw_json((array_summary(arr, values=False),))
            return summary
        if not any(isinstance(v, arrays) for v in value):
            return value
        return [array_summary(v, values=False) if isinstance(v, arrays) else v for v in value]
    if type(value) is dict and len(value) == 2:
        (k0, v0), (k1, v1) = value.items()
        if type(v0) is arrays[0] and type(v1) is arrays[0]:
            key = (k0, k1, v0.dtype, v1.dtype, v0.shape, v1.shape)
            plan = _OUTPUTS.get(key, key)
            if plan is key:
                if len(_OUTPUTS) > 256:
                    _OUTPUTS.clear()
                plan = _OUTPUTS[key] = _classifier_plan(value)
            if plan is not None:
                label_key, prob_key, shapes = plan
                label, prob = value[label_key], value[prob_key]
                if len(label) > SUMMARY_VALUES:
                    label, prob = label[:SUMMARY_VALUES], prob[:SUMMARY_VALUES]
                return {"label": label.tolist(),
                        "top_probability": [max(r) if r else None for r in prob.tolist()],
                        "shapes": shapes}
    return output_summary(value)


#: (keys, dtypes and shapes of a two-array output) -> (label key, probabilities key, the
#: ``shapes`` summary, shared and never changed) for a classifier with 1-D labels, else None.
_OUTPUTS: dict[tuple[Any, ...], tuple[str, str, dict[str, list[int]]] | None] = {}


def _classifier_plan(value: dict[str, Any]) -> tuple[str, str, dict[str, list[int]]] | None:
    """How :func:`record_summary` summarises outputs like ``value`` when
    :func:`output_summary` makes them a classifier's summary with a list of labels (the
    summary is then the same), else None."""
    summary = output_summary(value)
    if type(summary) is not dict or type(summary.get("label")) is not list:
        return None
    label_key, prob_key = value  # as output_summary tells them apart
    if value[label_key].dtype.kind == "f":
        label_key, prob_key = prob_key, label_key
    return label_key, prob_key, summary["shapes"]


def _arrays() -> tuple[type, ...]:
    """numpy's array and scalar types (what a model takes and gives)."""
    global _ARRAYS
    if not _ARRAYS:
        import numpy as np

        _ARRAYS = (np.ndarray, np.generic)
    return _ARRAYS


# -- the watchdog: one thread stops runs at their deadline -------------------------------

class Watchdog:
    """Terminates ONNX Runtime runs at their deadline, or when their call is aborted.

    A run is watched by its ``RunOptions`` (one call at a time uses one): :attr:`active` maps
    it to the call's context. :meth:`watch` and :meth:`done` are a dict insert and delete (no
    lock: the calls stay cheap; the hot path does them inline, calling :meth:`wake` when
    :attr:`idle`). While any call runs, the thread looks every :data:`ABORT_POLL`
    seconds or at the earliest deadline it has seen, whichever comes first, so a run stops
    within ``ABORT_POLL`` of its limit; with nothing running it sleeps until the next
    :meth:`wake`. It sets ``terminate`` only after the context's ``timed_out`` or
    ``aborted``, so a call that sees neither set and still finds its run terminated was hit
    by a flag meant for the options' previous call (see :meth:`OnnxModel._rerun`)."""

    def __init__(self) -> None:
        self.active: dict[Any, CallContext] = {}
        self._wake = threading.Event()
        #: The thread sleeps until :meth:`wake` (set before it looks at :attr:`active` a last
        #: time, so a call that watches and then finds it False is seen).
        self.idle = True
        self._thread: threading.Thread | None = None
        self._start = threading.Lock()

    def watch(self, ctx: CallContext, run_options: Any) -> Any:
        """Watch a run with ``run_options`` for ``ctx``; returns the key for :meth:`done`."""
        self.active[run_options] = ctx
        if self.idle:
            self.wake()
        return run_options

    def wake(self) -> None:
        """Make the thread look at :attr:`active` (started on first use)."""
        self.idle = False
        self._wake.set()
        if self._thread is None:
            with self._start:
                if self._thread is None:
                    self._thread = threading.Thread(target=self._loop, daemon=True,
                                                    name="onnx-watchdog")
                    self._thread.start()

    def done(self, key: Any) -> None:
        self.active.pop(key, None)

    def _loop(self) -> None:
        while True:
            self._wake.wait()
            if not self.active:
                self.idle = True
                self._wake.clear()
                if not self.active:  # nothing came in between: sleep until wake()
                    continue
                self.idle = False
                self._wake.set()
            now = time.monotonic()
            nearest = now + ABORT_POLL
            for options, ctx in list(self.active.items()):
                if ctx.deadline <= now:
                    ctx.timed_out = True
                    options.terminate = True
                elif ctx.aborted:
                    options.terminate = True
                else:
                    nearest = min(nearest, ctx.deadline)
            time.sleep(max(nearest - now, 0.001))


# -- the loaded model -----------------------------------------------------------------------

class OnnxModel:
    """A model version ready to run (what :meth:`OnnxRuntime.load` returns)."""

    def __init__(self, runtime: OnnxRuntime, session: Any, signature: Signature, *,
                 memory_mb: int, model_bytes: int, static_bytes: int, row_bytes: int) -> None:
        self.runtime = runtime
        self.session = session
        self.signature = signature
        self.inputs = [TensorSpec.parse(p.name, p.type) for p in signature.params]
        import numpy as np

        self._ndarray = np.ndarray
        self._one = self.inputs[0] if len(self.inputs) == 1 and self.inputs[0].dtype != "str" \
            else None
        self.output_names = [o.name for o in session.get_outputs()]
        self._run = getattr(session, "_sess", session).run  # past the wrapper's re-checks
        self._options: list[Any] = []  # RunOptions free to reuse (never a terminated one)
        self.memory_mb = memory_mb
        self.model_bytes = model_bytes
        self.static_bytes = static_bytes
        self.row_bytes = row_bytes
        # worked out once: what the hot path compares a one-input call's array with
        one = self._one
        self._dtype = np.dtype(one.dtype) if one is not None else None
        self._name = one.name if one is not None else ""
        self._shape = one.shape if one is not None else ()
        self._rank = len(self._shape)
        names = self.output_names
        self._pair = (names[0], names[1]) if len(names) == 2 else None
        self._watchdog = runtime.watchdog
        #: A batched input's shape past the batch dimension, when all of it is fixed.
        self._tail: tuple[int, ...] | None = None
        if one is not None and one.batched and None not in one.shape[1:]:
            self._tail = one.shape[1:]  # type: ignore[assignment]
        room = memory_mb * _MIB - model_bytes - static_bytes
        #: Most rows a run may take within ``memory_mb`` (check_memory says why when above).
        self.max_rows = (room // row_bytes if row_bytes else math.inf) if room >= 0 else -1
        self._first = True
        self._closed = False

    # checks ---------------------------------------------------------------------------
    def feeds(self, args: tuple) -> tuple[dict[str, Any], bool]:
        """The session's inputs for ``args`` (checked), and whether they were single rows."""
        if len(args) != len(self.inputs):
            self.signature.check_arity(args)
        if self._one is not None:  # one input, given as an array of its dtype and rank
            value = args[0]
            if self._fits(value):
                return {self._name: value}, False
        feeds = {}
        rows = set()
        sig = self.signature
        for spec, value in zip(self.inputs, args, strict=True):
            arr, row = check_shape(to_tensor(value, spec, sig), spec, sig, value)
            feeds[spec.name] = arr
            rows.add(row)
        if len(rows) > 1:
            raise BadArguments(f"{sig}: give every input as one row or every input as a batch")
        return feeds, rows == {True}

    def _fits(self, value: Any) -> bool:
        """``value`` is an array of the one input's exact dtype and shape (no check left)."""
        if type(value) is not self._ndarray:
            return False
        if value.dtype is not self._dtype and value.dtype != self._dtype:
            return False
        if self._tail is not None:
            return value.shape[1:] == self._tail and value.ndim == len(self._shape)
        return value.ndim == len(self._shape) and all(
            w is None or w == g for w, g in zip(self._shape, value.shape, strict=True))

    def batch_size(self, feeds: dict[str, Any]) -> int:
        if self._one is not None:
            return feeds[self._one.name].shape[0] if self._one.batched else 1
        sizes = {feeds[s.name].shape[0] for s in self.inputs if s.batched}
        if len(sizes) > 1:
            raise BadArguments(f"{self.signature}: the inputs' batch sizes differ: "
                               f"{sorted(sizes)}")
        return sizes.pop() if sizes else 1

    def check_memory(self, batch: int) -> None:
        """Refuse a run whose estimated working memory is above ``memory_mb``."""
        need = self.model_bytes + self.static_bytes + self.row_bytes * batch
        if need > self.memory_mb * _MIB:
            raise LimitExceeded(
                f"{self.signature.name}: a batch of {batch} rows needs about "
                f"{need / _MIB:.1f} MB (model {self.model_bytes / _MIB:.1f} MB, "
                f"{self.row_bytes} bytes per row), above its memory limit of {self.memory_mb} MB; "
                "pass fewer rows or deploy with a larger memory_mb")

    # running --------------------------------------------------------------------------
    def call(self, args: tuple, ctx: CallContext) -> Any:
        if self._tail is not None and len(args) == 1:
            # the hot path: one batch array of the input's dtype and rank, at most max_rows
            # rows, runs as it is: ONNX Runtime checks its dimensions against the model's
            # (fixed past the batch one), and when it refuses them, _recover gives the checked
            # path's answer (the watch of Watchdog.watch/done inline)
            value = args[0]
            if type(value) is self._ndarray and value.dtype is self._dtype and \
                    value.ndim == self._rank and len(value) <= self.max_rows and not self._closed:
                pool = self._options
                try:
                    options = pool.pop()
                except IndexError:
                    options = self._new_options()
                watchdog = self._watchdog
                watching = watchdog.active
                watching[options] = ctx
                if watchdog.idle:
                    watchdog.wake()
                if self._first:
                    ctx.cold, self._first = True, False
                feeds = {self._name: value}
                try:
                    outs = self._run(self.output_names, feeds, options)
                except Exception as exc:  # noqa: BLE001 - translated once, in _error
                    outs = self._recover(exc, ctx, options, feeds, args)
                finally:
                    del watching[options]
                if not (ctx.timed_out or ctx.aborted):  # else its flag may be set
                    pool.append(options)
                pair = self._pair
                if pair is not None:  # e.g. a classifier's labels and probabilities
                    return {pair[0]: outs[0], pair[1]: outs[1]}
                if len(outs) == 1:
                    return outs[0]
                return dict(zip(self.output_names, outs, strict=True))
        if self._closed:
            raise InvocationError(f"{self.signature.name}: this model was unloaded")
        feeds, row = self.feeds(args)
        outs = self.run(feeds, ctx)
        if row:
            outs = [o[0] for o in outs]
        if len(outs) == 1:
            return outs[0]
        return dict(zip(self.output_names, outs, strict=True))

    def _new_options(self) -> Any:
        options = self.runtime.ort.RunOptions()
        options.log_severity_level = 4
        return options

    def run(self, feeds: dict[str, Any], ctx: CallContext, rows: int | None = None) -> list[Any]:
        """One session run over checked ``feeds`` (``rows``: their batch size, when known),
        stopped at ``ctx.deadline``."""
        if rows is None:
            rows = self.batch_size(feeds)
        if rows > self.max_rows:
            self.check_memory(rows)
        try:
            options = self._options.pop()
        except IndexError:
            options = self._new_options()
        watchdog = self.runtime.watchdog
        key = watchdog.watch(ctx, options)
        ctx.cold, self._first = self._first, False
        try:
            outs = self._run(self.output_names, feeds, options)
        except Exception as exc:  # noqa: BLE001 - ONNX Runtime's errors, translated once
            outs = self._rerun(exc, ctx, options, feeds)
        finally:
            watchdog.done(key)
        if not (ctx.timed_out or ctx.aborted):  # else its terminate flag may be set
            self._options.append(options)
        return outs

    def _recover(self, exc: Exception, ctx: CallContext, options: Any, feeds: dict[str, Any],
                 args: tuple) -> list[Any]:
        """After a failed run of the hot path: an input ONNX Runtime refused gets the
        checked path's error (:meth:`feeds` raises BadArguments naming the input, the
        expected and the given shape); else as :meth:`_rerun`."""
        if type(exc).__name__ == "InvalidArgument" and not (ctx.timed_out or ctx.aborted):
            self.feeds(args)
        return self._rerun(exc, ctx, options, feeds)

    def _rerun(self, exc: Exception, ctx: CallContext, options: Any,
               feeds: dict[str, Any]) -> list[Any]:
        """After a failed run: when a terminate flag stopped it that this call did not ask
        for (neither timed out nor aborted: the watchdog stopped the options' previous call
        as it ended), run again with the flag cleared; else raise ``exc`` translated."""
        for _ in range(3):
            if ctx.timed_out or ctx.aborted or "terminate flag" not in str(exc):
                break
            options.terminate = False
            try:
                return self._run(self.output_names, feeds, options)
            except Exception as again:  # noqa: BLE001 - translated below
                exc = again
        raise self._error(exc, ctx) from None

    def _error(self, exc: Exception, ctx: CallContext) -> Exception:
        """ONNX Runtime's exception as ours (the one place it is translated)."""
        name = self.signature.name
        text = str(exc).split("Status Message: ")[-1].strip()
        if "terminate flag" in str(exc):
            if ctx.timed_out:
                return FunctionTimeout(f"{name}: stopped at its time limit of {ctx.timeout:g} s")
            return Aborted(f"{name}: execution {ctx.id} aborted")
        if isinstance(exc, MemoryError) or "bad_alloc" in text or "Failed to allocate" in text:
            return LimitExceeded(f"{name}: out of memory while running the model: {text}")
        if type(exc).__name__ == "InvalidArgument":
            return BadArguments(f"{self.signature}: {text}")
        return InvocationError(f"{name}: the model failed: {text}")

    def close(self) -> None:
        self._closed = True


# -- the runtime -------------------------------------------------------------------------

@dataclass(frozen=True)
class ModelFacts:
    """What the loader needs from a model's bytes, read once per sha256."""

    static_bytes: int
    row_bytes: int


def inspect_model(code: bytes) -> tuple[Any, ModelFacts]:
    """Parse ``code``; refuse external data; estimate memory. Raises ValueError with why."""
    import onnx
    from onnx import external_data_helper as edh

    try:
        model = onnx.load_model_from_string(code)
    except Exception as exc:  # noqa: BLE001 - protobuf's DecodeError and friends
        raise ValueError(f"not an ONNX model ({type(exc).__name__}: {exc})") from None
    for tensor in _tensors(model.graph):
        if edh.uses_external_data(tensor):
            raise ValueError(f"tensor {tensor.name!r} keeps its data in an external file; "
                             "models must hold all their data (onnx.save_model(..., "
                             "save_as_external_data=False))")
    return model, ModelFacts(*_activation_bytes(model))


def _tensors(graph: Any) -> Any:
    """Every tensor of ``graph``: initializers and attribute tensors, subgraphs included."""
    yield from graph.initializer
    for sparse in graph.sparse_initializer:
        yield sparse.values
        yield sparse.indices
    for node in graph.node:
        for attr in node.attribute:
            if attr.HasField("t"):
                yield attr.t
            yield from attr.tensors
            if attr.HasField("g"):
                yield from _tensors(attr.g)
            for sub in attr.graphs:
                yield from _tensors(sub)


def _activation_bytes(model: Any) -> tuple[int, int]:
    """Estimated bytes of every value a run holds: (fixed, per row of the batch). Each
    dynamic dimension counts as the batch size; tensors of unknown shape count nothing."""
    import numpy as np
    import onnx
    from onnx import helper

    try:
        inferred = onnx.shape_inference.infer_shapes(model)
    except Exception:  # noqa: BLE001 - no inference: the graph's declared shapes only
        inferred = model
    g = inferred.graph
    static = per_row = 0
    for vi in itertools.chain(g.input, g.value_info, g.output):
        t = vi.type.tensor_type
        if not t.HasField("shape") or not t.elem_type:
            continue
        try:
            size = np.dtype(helper.tensor_dtype_to_np_dtype(t.elem_type)).itemsize
        except (KeyError, TypeError):
            size = 8
        fixed, dynamic = 1, False
        for d in t.shape.dim:
            if d.HasField("dim_value"):
                fixed *= d.dim_value
            else:
                dynamic = True
        if dynamic:
            per_row += fixed * size
        else:
            static += fixed * size
    return static, per_row


def _facts_key(digest: str) -> str:
    return f"onnx-facts-1-{digest}"


def _cached_facts(cache: ModuleCache | None, digest: str) -> ModelFacts | None:
    """Facts of the model ``digest`` that a process wrote after checking it (no external
    data; the memory estimate), or None."""
    if cache is None:
        return None
    try:
        raw = cache.get(_facts_key(digest))
        data = json.loads(raw) if raw else None
        return ModelFacts(int(data["static_bytes"]), int(data["row_bytes"])) if data else None
    except (ValueError, TypeError, KeyError):
        return None


def default_providers(ort: Any) -> list[str]:
    """``$FUNCTIONS_NB_ONNX_PROVIDERS`` if set, else CUDA first where it can run, then CPU."""
    named = [p.strip() for p in os.environ.get(PROVIDERS_ENV, "").split(",") if p.strip()]
    if named:
        return named
    available = ort.get_available_providers()
    out = []
    if "CUDAExecutionProvider" in available and cuda_device_count(ort) > 0:
        out.append("CUDAExecutionProvider")
    return [*out, "CPUExecutionProvider"]


def cuda_device_count(ort: Any) -> int:
    """CUDA devices ONNX Runtime can see (0 without onnxruntime-gpu or a device)."""
    if "CUDAExecutionProvider" not in ort.get_available_providers():
        return 0
    try:
        return sum(1 for d in ort.get_ep_devices() if "CUDA" in str(d.ep_name))
    except Exception:  # noqa: BLE001 - older ONNX Runtime: the driver decides at session time
        return 1 if os.path.exists("/dev/nvidia0") else 0


class OnnxRuntime:
    """The process-wide ML runtime: sessions by model sha256 (LRU), one watchdog thread."""

    kind = "onnx"

    def __init__(self, sessions: int = SESSIONS) -> None:
        self.size = sessions
        self._sessions: OrderedDict[tuple[str, tuple[str, ...]], tuple[Any, ModelFacts]] = \
            OrderedDict()
        self._lock = threading.Lock()
        self._ort: Any = None
        self._providers: list[str] | None = None
        self.watchdog = Watchdog()
        self.created = 0

    @property
    def ort(self) -> Any:
        if self._ort is None:
            self._ort = require_onnxruntime()
        return self._ort

    @property
    def providers(self) -> list[str]:
        """Execution providers sessions use, best first (see :meth:`set_providers`)."""
        if self._providers is None:
            self._providers = default_providers(self.ort)
        return list(self._providers)

    def set_providers(self, providers: Sequence[str] | None) -> None:
        """Name the execution providers (e.g. ``["CUDAExecutionProvider",
        "CPUExecutionProvider"]``); None: the default. Sessions loaded later use them."""
        if providers is not None:
            known = self.ort.get_available_providers()
            unknown = [p for p in providers if p not in known]
            if unknown or not providers:
                raise BadArguments(f"unknown execution provider(s) {unknown}; this ONNX Runtime "
                                   f"has {', '.join(known)}")
        self._providers = list(providers) if providers is not None else None

    def session(self, code: bytes, cache: ModuleCache | None = None) -> tuple[Any, ModelFacts]:
        """The session of ``code`` (created on a miss), with the model's facts (read from
        ``cache`` when a process checked these bytes before: parsing a model imports the
        ``onnx`` package, about a second)."""
        digest = hashlib.sha256(code).hexdigest()
        key = (digest, tuple(self.providers))
        with self._lock:
            hit = self._sessions.get(key)
            if hit is not None:
                self._sessions.move_to_end(key)
                return hit
        facts = _cached_facts(cache, digest)
        if facts is None:
            _, facts = inspect_model(code)
            if cache is not None:
                cache.put(_facts_key(digest), json.dumps(
                    {"static_bytes": facts.static_bytes, "row_bytes": facts.row_bytes}).encode())
        ort = self.ort
        options = ort.SessionOptions()
        options.log_severity_level = 3
        session = ort.InferenceSession(code, sess_options=options, providers=list(key[1]))
        with self._lock:
            self.created += 1
            self._sessions[key] = (session, facts)
            while len(self._sessions) > self.size:
                self._sessions.popitem(last=False)
        return session, facts

    def load(self, code: bytes, signature: Signature, *, memory_mb: int, name: str,
             cache: ModuleCache | None = None, language: str = "") -> OnnxModel:
        if len(code) > memory_mb * _MIB:
            raise LimitExceeded(f"{name}: the model is {math.ceil(len(code) / _MIB)} MB, above "
                                f"its memory limit of {memory_mb} MB")
        try:
            session, facts = self.session(code, cache)
        except ValueError as exc:
            raise InvocationError(f"{name}: the stored model is refused: {exc}") from None
        except Exception as exc:  # noqa: BLE001 - ONNX Runtime refused the bytes
            raise InvocationError(f"{name}: ONNX Runtime cannot load the model: {exc}") from None
        return OnnxModel(self, session, signature, memory_mb=memory_mb, model_bytes=len(code),
                         static_bytes=facts.static_bytes, row_bytes=facts.row_bytes)

    def isolation(self) -> Isolation:
        ort = self.ort
        return Isolation(
            "onnx",
            ("models are data: ONNX Runtime's own operators only (custom-op libraries never "
             "loaded)", "models with external data files refused",
             f"providers: {', '.join(self.providers)}"),
            ("no process boundary: sessions run in the calling process (a crash in ONNX "
             f"Runtime {ort.__version__} takes the kernel with it)",),
            ("time limit (RunOptions.terminate)", "memory_mb: model size and per-batch "
             "estimate checked before running"))

    def close(self) -> None:
        with self._lock:
            self._sessions.clear()


_runtime: OnnxRuntime | None = None
_runtime_lock = threading.Lock()


def runtime() -> OnnxRuntime:
    """The process-wide ONNX runtime."""
    global _runtime
    if _runtime is None:
        with _runtime_lock:
            if _runtime is None:
                _runtime = OnnxRuntime()
    return _runtime


__all__ = ["ELEMENT_DTYPES", "OnnxModel", "OnnxRuntime", "TensorSpec", "array_summary",
           "inspect_model", "output_summary", "record_summary", "result_type", "runtime",
           "to_tensor"]
