"""The walk-forward's numbers: one variant's out-of-sample record against its benchmark,
how long alphas stay in a pool, and the pool-size question. Pure.

Conventions (per variant, over the months its allocations were held; ``ppy`` periods a
year): ``cagr`` = prod(1 + r)^(ppy / n) - 1; ``volatility`` = std(r, ddof=1) sqrt(ppy);
``sharpe`` = mean / std sqrt(ppy); ``max_drawdown`` as contract 5; ``turnover`` = mean
over rebalances after the first of 0.5 sum_i |w_i - w_i,previous|; the excess return
e = r - r_benchmark: ``excess_return`` its annualised mean (mean(e) ppy),
``information_ratio`` mean(e) / std(e) sqrt(ppy), ``excess_hac_tstat`` its Newey-West
t-statistic (``metrics.series``); ``in_sample_sharpe``: the mean, over rebalances, of the
Sharpe ratio each allocation's own position had over its training window (the same
construction rebuilt at every row and held as out of sample, ``portfolio.
in_sample_sharpe``), so in-sample minus out-of-sample Sharpe measures the overfit like for
like;
``sharpe_over_cash``: mean(r - r_cash) / std(r - r_cash) sqrt(ppy) where the universe names
its cash asset (``[universe] cash``), whose return is the risk-free rate (null otherwise).

How sure: ``sharpe_ci`` and ``information_ratio_ci`` are 90% percentile intervals from a
stationary block bootstrap (``arch``; mean block length ``ppy / 4`` periods, so a quarter
of a year's dependence travels together; 2,000 resamples, a fixed seed), and
``min_detectable_ir`` is the smallest information ratio the run could have told from zero:
``(z_0.975 + z_0.80) / sqrt(years)``, a two-sided 5% test with 80% power.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from itertools import pairwise

import numpy as np
import pandas as pd

from alphafactory.metrics.crosssection import rank_ic
from alphafactory.metrics.series import series_stats


def turnover(weights: Sequence[Mapping[str, float]]) -> float:
    """Mean half L1 change between consecutive allocations (NaN with fewer than two)."""
    if len(weights) < 2:
        return float("nan")
    assets = sorted({a for w in weights for a in w})
    matrix = np.array([[w.get(a, 0.0) for a in assets] for w in weights])
    return float(np.mean(0.5 * np.abs(np.diff(matrix, axis=0)).sum(axis=1)))


def variant_record(
    returns: pd.Series,
    benchmark: pd.Series,
    weights: Sequence[Mapping[str, float]],
    *,
    periods_per_year: int,
    in_sample_sharpe: float = float("nan"),
    cash: pd.Series | None = None,
) -> dict[str, float | int | None]:
    """The report's numbers for one variant (module doc); ``benchmark`` and ``cash`` are
    aligned to ``returns``' dates (a date missing from them counts as a zero return)."""
    r = returns.to_numpy(np.float64)
    excess = r - benchmark.reindex(returns.index).fillna(0.0).to_numpy(np.float64)
    rows = [r, excess]
    if cash is not None:
        rows.append(r - cash.reindex(returns.index).fillna(0.0).to_numpy(np.float64))
    stats = series_stats(np.vstack(rows), periods_per_year)
    n = len(r)
    volatility = float(r.std(ddof=1) * np.sqrt(periods_per_year)) if n > 1 else float("nan")
    return {
        "n_rebalances": len(weights),
        "n_periods": n,
        "cagr": float(stats["annual_return"][0]),
        "volatility": volatility,
        "sharpe": float(stats["sharpe"][0]),
        "sharpe_over_cash": float(stats["sharpe"][2]) if cash is not None else None,
        "max_drawdown": float(stats["max_drawdown"][0]),
        "turnover": turnover(weights),
        "excess_return": float(excess.mean() * periods_per_year) if n else float("nan"),
        "information_ratio": float(stats["sharpe"][1]),
        "excess_hac_tstat": float(stats["hac_tstat"][1]),
        "in_sample_sharpe": float(in_sample_sharpe),
        **bootstrap_intervals(r, excess, periods_per_year),
        "min_detectable_ir": min_detectable_ir(n, periods_per_year),
    }


BOOTSTRAP_REPS = 2000


def bootstrap_intervals(
    returns: np.ndarray, excess: np.ndarray, periods_per_year: float, *, seed: int = 0
) -> dict[str, list[float] | None]:
    """90% stationary-bootstrap intervals of the Sharpe ratio and the information ratio
    (module doc); None under 24 periods, too few to resample from."""
    if len(returns) < 24:
        return {"sharpe_ci": None, "information_ratio_ci": None}
    from arch.bootstrap import StationaryBootstrap

    def ratios(r, e):
        with np.errstate(invalid="ignore", divide="ignore"):
            scale = np.sqrt(periods_per_year)
            return np.array([r.mean() / r.std(ddof=1) * scale, e.mean() / e.std(ddof=1) * scale])

    block = max(2.0, periods_per_year / 4)
    sampler = StationaryBootstrap(block, returns, excess, seed=np.random.default_rng(seed))
    low, high = sampler.conf_int(ratios, reps=BOOTSTRAP_REPS, method="percentile", size=0.9)
    return {
        "sharpe_ci": [float(low[0]), float(high[0])],
        "information_ratio_ci": [float(low[1]), float(high[1])],
    }


def min_detectable_ir(periods: int, periods_per_year: float) -> float:
    """The smallest annualised information ratio a t-test over ``periods`` tells from zero
    (two-sided 5%, power 80%)."""
    from scipy.stats import norm

    years = periods / periods_per_year
    if years <= 0:
        return float("nan")
    return float((norm.ppf(0.975) + norm.ppf(0.80)) / np.sqrt(years))


def out_of_sample_ic(signals: np.ndarray, held: np.ndarray) -> dict[str, float | int]:
    """``oos_ic``: the mean over decisions of the cross-sectional rank IC (Spearman,
    average ranks) between the combined signal at a decision and each asset's return over
    the period it was held; ``oos_ic_t``: that series' Newey-West t-statistic (as
    ``excess_hac_tstat``); ``oos_ic_decisions``: the decisions with an IC (a signal on at
    least 3 assets with a held return, neither side constant). ``signals`` and ``held``:
    (D, N), NaN where none."""
    each = [rank_ic(signal, outcome) for signal, outcome in zip(signals, held, strict=True)]
    ics = [ic for ic in each if np.isfinite(ic)]
    if not ics:
        return {"oos_ic": float("nan"), "oos_ic_t": float("nan"), "oos_ic_decisions": 0}
    stats = series_stats(np.array([ics]), 1)
    return {
        "oos_ic": float(np.mean(ics)),
        "oos_ic_t": float(stats["hac_tstat"][0]),
        "oos_ic_decisions": len(ics),
    }


def alpha_survival(pools: Sequence[Sequence[str]]) -> dict[str, float]:
    """How many consecutive rebalances an alpha stays in the pool once it enters: the
    mean and median run length, the share still there after 12 rebalances, and runs."""
    runs: list[int] = []
    open_runs: dict[str, int] = {}
    for members in pools:
        current = set(members)
        for formula in list(open_runs):
            if formula not in current:
                runs.append(open_runs.pop(formula))
        for formula in current:
            open_runs[formula] = open_runs.get(formula, 0) + 1
    runs.extend(open_runs.values())
    if not runs:
        return {"runs": 0, "mean": float("nan"), "median": float("nan"), "share_12": float("nan")}
    lengths = np.array(runs)
    return {
        "runs": len(runs),
        "mean": float(lengths.mean()),
        "median": float(np.median(lengths)),
        "share_12": float((lengths >= 12).mean()),
    }


def pool_size_answer(records: Mapping[str, Mapping[str, float]]) -> dict:
    """Do more alphas beat fewer out of sample, and overfit less? From the ``poolN``
    records present: their out-of-sample Sharpe, in-sample Sharpe and the gap."""
    sizes = sorted(
        (int(name.removeprefix("pool")), name)
        for name in records
        if name.startswith("pool") and name.removeprefix("pool").isdigit()
    )
    rows = [
        {
            "variant": name,
            "pool_size": size,
            "sharpe": records[name]["sharpe"],
            "cagr": records[name]["cagr"],
            "in_sample_sharpe": records[name]["in_sample_sharpe"],
            "overfit": records[name]["in_sample_sharpe"] - records[name]["sharpe"],
        }
        for size, name in sizes
    ]
    answer: dict = {"rows": rows}
    if len(rows) >= 2:
        small, large = rows[0], rows[-1]
        answer.update(
            largest_beats_smallest=bool(large["sharpe"] > small["sharpe"]),
            sharpe_gain=large["sharpe"] - small["sharpe"],
            overfit_reduction=small["overfit"] - large["overfit"],
            monotone=bool(all(a["sharpe"] <= b["sharpe"] for a, b in pairwise(rows))),
        )
    return answer
