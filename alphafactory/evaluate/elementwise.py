"""Elementwise kernels. Arguments broadcast: scalars, (T, 1) macro series, (T, N) panels.

Domain errors give NaN, never inf: ``log`` of x <= 0, ``sqrt`` of x < 0, and division by
|y| < ``TINY``. Callers run kernels under ``np.errstate(all="ignore")``.
"""

from __future__ import annotations

import numpy as np
from numba import njit, prange

TINY = 1e-12  # |denominator| below this is treated as zero


def safe_div(x, y):
    """x / y, NaN where |y| < TINY or y is missing: one compiled pass, no temporaries.

    The result type is numpy's for ``x / y`` (a float32 panel over a float32 or Python
    scalar stays float32). A plain ``njit`` loop, not a numba ``vectorize`` ufunc: those
    are compiled when their module is imported (0.6 s of every command's start), where a
    cached ``njit`` kernel is loaded on first use."""
    x, y = np.asarray(x), np.asarray(y)
    dtype = np.result_type(x, y)
    if dtype not in (np.float32, np.float64):
        dtype = np.dtype(np.float64)
    shape = np.broadcast_shapes(x.shape, y.shape)
    out = np.empty(shape, dtype=dtype)
    _divide(_flat(x, shape, dtype), _flat(y, shape, dtype), out.reshape(-1))
    return out if out.ndim else out[()]


def _flat(a: np.ndarray, shape: tuple[int, ...], dtype: np.dtype) -> np.ndarray:
    """``a`` as a contiguous 1-D array of ``dtype``: one element for a scalar (the kernel
    repeats it), else broadcast to ``shape``."""
    if a.size == 1:
        return np.ascontiguousarray(a, dtype=dtype).reshape(1)
    return np.ascontiguousarray(np.broadcast_to(a, shape), dtype=dtype).reshape(-1)


@njit(parallel=True, cache=True, nogil=True)
def _divide(x, y, out):
    """out = x / y where |y| >= TINY, else NaN; ``x`` or ``y`` may hold a single value."""
    n = out.size
    if x.size == 1:
        numerator = x[0]
        for i in prange(n):
            out[i] = numerator / y[i] if abs(y[i]) >= TINY else np.nan
    elif y.size == 1:
        denominator = y[0]
        usable = abs(denominator) >= TINY
        for i in prange(n):
            out[i] = x[i] / denominator if usable else np.nan
    else:
        for i in prange(n):
            out[i] = x[i] / y[i] if abs(y[i]) >= TINY else np.nan


def log(x):
    return np.log(np.where(x > 0, x, np.nan))


def sqrt(x):
    return np.sqrt(np.where(x >= 0, x, np.nan))


def slog(x):
    return np.sign(x) * np.log1p(np.abs(x))


def inv(x):
    return safe_div(np.ones((), dtype=x.dtype), x)
