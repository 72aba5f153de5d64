"""Statistics of return series, vectorised over a leading batch axis.

A batch is ``(F, T)`` with NaN on the dates a series is not defined; each series is first
packed (its defined values moved to the front in date order), so lags and compounding run
over the periods the series actually has, as if the gaps had been dropped.
"""

from __future__ import annotations

import numpy as np


def pack_series(series: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Move each row's non-NaN values to the front, keeping order.  (F, T) -> (F, T), (F,)"""
    missing = np.isnan(series)
    order = np.argsort(missing, axis=-1, kind="stable")
    return np.take_along_axis(series, order, axis=-1), (~missing).sum(axis=-1)


def newey_west_maxlags(n: np.ndarray | int) -> np.ndarray:
    """``floor(4 * (n / 100) ** (2 / 9))``, the usual Newey-West rule of thumb."""
    return np.floor(4.0 * (np.asarray(n, dtype=np.float64) / 100.0) ** (2.0 / 9.0)).astype(int)


def series_stats(series: np.ndarray, periods_per_year: float) -> dict[str, np.ndarray]:
    """Sharpe, CAGR, max drawdown and Newey-West t-statistic of each row of ``series``.

    Conventions (DESIGN.md contract 5), over the ``n`` defined periods of a row:
    ``sharpe = mean / std(ddof=1) * sqrt(ppy)``; ``annual_return = prod(1 + r) ** (ppy / n)
    - 1``; ``max_drawdown = max_t (1 - W_t / max_{s<=t} W_s)`` with ``W = cumprod(1 + r)``
    starting at 1; ``hac_tstat`` as statsmodels' ``OLS(r, ones).fit(cov_type="HAC",
    cov_kwds={"maxlags": L})`` with ``L = floor(4 (n/100)^(2/9))`` (Bartlett weights, no
    small-sample correction). Undefined values are NaN: Sharpe and t-statistic need two
    periods and a spread beyond rounding (std > 1e-12 |mean|), the others one period.
    """
    packed, n = pack_series(np.atleast_2d(np.asarray(series, dtype=np.float64)))
    valid = np.arange(packed.shape[-1]) < n[:, None]
    with np.errstate(divide="ignore", invalid="ignore"):
        mean = np.where(valid, packed, 0.0).sum(axis=-1) / n
        dev = np.where(valid, packed - mean[:, None], 0.0)
        var = np.einsum("ft,ft->f", dev, dev) / (n - 1)
        sharpe = mean / np.sqrt(var) * np.sqrt(periods_per_year)
        growth = np.where(valid, 1.0 + packed, 1.0)
        annual = np.prod(growth, axis=-1) ** (periods_per_year / n) - 1.0
        wealth = np.cumprod(growth, axis=-1)
        peak = np.maximum(np.maximum.accumulate(wealth, axis=-1), 1.0)
        drawdown = np.max(1.0 - wealth / peak, axis=-1, initial=0.0)
        maxlags = newey_west_maxlags(np.maximum(n, 1))
        tstat = mean * n / np.sqrt(_bartlett_long_run(dev, maxlags))
    few = (n < 2) | (var <= (1e-12 * mean) ** 2)  # no spread beyond rounding: NaN
    return {
        "sharpe": np.where(few, np.nan, sharpe),
        "annual_return": np.where(n < 1, np.nan, annual),
        "max_drawdown": np.where(n < 1, np.nan, drawdown),
        "hac_tstat": np.where(few, np.nan, tstat),
        "hac_maxlags": maxlags,
        "n": n,
    }


def _bartlett_long_run(dev: np.ndarray, maxlags: np.ndarray) -> np.ndarray:
    """``S = g_0 + 2 sum_{l=1..L} (1 - l/(L+1)) g_l`` with ``g_l = sum_t e_t e_{t-l}``.

    ``dev`` is zero past each row's length, so lagged products never reach padding.
    """
    total = np.einsum("ft,ft->f", dev, dev)
    for lag in range(1, int(maxlags.max(initial=0)) + 1):
        weight = np.where(lag <= maxlags, 1.0 - lag / (maxlags + 1.0), 0.0)
        total = total + 2.0 * weight * np.einsum("ft,ft->f", dev[:, lag:], dev[:, :-lag])
    return total
