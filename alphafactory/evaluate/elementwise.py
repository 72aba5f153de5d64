"""Elementwise kernels. Arguments broadcast: scalars, (T, 1) macro series, (T, N) panels.

Domain errors give NaN, never inf: ``log`` of x <= 0, ``sqrt`` of x < 0, and division by
|y| < ``TINY``. Callers run kernels under ``np.errstate(all="ignore")``.
"""

from __future__ import annotations

import numpy as np

TINY = 1e-12  # |denominator| below this is treated as zero


def safe_div(x, y):
    return np.where(np.abs(y) < TINY, np.nan, np.divide(x, y))


def log(x):
    return np.log(np.where(x > 0, x, np.nan))


def sqrt(x):
    return np.sqrt(np.where(x >= 0, x, np.nan))


def slog(x):
    return np.sign(x) * np.log1p(np.abs(x))


def inv(x):
    return safe_div(np.ones((), dtype=x.dtype), x)
