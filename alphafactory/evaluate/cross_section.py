"""Cross-sectional kernels: per date (row) across assets of a (T, N) panel.

Missing values are skipped (pandas ``skipna``) and stay missing. Row kernels are compiled
and run rows in parallel; means and standard deviations are two-pass (mean first, then
squared deviations) in float64 for accuracy, and outputs keep the input's dtype.
"""

from __future__ import annotations

import os
from concurrent.futures import ThreadPoolExecutor

import numpy as np
from numba import njit, prange

_JIT = {"parallel": True, "cache": True, "nogil": True}
_SORT_THREADS = max(1, min(8, os.cpu_count() or 1))
_sorter = ThreadPoolExecutor(_SORT_THREADS, thread_name_prefix="alphafactory-rank")


def rank(x: np.ndarray) -> np.ndarray:
    """pandas ``rank(axis=1, pct=True)``: average rank of ties divided by the valid count.

    ``argsort`` per row, threaded over row blocks (numpy releases the GIL while sorting),
    with missing values sorted as +inf: numpy sorts several times slower with NaN present,
    and +inf lands after every valid value. Rows holding a real +inf keep their NaN, so a
    NaN can never take a real +inf's place among the first ``count`` sorted positions.
    """
    x = np.ascontiguousarray(x)
    keys = np.empty(x.shape, dtype=x.dtype)
    counts = np.empty(x.shape[0], dtype=np.int64)
    _sort_keys(x, keys, counts)
    order = np.empty(x.shape, dtype=np.int64)

    def sort_rows(rows: slice) -> None:
        order[rows] = np.argsort(keys[rows], axis=1)

    bounds = np.linspace(0, x.shape[0], _SORT_THREADS + 1).astype(int)
    list(
        _sorter.map(
            sort_rows, [slice(a, b) for a, b in zip(bounds[:-1], bounds[1:], strict=True) if b > a]
        )
    )
    out = np.empty(x.shape, dtype=x.dtype)
    _scatter_ranks(x, order, counts, out)
    return out


@njit(**_JIT)
def _sort_keys(x, keys, counts):
    rows, columns = x.shape
    for t in prange(rows):
        real_inf = False
        for j in range(columns):
            real_inf |= x[t, j] == np.inf
        valid = 0
        for j in range(columns):
            value = x[t, j]
            missing = value != value
            keys[t, j] = np.inf if missing and not real_inf else value
            valid += not missing
        counts[t] = valid


@njit(**_JIT)
def _scatter_ranks(x, order, counts, out):
    """Walk each row in sorted order; a run of equal values shares its average rank."""
    rows, columns = x.shape
    for t in prange(rows):
        row, sorted_index, valid = x[t], order[t], counts[t]
        scale = 1.0 / max(valid, 1)
        start = 0
        while start < valid:
            end = start
            while end + 1 < valid and row[sorted_index[end + 1]] == row[sorted_index[start]]:
                end += 1
            value = ((start + end) * 0.5 + 1.0) * scale
            for k in range(start, end + 1):
                out[t, sorted_index[k]] = value
            start = end + 1
        for k in range(valid, columns):
            out[t, sorted_index[k]] = np.nan


@njit(cache=True, inline="always")
def _row_mean_std(row, ddof):
    """Mean and standard deviation (NaN with fewer than ddof + 1 values) of a row's values."""
    count, total = 0, 0.0
    for value in row:
        if value == value:
            count += 1
            total += value
    mean = total / count if count > 0 else np.nan
    squares = 0.0
    for value in row:
        if value == value:
            squares += (value - mean) * (value - mean)
    std = np.sqrt(squares / (count - ddof)) if count > ddof else np.nan
    return mean, std


@njit(**_JIT)
def _zscore(x, out):
    for t in prange(x.shape[0]):
        mean, std = _row_mean_std(x[t], 1)
        usable = std >= 1e-12  # NaN std fails too: the row is missing
        for j in range(x.shape[1]):
            out[t, j] = (x[t, j] - mean) / std if usable else np.nan


@njit(**_JIT)
def _demean(x, out):
    for t in prange(x.shape[0]):
        mean, _std = _row_mean_std(x[t], 0)
        for j in range(x.shape[1]):
            out[t, j] = x[t, j] - mean


@njit(**_JIT)
def _scale(x, out):
    for t in prange(x.shape[0]):
        gross = 0.0
        for value in x[t]:
            if value == value:
                gross += abs(value)
        for j in range(x.shape[1]):
            out[t, j] = x[t, j] / gross if gross >= 1e-12 else np.nan


@njit(**_JIT)
def _winsorize(x, k, out):
    for t in prange(x.shape[0]):
        mean, std = _row_mean_std(x[t], 1)
        lower, upper = (mean - k * std, mean + k * std) if std == std else (-np.inf, np.inf)
        for j in range(x.shape[1]):
            out[t, j] = min(max(x[t, j], lower), upper) if x[t, j] == x[t, j] else np.nan


def _rows(kernel, x: np.ndarray, *options) -> np.ndarray:
    x = np.ascontiguousarray(x)
    out = np.empty(x.shape, dtype=x.dtype)
    kernel(x, *options, out)
    return out


def zscore(x: np.ndarray) -> np.ndarray:
    return _rows(_zscore, x)


def demean(x: np.ndarray) -> np.ndarray:
    return _rows(_demean, x)


def scale(x: np.ndarray) -> np.ndarray:
    """x divided by the row's sum of |x|: the row's absolute values sum to 1."""
    return _rows(_scale, x)


def winsorize(x: np.ndarray, k: float) -> np.ndarray:
    """Clip to mean +- k * std per row; rows with fewer than 2 values are left as they are."""
    return _rows(_winsorize, x, float(k))


def group_demean(x: np.ndarray, groups: np.ndarray) -> np.ndarray:
    """x minus the mean of x over the assets sharing its group code on that date.

    Codes are small non-negative integers; negative codes mean "no group" (result NaN).
    One ``bincount`` over (row, code) pairs does every row at once; missing values and
    ungrouped assets go to a spare bin that is never read.
    """
    rows, _columns = x.shape
    codes = np.asarray(groups, dtype=np.int64)
    n_groups = int(codes.max(initial=-1)) + 1
    member = (codes >= 0) & ~np.isnan(x)
    slot = codes + n_groups * np.arange(rows)[:, None]
    spare = rows * n_groups
    binned = np.where(member, slot, spare).ravel()
    sums = np.bincount(binned, weights=np.where(member, x, 0.0).ravel(), minlength=spare + 1)
    counts = np.bincount(binned, minlength=spare + 1)
    means = sums / np.where(counts > 0, counts, np.nan)
    means[spare] = np.nan
    out = x - means[np.where(codes >= 0, slot, spare)]
    return out.astype(x.dtype, copy=False)
