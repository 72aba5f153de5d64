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

Vectorised over dates, assets and many factors at once (``factor`` of shape (T, K)): the
window statistics (factor mean and M2, return means, co-moments) are merged with the exact,
point-in-time binary decomposition of ``windows.py`` using Chan et al.'s stable pairwise
update (a price index near 300 would lose digits in raw power sums). Factor statistics live
on (T, K), return means on (T, N), and only the co-moment on (T, K, N), so the work per
factor is a few passes over T x N.
"""

from __future__ import annotations

import numpy as np

from alphafactory.evaluate.windows import rolling

_FACTOR_CHUNK = 32  # factors per pass: keeps the (rows, K, N) blocks in cache


def macro_scores(factor: np.ndarray, returns: np.ndarray, window: int = 36) -> np.ndarray:
    """Per-asset scores of a macro factor.

    ``factor``: (T,) or (T, K) for K factors; ``returns``: (T, N) simple returns, row t
    earned from date t-1 to date t. Returns (T, N), or (T, K, N) for (T, K) factors.
    """
    factor = np.asarray(factor, dtype=np.float64)
    returns = np.asarray(returns, dtype=np.float64)
    if factor.ndim not in (1, 2) or returns.ndim != 2 or factor.shape[0] != returns.shape[0]:
        raise ValueError(
            f"factor must be (T,) or (T, K) and returns (T, N) with the same T, "
            f"got {factor.shape} and {returns.shape}"
        )
    if window < 3:
        raise ValueError(f"window must be at least 3 rows, got {window}")
    factors = factor.reshape(len(factor), -1)  # (T, K)
    scores = np.empty((factors.shape[0], factors.shape[1], returns.shape[1]))
    for start in range(0, factors.shape[1], _FACTOR_CHUNK):
        chunk = factors[:, start : start + _FACTOR_CHUNK]
        scores[:, start : start + _FACTOR_CHUNK] = _scores(chunk, returns, window)
    return scores[:, 0, :] if factor.ndim == 1 else scores


def _scores(factors: np.ndarray, returns: np.ndarray, window: int) -> np.ndarray:
    current = factors[:, :, None]  # (T, K, 1)
    lagged = np.full_like(current, np.nan)
    lagged[1:] = current[:-1]

    def finish(state, out, *_):
        _mean_x, m2_x, _mean_y, co_moment = state
        np.divide(co_moment, np.where(m2_x > 0, m2_x, np.nan), out=out)

    beta = rolling((lagged, returns[:, None, :]), window, _leaf, _merge, finish, np.float64)
    return beta * current


def _leaf(x: np.ndarray, y: np.ndarray):
    shape = np.broadcast_shapes(x.shape, y.shape)
    zero = np.zeros((), dtype=np.float64)
    # merges never write into their inputs, so the zeros can be read-only broadcasts
    return (x, np.broadcast_to(zero, x.shape), y, np.broadcast_to(zero, shape))


def _merge(older, newer, len_older, len_newer):
    mean_x_a, m2_x_a, mean_y_a, co_a = older
    mean_x_b, m2_x_b, mean_y_b, co_b = newer
    total = len_older + len_newer
    share, weight = len_newer / total, len_older * len_newer / total
    dx = mean_x_b - mean_x_a  # (m, K, 1)
    dy = mean_y_b - mean_y_a  # (m, 1, N)
    co = (dx * weight) * dy  # the one (m, K, N) product
    co += co_a
    co += co_b
    return (
        mean_x_a + dx * share,
        m2_x_a + m2_x_b + dx * dx * weight,
        mean_y_a + dy * share,
        co,
    )
