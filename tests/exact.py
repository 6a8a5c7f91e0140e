"""What "crosses exactly" means in the tests (the conformance suite and the round-trip matrix):
the same type and the same value, NaN for NaN, -0.0 kept apart from 0.0, numpy dtype and
shape kept, dict keys of the same types."""

from __future__ import annotations

import math
from typing import Any

import numpy as np


def same(got: Any, want: Any) -> bool:
    """``got`` is exactly ``want``: same type, same value (NaN is NaN, -0.0 is not 0.0, numpy
    dtype and shape kept)."""
    if isinstance(want, np.ndarray):
        return (isinstance(got, np.ndarray) and got.dtype == want.dtype
                and got.shape == want.shape and np.array_equal(got, want, equal_nan=True)
                and (want.dtype.kind != "f" or np.array_equal(np.signbit(got), np.signbit(want))))
    if type(got) is not type(want):
        return False
    if isinstance(want, float):
        if math.isnan(want):
            return math.isnan(got)
        return got == want and math.copysign(1, got) == math.copysign(1, want)
    if isinstance(want, (list, tuple)):
        return len(got) == len(want) and all(same(g, w) for g, w in zip(got, want, strict=True))
    if isinstance(want, dict):
        key_types = {k: type(k) for k in got}  # 1, 1.0 and True are one key: compare types
        return (got.keys() == want.keys() and all(key_types[k] is type(k) for k in want)
                and all(same(got[k], want[k]) for k in want))
    if isinstance(want, (set, frozenset)):
        return got == want and all(type(x) in {type(y) for y in want} for x in got)
    return got == want
