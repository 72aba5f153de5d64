"""From a macro factor (one series over dates) to per-asset scores, point-in-time.

A macro formula gives one number per date, ``f_t``; allocation needs one score per asset.
For each date ``t`` and asset ``i`` we regress the asset's returns on the factor's previous
value over the trailing window of ``W`` rows ending at ``t`` (OLS with intercept)::

    r_{s,i} = a_{t,i} + b_{t,i} * f_{s-1} + e_{s,i}        s = t - W + 1, ..., t

and score the asset with the factor's current value::

    score_{t,i} = b_{t,i} * f_t

Only data known at ``t`` is used: returns up to ``r_t`` (earned from t-1 to t) and factor
values up to ``f_t``. ``b_{t,i} * f_t`` is the part of the next return ``r_{t+1,i}`` the
factor predicts (beyond the intercept), so going long the high scores and short the low
ones allocates towards the assets whose returns have moved with the factor, in the
factor's current direction: the cross-asset position most correlated with what the factor
forecasts. As everywhere in the language, a window holding a missing return or factor
value gives NaN (for that asset), and so does a factor that did not vary in the window.

Many factors map at once (``factor`` of shape (T, K)) in one compiled pass, dates in
parallel. Each window's statistics are two-pass (means first, then deviations), so a price
index near 300 keeps its digits, and each score is a fixed sequence of operations on its
own window: bit-identical however much history precedes it and whichever other factors
share the call.
"""

from __future__ import annotations

import numpy as np
from numba import njit, prange


def macro_scores(factor: np.ndarray, returns: np.ndarray, window: int = 36) -> np.ndarray:
    """Per-asset scores of a macro factor.

    ``factor``: (T,) or (T, K) for K factors; ``returns``: (T, N) simple returns, row t
    earned from date t-1 to date t. Returns (T, N), or (T, K, N) for (T, K) factors.
    """
    factor = np.asarray(factor, dtype=np.float64)
    returns = np.ascontiguousarray(returns, dtype=np.float64)
    if factor.ndim not in (1, 2) or returns.ndim != 2 or factor.shape[0] != returns.shape[0]:
        raise ValueError(
            f"factor must be (T,) or (T, K) and returns (T, N) with the same T, "
            f"got {factor.shape} and {returns.shape}"
        )
    if window < 3:
        raise ValueError(f"window must be at least 3 rows, got {window}")
    current = np.ascontiguousarray(factor.reshape(len(factor), -1))  # (T, K)
    lagged = np.full_like(current, np.nan)
    lagged[1:] = current[:-1]
    # (K, T, N) underneath, so a scorer's (K, T, N) stack is a free transpose of the result
    scores = np.full((current.shape[1], current.shape[0], returns.shape[1]), np.nan)
    _window_scores(lagged, current, returns, window, scores)
    return scores[0] if factor.ndim == 1 else scores.transpose(1, 0, 2)


@njit(parallel=True, cache=True, nogil=True)
def _window_scores(lagged, current, returns, window, out):
    """out[k, t, i] = slope of returns[s, i] on lagged[s, k] over the window, * current[t, k].

    Dates in parallel; within a date every loop runs over the factors innermost, so the
    work of many factors is contiguous vector arithmetic. Each value is still its own
    fixed sequence of sums over its window (in window order)."""
    rows, factors = lagged.shape
    assets = returns.shape[1]
    for t in prange(window - 1, rows):
        start = t - window + 1
        deviations = returns[start : t + 1] - _column_means(returns[start : t + 1])  # (W, N)
        x_deviation = np.empty((window, factors))
        m2, constant = _factor_deviations(lagged, start, window, x_deviation)
        co_moment = np.zeros((assets, factors))
        for i in range(assets):
            for s in range(window):
                weight = deviations[s, i]
                for k in range(factors):
                    co_moment[i, k] += x_deviation[s, k] * weight
        for k in range(factors):
            if constant[k] or not m2[k] > 0:  # constant or missing: no slope
                continue
            scale = current[t, k] / m2[k]
            for i in range(assets):
                out[k, t, i] = co_moment[i, k] * scale


@njit(cache=True)
def _factor_deviations(lagged, start, window, x_deviation):
    """Each factor's deviations from its window mean into ``x_deviation`` (W, K); returns
    their sums of squares and whether the factor is constant in the window."""
    factors = lagged.shape[1]
    mean, m2 = np.zeros(factors), np.zeros(factors)
    constant = np.ones(factors, np.bool_)
    for s in range(window):
        for k in range(factors):
            mean[k] += lagged[start + s, k]
            constant[k] &= lagged[start + s, k] == lagged[start, k]
    mean /= window
    for s in range(window):
        for k in range(factors):
            x_deviation[s, k] = lagged[start + s, k] - mean[k]
            m2[k] += x_deviation[s, k] * x_deviation[s, k]
    return m2, constant


@njit(cache=True, inline="always")
def _column_means(block):
    total = block[0].copy()
    for s in range(1, block.shape[0]):
        total += block[s]
    return total / block.shape[0]
