"""Time-series kernels: per asset over the last ``w`` rows, NaN if any of them is missing.

Inputs are (T, N) panels or (T, 1) macro series; outputs have the input's dtype. The
moment kernels (std, z-score, covariance, correlation) are in ``moments.py``. Finishing
steps write into the output block, to keep memory traffic low.
"""

from __future__ import annotations

import numpy as np

from alphafactory.evaluate.elementwise import safe_div
from alphafactory.evaluate.windows import add, any_nan, blocks, maximum, minimum, rolling, shift


def _one(x):
    return (x,)


def _copy(state, out, *_):
    np.copyto(out, state[0], casting="unsafe")


def ts_sum(x: np.ndarray, w: int) -> np.ndarray:
    return rolling((x,), w, _one, add, _copy, x.dtype)


def ts_mean(x: np.ndarray, w: int) -> np.ndarray:
    return rolling((x,), w, _one, add, lambda s, out, _x: np.divide(s[0], w, out=out), x.dtype)


def ts_max(x: np.ndarray, w: int) -> np.ndarray:
    return rolling((x,), w, _one, maximum, _copy, x.dtype)


def ts_min(x: np.ndarray, w: int) -> np.ndarray:
    return rolling((x,), w, _one, minimum, _copy, x.dtype)


def decay_linear(x: np.ndarray, w: int) -> np.ndarray:
    """Weights 1 (oldest) .. w (newest), normalised: state = (sum, weighted sum)."""

    def combine(older, newer, len_older, _len_newer):
        weighted = newer[0] * len_older
        weighted += older[1]
        weighted += newer[1]
        return (older[0] + newer[0], weighted)

    def finish(state, out, _block):
        np.divide(state[1], w * (w + 1) / 2, out=out)

    return rolling((x,), w, lambda b: (b, b), combine, finish, x.dtype)


def ema(x: np.ndarray, w: int) -> np.ndarray:
    """Exponential weights (1 - alpha)^age, alpha = 2 / (w + 1), over the last w rows only.

    Equals pandas ``ewm(span=w, adjust=True).mean()`` applied to those w rows: a finite
    window keeps the lookback finite (an infinite-memory EMA would depend on the start row).
    """
    beta = 1.0 - 2.0 / (w + 1)
    powers = beta ** np.arange(w + 1)

    def combine(older, newer, _len_older, len_newer):
        decayed = older[0] * powers[len_newer]
        decayed += newer[0]
        return (decayed,)

    def finish(state, out, _block):
        np.divide(state[0], powers[:w].sum(), out=out)

    return rolling((x,), w, _one, combine, finish, x.dtype)


def _argmax_leaf(block):
    return (block, np.zeros(block.shape, np.int16))


def _argmax_combine(older, newer, len_older, _len_newer):
    # strict: ties keep the older row (numpy argmax order); any NaN makes the value NaN
    take = newer[0] > older[0]
    position = np.where(take, newer[1] + len_older, older[1])
    return (np.maximum(older[0], newer[0]), position)


def _argmax_finish(state, out, _block):
    np.copyto(out, state[1], casting="unsafe")
    np.copyto(out, np.nan, where=np.isnan(state[0]))


def ts_argmax(x: np.ndarray, w: int) -> np.ndarray:
    return rolling((x,), w, _argmax_leaf, _argmax_combine, _argmax_finish, x.dtype)


def ts_argmin(x: np.ndarray, w: int) -> np.ndarray:
    return rolling((-x,), w, _argmax_leaf, _argmax_combine, _argmax_finish, x.dtype)


def ts_rank(x: np.ndarray, w: int) -> np.ndarray:
    """Percentile rank of the current row within its window, average ties (pandas pct).

    ``rank = #less + #equal_others / 2 + 1 = (#less + #less_or_equal) / 2 + 1``, counted by
    ``w - 1`` integer comparisons per row (no float arithmetic in the loop).
    """
    out = np.empty(x.shape, dtype=x.dtype)
    out[: min(w - 1, x.shape[0])] = np.nan
    counter = np.int16 if 2 * w < np.iinfo(np.int16).max else np.int32
    for rows, columns in blocks(x.shape, w):
        block = x[rows.start - w + 1 : rows.stop, columns]
        current = block[w - 1 :]
        count = np.zeros(current.shape, dtype=counter)
        for k in range(w - 1):
            previous = block[k : k + current.shape[0]]
            np.add(count, previous < current, out=count, casting="unsafe")
            np.add(count, previous <= current, out=count, casting="unsafe")
        target = out[rows, columns]
        np.divide(count + 2.0, 2.0 * w, out=target, casting="unsafe")
        np.copyto(target, np.nan, where=any_nan(block, w))
    return out


def delay(x: np.ndarray, d: int) -> np.ndarray:
    return shift(x, d)


def delta(x: np.ndarray, d: int) -> np.ndarray:
    return x - shift(x, d)


def pct_change(x: np.ndarray, d: int) -> np.ndarray:
    return safe_div(x, shift(x, d)) - 1.0
