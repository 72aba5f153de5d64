"""Cross-sectional kernels: per date (row) across assets of a (T, N) panel.

Missing values are skipped (pandas ``skipna``) and stay missing. Means and standard
deviations are two-pass (mean first, then squared deviations) for accuracy.
"""

from __future__ import annotations

import numpy as np

from alphafactory.evaluate.elementwise import safe_div


def _row_stats(x: np.ndarray, ddof: int = 1) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per-row count, mean and standard deviation of the valid values, as (T, 1) columns."""
    valid = ~np.isnan(x)
    count = valid.sum(axis=1, keepdims=True)
    total = np.where(valid, x, 0.0).sum(axis=1, keepdims=True, dtype=np.float64)
    mean = total / np.where(count > 0, count, np.nan)
    deviation = np.where(valid, x - mean, 0.0)
    squares = np.einsum("ij,ij->i", deviation, deviation, dtype=np.float64)[:, None]
    std = np.sqrt(squares / np.where(count > ddof, count - ddof, np.nan))
    return count, mean, std


def rank(x: np.ndarray) -> np.ndarray:
    """pandas ``rank(axis=1, pct=True)``: average rank of ties divided by the valid count.

    One ``argsort`` per row; missing values are sorted as +inf because numpy's sort is
    several times slower with NaN present (they land after every valid value, so sorted
    position + 1 is the rank). Ties are averaged only in the rows that hold them.
    """
    rows, columns = x.shape
    missing = np.isnan(x)
    if np.fmax.reduce(x, axis=None) == np.inf:  # a real +inf must sort before missing values
        order = np.argsort(x, axis=1)
    else:
        order = np.argsort(np.where(missing, np.inf, x), axis=1)
    order += (np.arange(rows) * columns)[:, None]  # now flat indices into x.ravel()
    ordered = x.ravel()[order]
    count = columns - missing.sum(axis=1, keepdims=True)
    ranks = np.broadcast_to(np.arange(1.0, columns + 1.0), (rows, columns))
    tied = ordered[:, 1:] == ordered[:, :-1]  # NaN never ties
    tied_rows = np.flatnonzero(tied.any(axis=1))
    if tied_rows.size:
        ranks = ranks.copy()
        ranks[tied_rows] = _average_tied(tied[tied_rows])
    out = np.empty(x.shape, dtype=x.dtype)
    out.ravel()[order.ravel()] = (ranks * (1.0 / np.maximum(count, 1))).ravel()
    np.copyto(out, np.nan, where=missing)
    return out


def _average_tied(tied: np.ndarray) -> np.ndarray:
    """1-based ranks in sorted order where ``tied[:, j]`` says sorted j+1 equals j."""
    rows, columns = tied.shape[0], tied.shape[1] + 1
    position = np.arange(columns)
    starts = np.ones((rows, columns), dtype=bool)
    starts[:, 1:] = ~tied
    first = np.maximum.accumulate(np.where(starts, position, 0), axis=1)
    ends = np.ones((rows, columns), dtype=bool)
    ends[:, :-1] = ~tied
    last = np.minimum.accumulate(np.where(ends, position, columns)[:, ::-1], axis=1)[:, ::-1]
    return (first + last) / 2.0 + 1.0


def zscore(x: np.ndarray) -> np.ndarray:
    _count, mean, std = _row_stats(x)
    return safe_div(x - mean, std).astype(x.dtype, copy=False)


def demean(x: np.ndarray) -> np.ndarray:
    valid = ~np.isnan(x)
    count = valid.sum(axis=1, keepdims=True)
    total = np.where(valid, x, 0.0).sum(axis=1, keepdims=True, dtype=np.float64)
    return (x - total / np.where(count > 0, count, np.nan)).astype(x.dtype, copy=False)


def scale(x: np.ndarray) -> np.ndarray:
    gross = np.where(np.isnan(x), 0.0, np.abs(x)).sum(axis=1, keepdims=True, dtype=np.float64)
    return safe_div(x, gross).astype(x.dtype, copy=False)


def winsorize(x: np.ndarray, k: float) -> np.ndarray:
    """Clip to mean +- k * std per row; rows with fewer than 2 values are left as they are."""
    _count, mean, std = _row_stats(x)
    lower = np.where(np.isnan(std), -np.inf, mean - k * std)
    upper = np.where(np.isnan(std), np.inf, mean + k * std)
    return np.minimum(np.maximum(x, lower), upper).astype(x.dtype, copy=False)


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
