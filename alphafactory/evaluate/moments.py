"""Rolling standard deviation, z-score, covariance and correlation (ddof 1).

Two passes per window (mean, then deviations) in float64, so a price near 51 that moved by
0.01 keeps its digits (raw power sums ``sum(x^2) - sum(x)^2 / w`` lose about
``log10(level^2 / variance)`` of them). A window of identical values has a variance of
exactly 0, as in pandas, so z-scores and correlations there are NaN rather than noise.
Over a window of one row the sample moments are undefined (ddof 1 divides by w - 1 = 0):
every value is NaN, as in pandas, and the kernels never see w = 1.
"""

from __future__ import annotations

import numpy as np

from alphafactory.evaluate import direct
from alphafactory.evaluate.rolling import run_window


def _sample(kernel, inputs: tuple[np.ndarray, ...], w: int, option: bool) -> np.ndarray:
    if w < 2:
        shape = np.broadcast_shapes(*(a.shape for a in inputs))
        return np.full(shape, np.nan, dtype=np.result_type(*inputs))
    return run_window(kernel, inputs, w, option)


def ts_std(x: np.ndarray, w: int) -> np.ndarray:
    return _sample(direct.window_moments, (x,), w, False)


def ts_zscore(x: np.ndarray, w: int) -> np.ndarray:
    return _sample(direct.window_moments, (x,), w, True)


def ts_cov(x: np.ndarray, y: np.ndarray, w: int) -> np.ndarray:
    return _sample(direct.window_comoments, (x, y), w, False)


def ts_corr(x: np.ndarray, y: np.ndarray, w: int) -> np.ndarray:
    """Pearson correlation; NaN where either series is constant over the window."""
    return _sample(direct.window_comoments, (x, y), w, True)
