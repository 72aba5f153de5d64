"""Rolling standard deviation, z-score, covariance and correlation, numerically stable.

Window summaries are (mean, sum of squared deviations) pairs merged with Chan et al.'s
pairwise update, not raw power sums: ``sum(x^2) - sum(x)^2 / w`` loses about
``log10(level^2 / variance)`` digits, e.g. 8 digits for two days of a price near 51 that
moved by 0.01. The merge of two segments of lengths ``a`` (older) and ``b``::

    delta = mean_b - mean_a
    mean  = mean_a + delta * b / (a + b)
    M2    = M2_a + M2_b + delta^2 * a * b / (a + b)

A constant window has delta 0 at every merge, so its variance is exactly 0 (as in pandas)
and z-scores / correlations there are NaN rather than noise. Always float64 inside.
"""

from __future__ import annotations

import numpy as np

from alphafactory.evaluate.elementwise import safe_div
from alphafactory.evaluate.windows import rolling


def _leaf(x):
    x = x.astype(np.float64, copy=False)
    return (x, np.zeros(x.shape))


def _merge(older, newer, len_older, len_newer):
    mean_a, m2_a = older
    mean_b, m2_b = newer
    share, weight = _factors(len_older, len_newer)
    delta = mean_b - mean_a
    mean = delta * share
    mean += mean_a
    m2 = np.multiply(delta, delta)
    m2 *= weight
    m2 += m2_a
    m2 += m2_b
    return (mean, m2)


def _factors(len_older: int, len_newer: int) -> tuple[float, float]:
    total = len_older + len_newer
    return len_newer / total, len_older * len_newer / total


def ts_std(x: np.ndarray, w: int) -> np.ndarray:
    def finish(state, out, _block):
        np.sqrt(state[1] / (w - 1), out=out, casting="unsafe")

    return rolling((x,), w, _leaf, _merge, finish, x.dtype)


def ts_zscore(x: np.ndarray, w: int) -> np.ndarray:
    def finish(state, out, block):
        std = np.sqrt(state[1] / (w - 1))
        np.copyto(out, safe_div(block[w - 1 :] - state[0], std), casting="unsafe")

    return rolling((x,), w, _leaf, _merge, finish, x.dtype)


def _pair_leaf(x, y):
    x = x.astype(np.float64, copy=False)
    y = y.astype(np.float64, copy=False)
    co = np.zeros(np.broadcast_shapes(x.shape, y.shape))  # (m, 1) macro with (m, N) panel
    return (x, y, co, np.zeros(x.shape), np.zeros(y.shape))


def _pair_merge(older, newer, len_older, len_newer):
    share, weight = _factors(len_older, len_newer)
    mean_x, m2_x = _merge((older[0], older[3]), (newer[0], newer[3]), len_older, len_newer)
    mean_y, m2_y = _merge((older[1], older[4]), (newer[1], newer[4]), len_older, len_newer)
    co = (newer[0] - older[0]) * (newer[1] - older[1])
    co *= weight
    co += older[2]
    co += newer[2]
    return (mean_x, mean_y, co, m2_x, m2_y)


def ts_cov(x: np.ndarray, y: np.ndarray, w: int) -> np.ndarray:
    def finish(state, out, *_):
        np.divide(state[2], w - 1, out=out, casting="unsafe")

    return rolling((x, y), w, _pair_leaf, _pair_merge, finish, np.result_type(x, y))


def ts_corr(x: np.ndarray, y: np.ndarray, w: int) -> np.ndarray:
    """Pearson correlation; NaN where either series is constant over the window."""

    def finish(state, out, *_):
        denominator = np.sqrt(state[3] * state[4])
        corr = state[2] / np.where(denominator > 0, denominator, np.nan)
        np.clip(corr, -1.0, 1.0, out=out, casting="unsafe")

    return rolling((x, y), w, _pair_leaf, _pair_merge, finish, np.result_type(x, y))
