"""Vectorised cross-sectional kernels over ``(..., T, N)`` arrays; the last axis is assets.

Each kernel takes an explicit validity mask rather than relying on NaN propagation, so one
stable sort of a factor serves several masks (the IC horizon's and the one-period mask of
the long-short portfolio). Ranks come from sorting along the asset axis, never from a
Python loop over dates.
"""

from __future__ import annotations

import numpy as np

MIN_ASSETS = 3  # a date with fewer valid assets has no cross-sectional statistic


def forward_returns(returns: np.ndarray, horizon: int) -> np.ndarray:
    """``out[t] = prod_{k=1..h} (1 + r[t+k]) - 1``; NaN for the last ``h`` rows.  (T, N)"""
    t = returns.shape[0]
    out = np.full(returns.shape, np.nan)
    if horizon < t:
        growth = 1.0 + returns[1 : t - horizon + 1]
        for k in range(2, horizon + 1):
            growth = growth * (1.0 + returns[k : t - horizon + k])
        out[: t - horizon] = growth - 1.0
    return out


def stable_order(values: np.ndarray) -> np.ndarray:
    """Per row, the stable ascending order of ``values`` (NaN last; ties keep asset order)."""
    return np.argsort(values, axis=-1, kind="stable")


def flat_index(order: np.ndarray) -> np.ndarray:
    """Indices into the flattened array for a per-row ``order``: ``np.take`` with them is
    several times faster than ``take_along_axis``."""
    n = order.shape[-1]
    rows = np.arange(order.size // max(n, 1)).reshape(order.shape[:-1] + (1,))
    return order + rows * n


def average_ranks(values: np.ndarray, order: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """1-based ranks among the valid entries of each row, ties sharing their mean rank.

    ``values`` and ``order`` (its :func:`stable_order`) may have fewer leading dimensions
    than ``mask``: the returns' sort is computed once and shared by every factor.
    """
    sorted_values = np.take(values, flat_index(order))
    new_group = sorted_values[..., 1:] != sorted_values[..., :-1]  # NaN != NaN: no tie
    flat = flat_index(np.broadcast_to(order, mask.shape))
    sorted_mask = np.take(mask, flat)
    cum = np.cumsum(sorted_mask, axis=-1, dtype=np.int64)
    if new_group.all():
        ranks_sorted = cum.astype(np.float64)
    else:
        new_group = np.broadcast_to(new_group, mask.shape[:-1] + new_group.shape[-1:])
        ranks_sorted = _tie_averaged(cum, sorted_mask, new_group)
    ranks = np.empty(mask.shape)
    np.put(ranks, flat, ranks_sorted)
    return ranks


def _tie_averaged(cum: np.ndarray, sorted_mask: np.ndarray, new_group: np.ndarray) -> np.ndarray:
    """Mean of the valid ordinal ranks ``cum`` inside each run of equal sorted values."""
    n = cum.shape[-1]
    idx = np.arange(n)
    edge = np.ones(new_group.shape[:-1] + (1,), dtype=bool)
    is_start = np.concatenate([edge, new_group], axis=-1)
    is_end = np.concatenate([new_group, edge], axis=-1)
    start = np.maximum.accumulate(np.where(is_start, idx, 0), axis=-1)
    end = np.minimum.accumulate(np.where(is_end, idx, n - 1)[..., ::-1], axis=-1)[..., ::-1]
    before = np.take_along_axis(cum, start, axis=-1) - np.take_along_axis(sorted_mask, start, -1)
    return (before + 1 + np.take_along_axis(cum, end, axis=-1)) / 2.0


def masked_pearson(
    x: np.ndarray, y: np.ndarray, mask: np.ndarray, constant: np.ndarray | None = None
) -> np.ndarray:
    """Per-row Pearson correlation over the valid entries.  (..., N) -> (...)

    NaN where a row has fewer than :data:`MIN_ASSETS` valid entries or either side is
    constant over them (as scipy's ``pearsonr`` reports a constant input). ``constant``
    flags such rows when the caller already knows them (from ranks), sparing a scan.
    """
    n = mask.sum(axis=-1)
    with np.errstate(divide="ignore", invalid="ignore"):
        xc = _centred(x, mask, n)
        yc = _centred(y, mask, n)
        sxy = np.einsum("...i,...i->...", xc, yc)
        sxx = np.einsum("...i,...i->...", xc, xc)
        syy = np.einsum("...i,...i->...", yc, yc)
        corr = sxy / (np.sqrt(sxx) * np.sqrt(syy))
    if constant is None:
        constant = _constant(x, mask) | _constant(y, mask)
    return np.where((n < MIN_ASSETS) | constant, np.nan, corr)


def _centred(x: np.ndarray, mask: np.ndarray, n: np.ndarray) -> np.ndarray:
    mean = np.where(mask, x, 0.0).sum(axis=-1) / n
    return np.where(mask, x - mean[..., None], 0.0)


def _constant(x: np.ndarray, mask: np.ndarray) -> np.ndarray:
    low = np.where(mask, x, np.inf).min(axis=-1)
    high = np.where(mask, x, -np.inf).max(axis=-1)
    return low == high


def rank_pearson(rx: np.ndarray, ry: np.ndarray, mask: np.ndarray):
    """Spearman correlation from average ranks, and whether either side is constant.

    Ranks are small integers or halves, so a constant side centres to exactly zero.
    """
    n = mask.sum(axis=-1)
    with np.errstate(divide="ignore", invalid="ignore"):
        xc, yc = _centred(rx, mask, n), _centred(ry, mask, n)
        sxx = np.einsum("...i,...i->...", xc, xc)
        syy = np.einsum("...i,...i->...", yc, yc)
        corr = np.einsum("...i,...i->...", xc, yc) / (np.sqrt(sxx) * np.sqrt(syy))
    constant = (sxx == 0) | (syy == 0)
    return np.where((n < MIN_ASSETS) | constant, np.nan, corr), constant
