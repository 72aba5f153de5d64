"""Out-of-sample performance of a sequence of allocations against a benchmark. Pure.

Each allocation decided at time ``D`` is held from the first panel date after ``D`` to the
next: with month-end returns, a mid-month decision earns the following month's return
and never the month it was made in, so no return known at ``D`` counts. It is held until
the next allocation takes over (or the returns end). Weights are applied as given
(a long-short book earns the weighted sum; a long-only book's weights sum to one).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from alphafactory.clock import visible_from
from alphafactory.costs import decision_costs


@dataclass(frozen=True)
class Performance:
    periods: int
    total_return: float
    annual_return: float
    annual_volatility: float
    sharpe: float
    max_drawdown: float

    def to_dict(self) -> dict:
        return {k: round(float(v), 6) for k, v in self.__dict__.items()}


def held_returns(
    dates: np.ndarray,
    assets: np.ndarray,
    returns: np.ndarray,
    decisions: pd.DatetimeIndex,
    weights: list[dict[str, float]],
    *,
    hold_last: int | None = None,
    costs: np.ndarray | None = None,
) -> pd.Series:
    """The portfolio's return per panel date while the allocations are held (dates before
    the first holding period are left out); the last allocation is held ``hold_last``
    dates (None: to the panel's end). ``decisions`` must be increasing, UTC. With
    ``costs`` (per asset, per unit of weight traded: ``alphafactory.costs``) the returns
    are net: each allocation's trades from the one before (the first's from nothing)
    are paid in the first period it is held (one whose period is empty passes its cost
    to the next)."""
    if len(decisions) != len(weights):
        raise ValueError(f"{len(decisions)} decision times for {len(weights)} weight sets")
    column = {str(a): k for k, a in enumerate(assets)}
    matrix = np.zeros((len(weights), len(assets)))
    for k, allocation in enumerate(weights):
        for asset, w in allocation.items():
            matrix[k, column[asset]] = w
    paid = np.zeros(len(weights)) if costs is None else decision_costs(matrix, costs)
    out, unpaid = {}, 0.0
    for k, (start, stop) in enumerate(held_periods(dates, decisions, hold_last=hold_last)):
        unpaid += paid[k]
        for t in range(start, stop):
            out[dates[t]] = float(np.nansum(returns[t] * matrix[k])) - unpaid
            unpaid = 0.0
    return pd.Series(out, dtype=np.float64).sort_index()


def held_periods(
    dates: np.ndarray, decisions: pd.DatetimeIndex, *, hold_last: int | None = None
) -> list[tuple[int, int]]:
    """Per decision, the rows ``[start, stop)`` of ``dates`` whose returns it earns (module
    doc); ``hold_last`` as in :func:`held_returns`."""
    closes = visible_from(dates)
    # a date's return is earned up to its close: it counts for a decision made before the
    # previous close only, so the first date held is the second close after the decision
    first_held = np.searchsorted(closes, decisions, side="right") + 1
    periods = []
    for k, start in enumerate(first_held):
        last = len(dates) if hold_last is None else start + hold_last
        stop = first_held[k + 1] if k + 1 < len(first_held) else last
        periods.append((int(start), int(min(stop, len(dates)))))
    return periods


def held_asset_returns(
    dates: np.ndarray,
    returns: np.ndarray,
    decisions: pd.DatetimeIndex,
    *,
    hold_last: int | None = None,
) -> np.ndarray:
    """(D, N): each asset's compounded return over each decision's held period (NaN where
    the period is empty or the asset has no return in it)."""
    out = np.full((len(decisions), returns.shape[1]), np.nan)
    for k, (start, stop) in enumerate(held_periods(dates, decisions, hold_last=hold_last)):
        if stop > start:
            block = returns[start:stop]
            known = np.isfinite(block).all(axis=0)
            out[k, known] = np.prod(1.0 + block[:, known], axis=0) - 1.0
    return out


def summarize(series: pd.Series, periods_per_year: int) -> Performance:
    values = series.to_numpy(np.float64)
    n = len(values)
    if n == 0:
        nan = float("nan")
        return Performance(0, nan, nan, nan, nan, nan)
    wealth = np.cumprod(1.0 + values)
    total = wealth[-1] - 1.0
    annual = wealth[-1] ** (periods_per_year / n) - 1.0
    volatility = values.std(ddof=1) * np.sqrt(periods_per_year) if n > 1 else float("nan")
    sharpe = (
        values.mean() / values.std(ddof=1) * np.sqrt(periods_per_year) if n > 1 else float("nan")
    )
    drawdown = float(np.max(1.0 - wealth / np.maximum.accumulate(np.r_[1.0, wealth])[1:]))
    return Performance(n, total, annual, volatility, sharpe, max(drawdown, 0.0))
