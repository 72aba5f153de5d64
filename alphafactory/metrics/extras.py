"""Diagnostics beyond the contract: IC decay, correlation with reference factors and a pool.

Correlations between factors are per date, over the assets where both are finite (dates
with fewer than 3 such assets, or a constant side, are skipped), then averaged over dates.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from alphafactory.metrics._kernels import average_ranks, masked_pearson, stable_order
from alphafactory.metrics.crosssection import ForwardReturns, ic_series, mean_and_ir
from alphafactory.metrics.errors import MetricsError

_METHODS = ("pearson", "spearman")
_CHUNK_ELEMENTS = 1 << 21  # bounds each (K, T, N) temporary to 16 MB of float64


def ic_decay(
    factor: np.ndarray, returns: np.ndarray, horizons: Sequence[int]
) -> dict[int, tuple[float, float]]:
    """``{h: (ic, rank_ic)}``: mean IC against the ``h``-period forward return, per ``h``.

    Same dates and conventions as ``factor_metrics(..., horizon=h)``; the factor is sorted
    once for all horizons.
    """
    x = np.asarray(factor, dtype=np.float64)[None]
    r = np.asarray(returns, dtype=np.float64)
    if x.shape[1:] != r.shape or r.ndim != 2:
        raise MetricsError(f"factor {x.shape[1:]} and returns {r.shape} must both be (T, N)")
    bad = [h for h in horizons if isinstance(h, bool) or not isinstance(h, int) or h < 1]
    if bad:
        raise MetricsError(f"horizons must be integers >= 1, got {bad}")
    order = stable_order(x)
    out: dict[int, tuple[float, float]] = {}
    for h in horizons:
        ic, rank_ic = ic_series(x, order, ForwardReturns.build(r, h))
        out[h] = (float(mean_and_ir(ic)[0][0]), float(mean_and_ir(rank_ic)[0][0]))
    return out


def factor_correlations(
    factor: np.ndarray, references: np.ndarray, *, method: str = "pearson"
) -> np.ndarray:
    """Mean cross-sectional correlation of ``factor`` (T, N) with each of ``references``
    (K, T, N).  -> (K,), NaN for a reference that never shares 3 valid assets on a date."""
    x = np.asarray(factor, dtype=np.float64)
    refs = np.asarray(references, dtype=np.float64)
    if refs.ndim == 2:
        refs = refs[None]
    if x.ndim != 2 or refs.ndim != 3 or refs.shape[1:] != x.shape:
        raise MetricsError(
            f"factor must be (T, N) and references (K, T, N) alike; got {x.shape}, {refs.shape}"
        )
    if method not in _METHODS:
        raise MetricsError(f"unknown correlation method {method!r}; use one of {_METHODS}")
    step = max(1, _CHUNK_ELEMENTS // max(1, x.size))
    chunks = [_mean_correlation(x, refs[k : k + step], method) for k in range(0, len(refs), step)]
    return np.concatenate(chunks) if chunks else np.empty(0)


def _mean_correlation(x: np.ndarray, refs: np.ndarray, method: str) -> np.ndarray:
    mask = np.isfinite(x) & np.isfinite(refs)  # (K, T, N)
    if method == "spearman":
        ranked = average_ranks(x, stable_order(x), mask)
        corr = masked_pearson(ranked, average_ranks(refs, stable_order(refs), mask), mask)
    else:
        corr = masked_pearson(x, refs, mask)
    return mean_and_ir(corr)[0]


def max_abs_correlation(factor: np.ndarray, pool: np.ndarray, *, method: str = "pearson") -> float:
    """Largest ``|mean correlation|`` between ``factor`` and any member of ``pool``.

    0.0 for an empty pool (nothing to be redundant with); members whose correlation is
    undefined are ignored, and NaN is returned if no member's is defined.
    """
    corr = np.abs(factor_correlations(factor, pool, method=method))
    if corr.size == 0:
        return 0.0
    if np.isnan(corr).all():
        return float("nan")
    return float(np.nanmax(corr))
