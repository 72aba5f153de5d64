"""Elementwise kernels. Arguments broadcast: scalars, (T, 1) macro series, (T, N) panels.

Domain errors give NaN, never inf: ``log`` of x <= 0, ``sqrt`` of x < 0, and division by
|y| < ``TINY``. Callers run kernels under ``np.errstate(all="ignore")``.
"""

from __future__ import annotations

import numpy as np
from numba import vectorize

TINY = 1e-12  # |denominator| below this is treated as zero


@vectorize(["float32(float32, float32)", "float64(float64, float64)"], cache=True)
def safe_div(x, y):
    """x / y, NaN where |y| < TINY or y is missing: one compiled pass, no temporaries."""
    return x / y if abs(y) >= TINY else np.nan


def log(x):
    return np.log(np.where(x > 0, x, np.nan))


def sqrt(x):
    return np.sqrt(np.where(x >= 0, x, np.nan))


def slog(x):
    return np.sign(x) * np.log1p(np.abs(x))


def inv(x):
    return safe_div(np.ones((), dtype=x.dtype), x)
