"""From a macro factor (one series over dates) to per-asset forecasts, point-in-time.

A macro formula gives one number per date, ``f_t``; allocation needs one number per asset.
At each date ``t`` and for each asset ``i`` we regress the asset's returns on the factor's
previous value over every row so far (an expanding window, OLS with intercept, the rows
where both are known, at least ``min_periods`` of them)::

    r_{s,i} = a_{t,i} + b_{t,i} * f_{s-1} + e_{s,i}        s <= t

and forecast the asset's next return, beyond its mean, with the factor's current value
measured from its point-in-time mean (the mean of the same rows' ``f_{s-1}``)::

    forecast_{t,i} = b*_{t,i} * (f_t - mean_t(f))

That is the slope on the factor standardised with its point-in-time mean and scale times
the factor's current standardised value, in return units. It keeps what ``b * f_t`` lost:
adding a constant to a formula, or scaling it by any non-zero number, leaves its
forecasts unchanged (the mean absorbs the constant, the slope the scale), and a factor
that never changes sign (a spread, a growth rate) still forecasts above-mean returns for
some assets and below-mean for others as it moves around its own mean.

``b*`` shrinks each asset's slope toward its asset class's mean slope (``classes``: the
asset's class code per date, ``-1`` for none; no shrinking when not given), by the
James-Stein weight ``lambda = min(1, mean sampling variance of the class's slopes / their
cross-sectional variance)``: where the slopes differ by no more than their estimation
noise, the class moves together; where they differ by much more, each keeps its own. An
asset alone in its class (or with no class) keeps its own slope.

Only data known at ``t`` is used: returns up to ``r_t`` (earned from t-1 to t), factor
values up to ``f_t`` and the classes of row ``t``. A missing return or factor value leaves
its row out of that asset's regression; a factor missing at ``t`` (or constant so far)
gives NaN. Many factors map at once (``factor`` of shape (T, K)), factors in parallel,
each on its own (bit-identical whichever other factors share the call); the running
moments are updated one row at a time (Welford), so a price index near 300 keeps its
digits. Forecasts depend on where the panel starts: an expanding window has no fixed
look-back.
"""

from __future__ import annotations

import numpy as np
from numba import njit, prange

MIN_PERIODS = 60


def macro_scores(
    factor: np.ndarray,
    returns: np.ndarray,
    *,
    min_periods: int = MIN_PERIODS,
    classes: np.ndarray | None = None,
    lag: int = 1,
) -> np.ndarray:
    """Per-asset forecasts of a macro factor (module doc).

    ``factor``: (T,) or (T, K) for K factors; ``returns``: (T, N) simple returns, row t
    earned from date t-1 to date t; ``classes``: (T, N) or (N,) integer class codes (-1:
    none); ``lag``: the regressions pair ``r_s`` with ``f_{s-lag}`` (2: the factor forecasts
    the return of the period after next, for a position that starts a period late).
    Returns (T, N), or (T, K, N) for (T, K) factors.
    """
    factor = np.asarray(factor, dtype=np.float64)
    returns = np.ascontiguousarray(returns, dtype=np.float64)
    if factor.ndim not in (1, 2) or returns.ndim != 2 or factor.shape[0] != returns.shape[0]:
        raise ValueError(
            f"factor must be (T,) or (T, K) and returns (T, N) with the same T, "
            f"got {factor.shape} and {returns.shape}"
        )
    if min_periods < 3:
        raise ValueError(f"min_periods must be at least 3 rows, got {min_periods}")
    if lag < 1:
        raise ValueError(f"lag must be at least 1 row, got {lag}")
    current = np.ascontiguousarray(factor.reshape(len(factor), -1))  # (T, K)
    lagged = np.full_like(current, np.nan)
    lagged[lag:] = current[:-lag]
    codes = _dense_codes(classes, returns.shape)
    # (K, T, N) underneath, so a scorer's (K, T, N) stack is a free transpose of the result
    out = np.full((current.shape[1], current.shape[0], returns.shape[1]), np.nan)
    classes_count = max(int(codes.max()) + 1, 1)
    _expanding_forecasts(lagged, current, returns, codes, classes_count, min_periods, out)
    return out[0] if factor.ndim == 1 else out.transpose(1, 0, 2)


def _dense_codes(classes: np.ndarray | None, shape: tuple[int, int]) -> np.ndarray:
    """Class codes per (row, asset) as 0..C-1, or -1 for none (all, when not given)."""
    if classes is None:
        return np.full(shape, -1, dtype=np.int64)
    codes = np.broadcast_to(np.asarray(classes), shape)
    if not np.issubdtype(codes.dtype, np.integer):
        raise ValueError(f"classes must be integer codes, got dtype {codes.dtype}")
    known = codes >= 0
    dense = np.full(shape, -1, dtype=np.int64)
    if known.any():
        _, dense[known] = np.unique(codes[known], return_inverse=True)
    return dense


@njit(parallel=True, cache=True, nogil=True)
def _expanding_forecasts(lagged, current, returns, codes, n_classes, min_periods, out):
    """out[k, t, i]: the shrunk expanding slope of returns[:, i] on lagged[:, k] at t,
    times (current[t, k] - the mean of lagged[:, k] over the asset's rows). Factors in
    parallel; each row updates every asset's running moments, then forecasts."""
    rows, factors = lagged.shape
    assets = returns.shape[1]
    for k in prange(factors):
        n, mean_x, mean_y = np.zeros(assets), np.zeros(assets), np.zeros(assets)
        sxx, sxy, syy = np.zeros(assets), np.zeros(assets), np.zeros(assets)
        slope, noise = np.empty(assets), np.empty(assets)
        for t in range(rows):
            x = lagged[t, k]
            if np.isfinite(x):
                for i in range(assets):
                    y = returns[t, i]
                    if np.isfinite(y):  # Welford: the moments of the rows so far
                        n[i] += 1.0
                        dx, dy = x - mean_x[i], y - mean_y[i]
                        mean_x[i] += dx / n[i]
                        mean_y[i] += dy / n[i]
                        sxx[i] += dx * (x - mean_x[i])
                        sxy[i] += dx * (y - mean_y[i])
                        syy[i] += dy * (y - mean_y[i])
            f = current[t, k]
            if not np.isfinite(f):
                continue
            for i in range(assets):
                slope[i], noise[i] = np.nan, np.nan
                if n[i] >= min_periods and sxx[i] > 0.0:
                    slope[i] = sxy[i] / sxx[i]
                    residual = max(syy[i] - sxy[i] * slope[i], 0.0) / (n[i] - 2.0)
                    noise[i] = residual / sxx[i]  # the slope's sampling variance
            shrunk = _shrink_to_class(slope, noise, codes[t], n_classes)
            for i in range(assets):
                out[k, t, i] = shrunk[i] * (f - mean_x[i])


@njit(cache=True)
def _shrink_to_class(slope, noise, codes, n_classes):
    """Each finite slope moved toward its class's mean slope by the James-Stein weight."""
    count, total = np.zeros(n_classes), np.zeros(n_classes)
    for i in range(len(slope)):
        if codes[i] >= 0 and np.isfinite(slope[i]):
            count[codes[i]] += 1.0
            total[codes[i]] += slope[i]
    mean = total / np.maximum(count, 1.0)
    spread, sampling = np.zeros(n_classes), np.zeros(n_classes)
    for i in range(len(slope)):
        c = codes[i]
        if c >= 0 and np.isfinite(slope[i]):
            spread[c] += (slope[i] - mean[c]) ** 2
            sampling[c] += noise[i]
    out = slope.copy()
    for i in range(len(slope)):
        c = codes[i]
        if c < 0 or count[c] < 2.0 or not np.isfinite(slope[i]):
            continue
        dispersion = spread[c] / (count[c] - 1.0)
        weight = 1.0 if dispersion <= 0.0 else min(1.0, (sampling[c] / count[c]) / dispersion)
        out[i] = (1.0 - weight) * slope[i] + weight * mean[c]
    return out
