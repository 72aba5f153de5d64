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
    current = np.ascontiguousarray(factor.reshape(len(factor), -1).T)  # (K, T): rows in cache
    lagged = np.full_like(current, np.nan)
    lagged[:, 1:] = current[:, :-1]
    # (K, T, N) underneath, so a scorer's (K, T, N) stack is a free transpose of the result
    scores = np.full((current.shape[0], current.shape[1], returns.shape[1]), np.nan)
    _window_scores(lagged, current, returns, window, scores)
    return scores[0] if factor.ndim == 1 else scores.transpose(1, 0, 2)


@njit(parallel=True, cache=True, nogil=True)
def _window_scores(lagged, current, returns, window, out):
    """out[k, t, i] = slope of returns[s, i] on lagged[k, s] over the window, * current[k, t]."""
    factors, rows = lagged.shape
    assets = returns.shape[1]
    for t in prange(window - 1, rows):
        start = t - window + 1
        returns_window = returns[start : t + 1]
        deviations = returns_window - _column_means(returns_window)  # (window, N)
        x_deviation, co_moment = np.empty(window), np.empty(assets)
        for k in range(factors):
            x = lagged[k, start : t + 1]
            mean, constant = 0.0, True
            for s in range(window):
                mean += x[s]
                constant &= x[s] == x[0]
            mean /= window
            m2 = 0.0
            for s in range(window):
                x_deviation[s] = x[s] - mean
                m2 += x_deviation[s] * x_deviation[s]
            if constant or not m2 > 0:  # constant or missing: no slope
                continue
            co_moment[:] = 0.0
            for s in range(window):
                for i in range(assets):
                    co_moment[i] += x_deviation[s] * deviations[s, i]
            scale = current[k, t] / m2
            for i in range(assets):
                out[k, t, i] = co_moment[i] * scale


@njit(cache=True, inline="always")
def _column_means(block):
    total = block[0].copy()
    for s in range(1, block.shape[0]):
        total += block[s]
    return total / block.shape[0]
