"""A slow, literal reading of DESIGN.md contract 5: one date at a time, standard tools only.

scipy for the per-date correlations, pandas for ranks, empyrical for Sharpe, CAGR and
drawdown, statsmodels for the HAC t-statistic. The vectorised metrics are checked against
this (and against alphalens on real data).
"""

from __future__ import annotations

import math
import warnings

import empyrical
import numpy as np
import pandas as pd
import statsmodels.api as sm
from scipy import stats


def forward_returns(returns: np.ndarray, horizon: int) -> np.ndarray:
    t = returns.shape[0]
    out = np.full(returns.shape, np.nan)
    for row in range(t - horizon):
        out[row] = np.prod(1.0 + returns[row + 1 : row + horizon + 1], axis=0) - 1.0
    return out


def ic_by_date(factor, returns, horizon):
    """{date index: (pearson, spearman)} over the dates the contract keeps."""
    fwd = forward_returns(returns, horizon)
    out = {}
    for t in range(factor.shape[0]):
        ok = np.isfinite(factor[t]) & np.isfinite(fwd[t])
        a, b = factor[t, ok], fwd[t, ok]
        if ok.sum() < 3 or np.all(a == a[0]) or np.all(b == b[0]):
            continue
        out[t] = (stats.pearsonr(a, b)[0], stats.spearmanr(a, b)[0])
    return out


def quantiles_of(values: np.ndarray, q: int) -> np.ndarray:
    """floor(Q * (rank - 1) / n) + 1 with pandas' ordinal ("first") ranks."""
    rank = pd.Series(values).rank(method="first").to_numpy()
    return (np.floor(q * (rank - 1) / len(values)) + 1).astype(int)


def long_short_by_date(factor, returns, q):
    """{date index: (ls return, weights (N,), quantile mean returns (Q,))}."""
    out = {}
    for t in range(factor.shape[0] - 1):
        ok = np.isfinite(factor[t]) & np.isfinite(returns[t + 1])
        if ok.sum() < max(3, q):
            continue
        codes = np.zeros(factor.shape[1], dtype=int)
        codes[ok] = quantiles_of(factor[t, ok], q)
        nxt = returns[t + 1]
        means = np.array([nxt[codes == k].mean() for k in range(1, q + 1)])
        weights = (codes == q) / (codes == q).sum() - (codes == 1) / (codes == 1).sum()
        out[t] = (means[-1] - means[0], weights, means)
    return out


def hac_tstat(series: np.ndarray) -> float:
    lags = int(math.floor(4 * (len(series) / 100) ** (2 / 9)))
    fit = sm.OLS(series, np.ones(len(series))).fit(cov_type="HAC", cov_kwds={"maxlags": lags})
    return float(fit.tvalues[0])


def ratio(series: np.ndarray) -> float:
    """mean / std(ddof=1); NaN without a spread beyond rounding, as the metrics define."""
    if len(series) < 2:
        return np.nan
    mean, std = series.mean(), series.std(ddof=1)
    return np.nan if std <= 1e-12 * abs(mean) else mean / std


def reference_metrics(factor, returns, *, horizon=1, quantiles=5, periods_per_year=12):
    ics = ic_by_date(factor, returns, horizon)
    ls = long_short_by_date(factor, returns, quantiles)
    series = np.array([v[0] for v in ls.values()])
    weights = [v[1] for v in ls.values()]
    pearson = np.array([v[0] for v in ics.values()])
    spearman = np.array([v[1] for v in ics.values()])
    turns = [0.5 * np.abs(b - a).sum() for a, b in zip(weights, weights[1:], strict=False)]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        return {
            "ic": pearson.mean() if len(pearson) else np.nan,
            "rank_ic": spearman.mean() if len(spearman) else np.nan,
            "icir": ratio(pearson),
            "rank_icir": ratio(spearman),
            "ls_sharpe": empyrical.sharpe_ratio(series, annualization=periods_per_year)
            if np.isfinite(ratio(series))
            else np.nan,
            "ls_annual_return": empyrical.annual_return(series, annualization=periods_per_year),
            "ls_max_drawdown": -empyrical.max_drawdown(series),
            "turnover": np.mean(turns) if turns else np.nan,
            "hac_tstat": hac_tstat(series) if np.isfinite(ratio(series)) else np.nan,
            "n_periods": len(series),
            "quantile_mean_returns": np.mean([v[2] for v in ls.values()], axis=0),
        }
