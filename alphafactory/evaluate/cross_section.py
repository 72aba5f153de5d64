"""Cross-sectional kernels: per date (row) across assets of a (T, N) panel.

Missing values are skipped (pandas ``skipna``) and stay missing. Row kernels are compiled
and run rows in parallel; means and standard deviations are two-pass (mean first, then
squared deviations) in float64 for accuracy, and outputs keep the input's dtype.
"""

from __future__ import annotations

import numpy as np
from numba import njit, prange

from alphafactory.ordering import rank_rows

_JIT = {"parallel": True, "cache": True, "nogil": True}


def rank(x: np.ndarray) -> np.ndarray:
    """pandas ``rank(axis=1, pct=True)``: average rank of ties divided by the valid count.

    Exactly, bit for bit: the average rank is a multiple of 1/2 and is divided (not
    multiplied by a reciprocal, which differs in the last bit, e.g. ``3 * (1/10) !=
    3/10``) by the count, as pandas does, so sums of ranks tie where pandas' tie. NaN stays
    NaN and does not count; +-inf rank as values. Rows run in parallel, each ordered by
    :func:`~alphafactory.ordering.order_and_ranks` (radix, no comparison sort).
    """
    x = np.ascontiguousarray(x)
    out = np.empty(x.shape, dtype=x.dtype)
    rank_rows(x, out, True, False)
    return out


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
