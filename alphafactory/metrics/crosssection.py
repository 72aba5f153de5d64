"""Per-date cross-sectional statistics of a batch of factors: IC series, quantiles, long-short.

Shapes: factors ``(F, T, N)``; returns-derived arrays ``(T, N)``, shared by the batch.
Validity (all documented in :mod:`alphafactory.metrics.factor`):
- IC at horizon ``h``: asset valid at ``t`` when the factor and the ``h``-period forward
  return are finite; the date counts when it has >= 3 valid assets and neither side is
  constant across them.
- Quantiles and long-short: asset valid at ``t`` when the factor and the next period's
  return ``r[t+1]`` are finite; the date is a long-short date when it has at least
  ``max(3, Q)`` valid assets (so the top and bottom quantiles are both non-empty).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from alphafactory.metrics._kernels import (
    MIN_ASSETS,
    average_ranks,
    forward_returns,
    masked_pearson,
    ordinal_ranks,
    rank_pearson,
    stable_order,
)


@dataclass(frozen=True)
class ForwardReturns:
    """A horizon's forward returns with what every factor's pass reuses: mask and sort."""

    values: np.ndarray  # (T, N), NaN where undefined
    valid: np.ndarray  # (T, N) bool
    order: np.ndarray  # (T, N) stable ascending order per date

    @classmethod
    def build(cls, returns: np.ndarray, horizon: int) -> ForwardReturns:
        values = forward_returns(returns, horizon)
        return cls(values=values, valid=np.isfinite(values), order=stable_order(values))


def ic_series(
    factors: np.ndarray, order: np.ndarray, forward: ForwardReturns
) -> tuple[np.ndarray, np.ndarray]:
    """Per-date Pearson and Spearman IC, NaN on skipped dates.  (F, T, N) -> 2 x (F, T)

    ``order`` is the stable sort of ``factors`` along assets.
    """
    mask = np.isfinite(factors) & forward.valid
    factor_ranks = average_ranks(factors, order, mask)
    return_ranks = average_ranks(forward.values, forward.order, mask)
    rank_ic, constant = rank_pearson(factor_ranks, return_ranks, mask)
    return masked_pearson(factors, forward.values, mask, constant), rank_ic


@dataclass(frozen=True)
class LongShort:
    """The one-period quantile portfolios of a batch of factors."""

    returns: np.ndarray  # (F, T) long-short return held t -> t+1; NaN off long-short dates
    weights: np.ndarray  # (F, T, N) +1/n_top long, -1/n_bottom short, 0 elsewhere
    defined: np.ndarray  # (F, T) bool: the long-short dates
    quantile_returns: np.ndarray  # (F, T, Q) mean next-period return per quantile


def quantile_codes(order: np.ndarray, mask: np.ndarray, quantiles: int) -> np.ndarray:
    """``floor(Q * (rank - 1) / n) + 1`` with ``rank`` the 1-based ordinal rank among
    the valid assets of the date (ties by order of appearance); 0 where invalid."""
    rank, n = ordinal_ranks(order, mask)
    codes = (quantiles * (rank - 1)) // np.maximum(n, 1)[..., None] + 1
    return np.where(mask, codes, 0)


def long_short(
    factors: np.ndarray, order: np.ndarray, next_returns: np.ndarray, quantiles: int
) -> LongShort:
    """Equal-weight long the top quantile, short the bottom, formed at ``t``, held to ``t+1``.

    ``next_returns[t] = r[t+1]`` (NaN on the last date); it may have fewer leading
    dimensions than ``factors``.
    """
    mask = np.isfinite(factors) & np.isfinite(next_returns)
    codes = quantile_codes(order, mask, quantiles)
    defined = mask.sum(axis=-1) >= max(MIN_ASSETS, quantiles)
    filled = np.broadcast_to(np.where(np.isfinite(next_returns), next_returns, 0.0), mask.shape)
    rows = codes.size // codes.shape[-1]
    # one bincount per statistic: bin (row, quantile), invalid assets in a last spare bin
    bins = np.arange(rows).reshape(codes.shape[:-1] + (1,)) * quantiles + codes - 1
    bins = np.where(codes > 0, bins, rows * quantiles).ravel()
    size = rows * quantiles + 1
    sums = np.bincount(bins, weights=filled.ravel(), minlength=size)[:-1]
    counts = np.bincount(bins, minlength=size)[:-1]
    shape = codes.shape[:-1] + (quantiles,)
    sums, counts = sums.reshape(shape), counts.reshape(shape)  # (..., Q)
    with np.errstate(divide="ignore", invalid="ignore"):
        means = np.where(defined[..., None], sums / counts, np.nan)
        top = np.where(codes == quantiles, 1.0 / counts[..., -1:], 0.0)
        bottom = np.where(codes == 1, 1.0 / counts[..., :1], 0.0)
    weights = np.where(defined[..., None], top - bottom, 0.0)
    return LongShort(
        returns=means[..., -1] - means[..., 0],
        weights=weights,
        defined=defined,
        quantile_returns=means,
    )


def mean_and_ir(series: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Mean over the non-NaN dates, mean / std (ddof=1), and the count.  (F, T) -> 3 x (F,)

    The ratio is NaN with fewer than 2 dates or a spread that is zero up to rounding
    (std <= 1e-12 |mean|), where it would only measure rounding noise.
    """
    valid = ~np.isnan(series)
    n = valid.sum(axis=-1)
    with np.errstate(divide="ignore", invalid="ignore"):
        mean = np.where(valid, series, 0.0).sum(axis=-1) / n
        dev = np.where(valid, series - mean[:, None], 0.0)
        std = np.sqrt(np.einsum("ft,ft->f", dev, dev) / (n - 1))
        ir = mean / std
    return mean, np.where((n < 2) | (std <= 1e-12 * np.abs(mean)), np.nan, ir), n
