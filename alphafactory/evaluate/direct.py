"""Compiled time-series window kernels: each output row reads its own ``w`` input rows.

The work is O(w) per value, but in one compiled pass with no temporaries and with rows
spread over every core, which beats any chain of numpy passes for the windows formulas use.
Each value is a fixed sequence of operations on rows ``t - w + 1 .. t``, oldest first, so it
is bit-identical whatever history precedes or follows it: point-in-time exact, and a
formula's value does not depend on how much lookback a service loaded.

Kernels take a C-contiguous (T, N) input (N = 1 for a macro series), the window and an
output array of the caller's dtype, and fill rows ``w - 1 ..``; the wrappers in
``rolling.py`` and ``moments.py`` allocate the output and set the first ``w - 1`` rows to NaN.
Inside, everything is float64. Any missing value in a window gives NaN (pandas
``min_periods = w``): NaN propagates through the arithmetic, and the kernels that compare
(max, argmax, rank) check for it explicitly.

Rows are processed in blocks of about ``_BLOCK`` values, in parallel; each block allocates
its scratch once, so a macro series (N = 1) runs as one tight loop instead of paying an
allocation per row. Numba's parallel loops run on its OpenMP threading layer, which is
thread-safe; OpenMP is not fork-safe, so processes that fan out after evaluating use
``spawn`` or ``forkserver``.
"""

from __future__ import annotations

import numpy as np
from numba import njit, prange

_JIT = {"parallel": True, "cache": True, "nogil": True}
_BLOCK = 4096  # values per block of rows: scratch stays in L1, blocks stay many on panels


@njit(cache=True, inline="always")
def _blocks(rows, columns, w):
    """Number of row blocks and rows per block covering the output rows w-1 .. rows-1."""
    per_block = max(1, _BLOCK // columns)
    return max(0, -(-(rows - w + 1) // per_block)), per_block


@njit(cache=True, inline="always")
def _block_rows(block, per_block, rows, w):
    first = w - 1 + block * per_block
    return first, min(first + per_block, rows)


@njit(**_JIT)
def window_weighted(x, w, weights, out):
    """sum_k weights[k] * x[t - w + 1 + k]: ``w`` weights, oldest row first."""
    rows, columns = x.shape
    n_blocks, per_block = _blocks(rows, columns, w)
    for block in prange(n_blocks):
        total = np.empty(columns)
        first, end = _block_rows(block, per_block, rows, w)
        for t in range(first, end):
            total[:] = 0.0
            for k in range(w):
                for j in range(columns):
                    total[j] += weights[k] * x[t - w + 1 + k, j]
            out[t] = total


@njit(**_JIT)
def window_extreme(x, w, sign, out):
    """Window maximum of ``sign * x`` times ``sign``: the max (sign 1) or min (sign -1)."""
    rows, columns = x.shape
    n_blocks, per_block = _blocks(rows, columns, w)
    for block in prange(n_blocks):
        best = np.empty(columns)
        first, end = _block_rows(block, per_block, rows, w)
        for t in range(first, end):
            for j in range(columns):
                best[j] = sign * x[t - w + 1, j]
            for k in range(t - w + 2, t + 1):
                for j in range(columns):
                    value = sign * x[k, j]
                    if value != value or best[j] != best[j]:
                        best[j] = np.nan
                    elif value > best[j]:
                        best[j] = value
            for j in range(columns):
                out[t, j] = sign * best[j]


@njit(**_JIT)
def window_argmax(x, w, sign, out):
    """Row of the window maximum of ``sign * x``, counted from the oldest row; ties keep
    the older row (numpy ``argmax`` order); NaN where the window holds a missing value."""
    rows, columns = x.shape
    n_blocks, per_block = _blocks(rows, columns, w)
    for block in prange(n_blocks):
        first, end = _block_rows(block, per_block, rows, w)
        for t in range(first, end):
            start = t - w + 1
            for j in range(columns):
                best, position = sign * x[start, j], 0.0
                for k in range(1, w):
                    value = sign * x[start + k, j]
                    if value != value:
                        best = value
                    elif value > best:
                        best, position = value, float(k)
                out[t, j] = position if best == best else np.nan


@njit(**_JIT)
def window_rank(x, w, out):
    """Percentile rank of row t within its window, ties averaged (pandas ``pct=True``):
    ``(#less + #less_or_equal) / 2 + 1`` over ``w``."""
    rows, columns = x.shape
    n_blocks, per_block = _blocks(rows, columns, w)
    for block in prange(n_blocks):
        count = np.empty(columns)
        missing = np.empty(columns, dtype=np.bool_)
        first, end = _block_rows(block, per_block, rows, w)
        for t in range(first, end):
            for j in range(columns):
                count[j], missing[j] = 0.0, x[t, j] != x[t, j]
            for k in range(t - w + 1, t):
                for j in range(columns):
                    previous, current = x[k, j], x[t, j]
                    count[j] += (previous < current) + (previous <= current)
                    missing[j] |= previous != previous
            for j in range(columns):
                out[t, j] = np.nan if missing[j] else (count[j] + 2.0) / (2.0 * w)


@njit(cache=True, inline="always")
def _window_mean(x, t, w, mean, constant):
    """Mean of rows t-w+1..t into ``mean``; ``constant`` says which columns never change."""
    start = t - w + 1
    for j in range(x.shape[1]):
        mean[j], constant[j] = x[start, j], True
    for k in range(start + 1, t + 1):
        for j in range(x.shape[1]):
            mean[j] += x[k, j]
            constant[j] &= x[k, j] == x[start, j]
    for j in range(x.shape[1]):
        mean[j] /= w


@njit(**_JIT)
def window_moments(x, w, zscore, out):
    """Sample standard deviation (ddof 1) of each window, or with ``zscore`` the z-score of
    row t in it. Two passes (mean, then squared deviations); a window of identical values
    has a variance of exactly 0, as in pandas, so its z-score is NaN rather than noise.
    Needs w >= 2 (a one-row window counts as constant here); ``moments.py`` answers w = 1."""
    rows, columns = x.shape
    n_blocks, per_block = _blocks(rows, columns, w)
    for block in prange(n_blocks):
        mean, squares = np.empty(columns), np.empty(columns)
        constant = np.empty(columns, dtype=np.bool_)
        first, end = _block_rows(block, per_block, rows, w)
        for t in range(first, end):
            _window_mean(x, t, w, mean, constant)
            squares[:] = 0.0
            for k in range(t - w + 1, t + 1):
                for j in range(columns):
                    deviation = x[k, j] - mean[j]
                    squares[j] += deviation * deviation
            for j in range(columns):
                std = 0.0 if constant[j] else np.sqrt(squares[j] / (w - 1))
                if not zscore:
                    out[t, j] = std
                elif std >= 1e-12:  # a NaN std (missing value) fails this and gives NaN too
                    out[t, j] = (x[t, j] - mean[j]) / std
                else:
                    out[t, j] = np.nan


@njit(**_JIT)
def window_comoments(x, y, w, correlation, out):
    """Sample covariance (ddof 1) of two series over each window, or with ``correlation``
    their Pearson correlation, clipped to [-1, 1] and NaN where either one is constant.
    Needs w >= 2 (the covariance divides by w - 1); ``moments.py`` answers w = 1."""
    rows, columns = x.shape
    n_blocks, per_block = _blocks(rows, columns, w)
    for block in prange(n_blocks):
        mean_x, mean_y = np.empty(columns), np.empty(columns)
        constant_x = np.empty(columns, dtype=np.bool_)
        constant_y = np.empty(columns, dtype=np.bool_)
        co, squares_x, squares_y = np.empty(columns), np.empty(columns), np.empty(columns)
        first, end = _block_rows(block, per_block, rows, w)
        for t in range(first, end):
            _window_mean(x, t, w, mean_x, constant_x)
            _window_mean(y, t, w, mean_y, constant_y)
            co[:], squares_x[:], squares_y[:] = 0.0, 0.0, 0.0
            for k in range(t - w + 1, t + 1):
                for j in range(columns):
                    dx = x[k, j] - mean_x[j]
                    dy = y[k, j] - mean_y[j]
                    co[j] += dx * dy
                    squares_x[j] += dx * dx
                    squares_y[j] += dy * dy
            for j in range(columns):
                if constant_x[j] or constant_y[j]:  # exactly 0: the arithmetic may not give it
                    co[j], squares_x[j], squares_y[j] = 0.0, 0.0, 0.0
                out[t, j] = _comoment(co[j], squares_x[j], squares_y[j], w, correlation)


@njit(cache=True, inline="always")
def _comoment(co, squares_x, squares_y, w, correlation):
    if not correlation:
        return co / (w - 1)
    denominator = np.sqrt(squares_x * squares_y)
    if not denominator > 0:  # a constant series (or a missing value)
        return np.nan
    return min(max(co / denominator, -1.0), 1.0)
