"""Turnover of the long-short portfolio, per date.

``turnover_t = 0.5 * sum_i |w_{i,t} - w_{i,p}|`` where ``p`` is the previous long-short
date (the portfolio actually held before ``t``); the first long-short date has no previous
portfolio and is not counted (NaN). Weights are +1/k_top on the top quantile and
-1/k_bottom on the bottom one.
"""

from __future__ import annotations

import numpy as np

MAX_BIT_ASSETS = 52  # legs fit a float64 / int64 bit set exactly up to this many assets


def previous_dates(defined: np.ndarray) -> np.ndarray:
    """For each ``(f, t)``, the last defined date strictly before ``t`` (-1 if none)."""
    f, t = defined.shape
    last = np.maximum.accumulate(np.where(defined, np.arange(t), -1), axis=-1)
    return np.concatenate([np.full((f, 1), -1), last[:, :-1]], axis=-1)


def turnover_by_date(weights: np.ndarray, defined: np.ndarray) -> np.ndarray:
    """Per-date turnover from ``(F, T, N)`` weights.  -> (F, T), NaN where not counted."""
    prev = previous_dates(defined)
    counted = defined & (prev >= 0)
    held = np.take_along_axis(weights, np.maximum(prev, 0)[..., None], axis=1)
    change = 0.5 * np.abs(weights - held).sum(axis=-1)
    return np.where(counted, change, np.nan)


def turnover_by_legs(
    top: np.ndarray, bottom: np.ndarray, k_top: np.ndarray, k_bottom: np.ndarray,
    defined: np.ndarray,
) -> np.ndarray:  # fmt: skip
    """Per-date turnover from the legs as bit sets of assets (int64) and their sizes.

    The legs are disjoint, so ``|dw_i| = |dlong_i| + |dshort_i|``, and a leg of ``k``
    names against a previous one of ``kp`` names sharing ``s`` contributes
    ``(k - s)/k + (kp - s)/kp + s |1/k - 1/kp|``.
    """
    prev = previous_dates(defined)
    counted = defined & (prev >= 0)
    dates = np.arange(defined.shape[-1])
    consecutive = not np.any(counted & (prev != dates - 1))
    change = np.zeros(defined.shape)
    with np.errstate(divide="ignore", invalid="ignore"):
        for bits, size in ((top, k_top), (bottom, k_bottom)):
            k = np.asarray(size, dtype=np.float64)
            held, k_held = _held(bits, prev, consecutive), _held(k, prev, consecutive)
            shared = popcount(bits & held)
            change += (k - shared) / k + (k_held - shared) / k_held
            change += shared * np.abs(1.0 / k - 1.0 / k_held)
    return np.where(counted, 0.5 * change, np.nan)


def _held(values: np.ndarray, prev: np.ndarray, consecutive: bool) -> np.ndarray:
    """``values`` at each row's previous defined date (garbage where there is none)."""
    if consecutive:  # the common case: a plain shift by one date
        return np.concatenate([values[:, :1], values[:, :-1]], axis=-1)
    return np.take_along_axis(values, np.maximum(prev, 0), axis=-1)


def popcount(bits: np.ndarray) -> np.ndarray:
    """Number of set bits of each non-negative int64 (SWAR, as in Hacker's Delight)."""
    v = np.asarray(bits, dtype=np.int64).astype(np.uint64)
    v = v - ((v >> np.uint64(1)) & np.uint64(0x5555555555555555))
    v = (v & np.uint64(0x3333333333333333)) + ((v >> np.uint64(2)) & np.uint64(0x3333333333333333))
    v = (v + (v >> np.uint64(4))) & np.uint64(0x0F0F0F0F0F0F0F0F)
    return ((v * np.uint64(0x0101010101010101)) >> np.uint64(56)).astype(np.int64)
