"""The ``min_confidence`` cascade option: a classifier's unsure answer escalates.

``fx.invoke("iris", x, min_confidence=0.8)``: when the top class probability of the code
tier's output is below 0.8 (for a batch: of any row), the code attempt fails with
:class:`LowConfidence`, whose ``partial`` is the model's output, so the next tier (for a model:
the human tier, the LLM tiers are skipped for models by default) sees the input, the
probabilities and the predicted label, and a person can approve the model's answer or give
another one.

The output is read as a classifier's: a dict with a probabilities output (a float array whose
name contains ``prob``, or the only float array) and optionally a label output (``label``, or
the only integer/text array); or one float array of probabilities (label = the arg max).
"""

from __future__ import annotations

import math
from typing import Any

from ..errors import BadArguments, InvocationError


class LowConfidence(InvocationError):
    """The model's top probability is below ``min_confidence``; ``partial`` is its output."""

    kind = "low_confidence"

    def __init__(self, message: str, partial: Any, confidence: float, label: Any) -> None:
        super().__init__(message)
        self.partial = partial
        self.confidence = confidence
        self.label = label


def threshold(value: Any) -> float:
    """``min_confidence`` as a number in [0, 1], else :class:`BadArguments`."""
    if isinstance(value, bool) or not isinstance(value, (int, float)) or \
            not (math.isfinite(value) and 0 <= value <= 1):
        raise BadArguments(f"min_confidence must be a number from 0 to 1, got {value!r:.40}")
    return float(value)


def split_output(value: Any) -> tuple[Any, Any]:
    """(probabilities as a 2-D array, labels or None) of a classifier's output."""
    import numpy as np

    if isinstance(value, dict):
        arrays = {k: np.asarray(v) for k, v in value.items()}
        floats = {k: a for k, a in arrays.items() if a.dtype.kind == "f"}
        probs = next((a for k, a in floats.items() if "prob" in k.lower()), None)
        if probs is None and len(floats) == 1:
            probs = next(iter(floats.values()))
        others = {k: a for k, a in arrays.items() if a.dtype.kind in "iuUSO"}
        labels = others.get("label")
        if labels is None and len(others) == 1:
            labels = next(iter(others.values()))
    else:
        probs, labels = np.asarray(value), None
    if probs is None or probs.dtype.kind != "f" or probs.ndim not in (1, 2):
        raise BadArguments("min_confidence needs a classifier's probabilities (a float array, "
                           "or a dict with a 'probabilities' output); this output has none")
    return np.atleast_2d(probs), None if labels is None else np.atleast_1d(labels)


def check(name: str, value: Any, minimum: Any) -> Any:
    """``value`` when every row's top probability is at least ``minimum``; else raise
    :class:`LowConfidence` naming the least sure row, its label and its probabilities."""
    limit = threshold(minimum)
    probs, labels = split_output(value)
    top = probs.max(axis=1)
    row = int(top.argmin())
    if top[row] >= limit:
        return value
    label = labels[row].item() if labels is not None else int(probs[row].argmax())
    where = f" (row {row} of {len(top)})" if len(top) > 1 else ""
    shown = ", ".join(f"{p:.3f}" for p in probs[row][:20])
    raise LowConfidence(f"{name}: predicted label {label!r} with probability {top[row]:.3f}"
                        f"{where}, below min_confidence {limit:g}; probabilities [{shown}]",
                        value, float(top[row]), label)


__all__ = ["LowConfidence", "check", "split_output", "threshold"]
