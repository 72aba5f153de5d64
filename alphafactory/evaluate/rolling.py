"""Time-series kernels: per asset over the last ``w`` rows, NaN if any of them is missing.

Inputs are (T, N) panels or (T, 1) macro series (broadcast against each other); outputs
have the input's dtype and NaN in the first ``w - 1`` rows. The window arithmetic is
compiled (``direct.py``); lags are plain row shifts.
"""

from __future__ import annotations

import numpy as np

from alphafactory.evaluate import direct
from alphafactory.evaluate.elementwise import safe_div


def run_window(kernel, inputs: tuple[np.ndarray, ...], w: int, *options) -> np.ndarray:
    """Call ``kernel(*inputs, w, *options, out)`` on contiguous, equally shaped inputs."""
    shape = np.broadcast_shapes(*(a.shape for a in inputs))
    arrays = tuple(np.ascontiguousarray(np.broadcast_to(a, shape)) for a in inputs)
    out = np.empty(shape, dtype=np.result_type(*inputs))
    out[: min(w - 1, shape[0])] = np.nan
    kernel(*arrays, w, *options, out)
    return out


def ts_sum(x: np.ndarray, w: int) -> np.ndarray:
    return run_window(direct.window_weighted, (x,), w, np.ones(w))


def ts_mean(x: np.ndarray, w: int) -> np.ndarray:
    return run_window(direct.window_weighted, (x,), w, np.full(w, 1.0 / w))


def decay_linear(x: np.ndarray, w: int) -> np.ndarray:
    """Weights 1 (oldest) .. w (newest), normalised to sum to 1."""
    return run_window(direct.window_weighted, (x,), w, np.arange(1.0, w + 1.0) / (w * (w + 1) / 2))


def ema(x: np.ndarray, w: int) -> np.ndarray:
    """Exponential weights (1 - alpha)^age, alpha = 2 / (w + 1), over the last w rows only.

    Equals pandas ``ewm(span=w, adjust=True).mean()`` applied to those w rows: a finite
    window keeps the lookback finite (an infinite-memory EMA would depend on the start row).
    """
    powers = (1.0 - 2.0 / (w + 1)) ** np.arange(w - 1, -1, -1.0)  # oldest row first
    return run_window(direct.window_weighted, (x,), w, powers / powers.sum())


def ts_max(x: np.ndarray, w: int) -> np.ndarray:
    return run_window(direct.window_extreme, (x,), w, 1.0)


def ts_min(x: np.ndarray, w: int) -> np.ndarray:
    return run_window(direct.window_extreme, (x,), w, -1.0)


def ts_argmax(x: np.ndarray, w: int) -> np.ndarray:
    return run_window(direct.window_argmax, (x,), w, 1.0)


def ts_argmin(x: np.ndarray, w: int) -> np.ndarray:
    return run_window(direct.window_argmax, (x,), w, -1.0)


def ts_rank(x: np.ndarray, w: int) -> np.ndarray:
    """Percentile rank of the current row within its window, average ties (pandas pct)."""
    return run_window(direct.window_rank, (x,), w)


def shift(x: np.ndarray, d: int) -> np.ndarray:
    """``x`` moved ``d`` rows later (row t holds row t - d), NaN where there is no row."""
    out = np.empty_like(x)
    out[:d] = np.nan
    if d < x.shape[0]:
        out[d:] = x[: x.shape[0] - d]
    return out


def delay(x: np.ndarray, d: int) -> np.ndarray:
    return shift(x, d)


def delta(x: np.ndarray, d: int) -> np.ndarray:
    return x - shift(x, d)


def pct_change(x: np.ndarray, d: int) -> np.ndarray:
    return safe_div(x, shift(x, d)) - 1.0
