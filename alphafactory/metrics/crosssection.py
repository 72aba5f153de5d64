"""Array-wise cross-sectional statistics: IC series, forward returns, IC summaries.

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
    average_ranks,
    forward_returns,
    masked_pearson,
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


def rank_ic(signal: np.ndarray, outcome: np.ndarray) -> float:
    """One date's Spearman correlation (average ranks) between ``signal`` and ``outcome``
    over the assets where both are known; NaN with fewer than 3 or either side constant.
    The per-decision IC of what was traded (``walkforward``, ``pool``), one row at a time."""
    from scipy.stats import rankdata

    known = np.isfinite(signal) & np.isfinite(outcome)
    if known.sum() < 3:
        return float("nan")
    a, b = signal[known], outcome[known]
    if np.ptp(a) == 0 or np.ptp(b) == 0:
        return float("nan")
    return float(np.corrcoef(rankdata(a), rankdata(b))[0, 1])
