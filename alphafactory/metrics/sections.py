"""The per-date statistics of a factor batch, compiled: IC, rank IC, quantiles, turnover.

One pass per factor (factors in parallel over every core), one date at a time, following
the conventions of :mod:`alphafactory.metrics.factor` exactly: a stable sort of the valid
assets gives both the average ranks of the rank IC and the quantiles of the long-short
portfolio (with horizon 1 the two share their valid assets, so one sort serves both), and
the portfolio held since the previous long-short date gives the turnover. Everything on
the returns side (forward returns and their ranks per date) is tabulated once per scorer
in :class:`ReturnTables`. The numpy kernels of :mod:`alphafactory.metrics.crosssection`
state the same conventions array-wise; tests check the two agree.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numba import njit, prange

from alphafactory.metrics._kernels import MIN_ASSETS, average_ranks
from alphafactory.metrics.crosssection import ForwardReturns


@dataclass(frozen=True)
class CrossSections:
    ic: np.ndarray  # (F, T) NaN on skipped dates
    rank_ic: np.ndarray  # (F, T)
    ls: np.ndarray  # (F, T) long-short return t -> t+1, NaN off long-short dates
    quantile_returns: np.ndarray  # (F, T, Q) mean next-period return per quantile
    turnover: np.ndarray  # (F, T) against the previous long-short date, NaN if none
    defined: np.ndarray  # (F, T) bool: long-short dates


class ReturnTables:
    """Everything on the returns side, per date, for one (returns, horizon, quantiles)."""

    def __init__(self, returns: np.ndarray, horizon: int, quantiles: int) -> None:
        self.quantiles = quantiles
        self.horizon = horizon
        forward = ForwardReturns.build(returns, horizon)
        self.forward = forward.values
        self.forward_ranks = average_ranks(forward.values, forward.order, forward.valid)
        self.forward_counts = forward.valid.sum(axis=1)
        self.next_returns = np.full(returns.shape, np.nan)
        self.next_returns[:-1] = returns[1:]


def cross_sections(x: np.ndarray, tables: ReturnTables) -> CrossSections:
    """Per-date IC, rank IC and long-short statistics of a ``(F, T, N)`` factor batch."""
    f, t, _n = x.shape
    q = tables.quantiles
    ic, rank_ic, ls, turnover = (np.full((f, t), np.nan) for _ in range(4))
    quantile_returns = np.full((f, t, q), np.nan)
    defined = np.zeros((f, t), dtype=np.bool_)
    _sections(
        np.ascontiguousarray(x, dtype=np.float64), tables.forward, tables.forward_ranks,
        tables.forward_counts, tables.next_returns, q, tables.horizon == 1,
        ic, rank_ic, ls, quantile_returns, turnover, defined,
    )  # fmt: skip
    return CrossSections(ic, rank_ic, ls, quantile_returns, turnover, defined)


@njit(parallel=True, cache=True, nogil=True)
def _sections(
    x, forward, forward_ranks, forward_counts, next_returns, quantiles, shared_mask,
    ic, rank_ic, ls, quantile_returns, turnover, defined,
):  # fmt: skip
    factors, dates, assets = x.shape
    tables = (forward, forward_ranks, forward_counts)
    for f in prange(factors):
        # scratch, reused across dates: no allocation in the inner loop
        index, order = np.empty(assets, np.int64), np.empty(assets, np.int64)
        values, other = np.empty(assets), np.empty(assets)
        ranks, other_ranks = np.empty(assets), np.empty(assets)
        weights, held = np.zeros(assets), np.zeros(assets)  # held: previous long-short date
        have_held = False
        for t in range(dates):
            row = x[f, t]
            n = _valid(row, forward[t], index, values)
            _stable_order(values, n, order)
            if n >= MIN_ASSETS:
                scratch = (values, other, ranks, other_ranks)
                ic[f, t], rank_ic[f, t] = _date_ic(index, order, n, t, tables, scratch)
            if not shared_mask:  # the portfolio's assets: a next-period return, not forward
                n = _valid(row, next_returns[t], index, values)
                _stable_order(values, n, order)
            if n < max(MIN_ASSETS, quantiles):
                continue
            means = quantile_returns[f, t]
            _long_short(index, order, n, next_returns[t], quantiles, means, weights)
            ls[f, t] = means[quantiles - 1] - means[0]
            defined[f, t] = True
            if have_held:
                turnover[f, t] = _half_distance(weights, held)
            held, weights = weights, held
            have_held = True


@njit(cache=True)
def _date_ic(index, order, n, t, tables, scratch):
    """Pearson and Spearman IC over the ``n`` valid assets; both NaN when either side is
    constant. The forward returns' ranks come from the table when every asset with a
    forward return is valid (the common case), else from their own sort."""
    forward, forward_ranks, forward_counts = tables
    values, other, ranks, other_ranks = scratch
    for k in range(n):
        other[k] = forward[t, index[k]]
    if n == forward_counts[t]:
        for k in range(n):
            other_ranks[k] = forward_ranks[t, index[k]]
    else:
        _average_ranks(other, n, _stable_order(other, n, np.empty(n, np.int64)), other_ranks)
    _average_ranks(values, n, order, ranks)
    rank_ic, constant = _pearson(ranks, other_ranks, n)
    if constant:
        return np.nan, np.nan
    return _pearson(values, other, n)[0], rank_ic


@njit(cache=True)
def _valid(row, other, index, values):
    """Fill ``index``/``values`` with the assets (in asset order) where both rows are
    finite and the row's values there; returns how many."""
    n = 0
    for j in range(row.size):
        if np.isfinite(row[j]) and np.isfinite(other[j]):
            index[n], values[n] = j, row[j]
            n += 1
    return n


@njit(cache=True)
def _stable_order(values, n, order):
    """Stable ascending order of ``values[:n]`` into ``order[:n]`` (ties by position):
    insertion sort for the short rows of macro panels, merge sort otherwise."""
    if n > 32:
        order[:n] = np.argsort(values[:n], kind="mergesort")
        return order
    for k in range(n):
        order[k] = k
        j = k
        while j > 0 and values[order[j - 1]] > values[k]:
            order[j] = order[j - 1]
            j -= 1
        order[j] = k
    return order


@njit(cache=True)
def _average_ranks(values, n, order, ranks):
    """1-based ranks of ``values[:n]`` into ``ranks``, runs of equal values averaged."""
    start = 0
    while start < n:
        end = start
        while end + 1 < n and values[order[end + 1]] == values[order[start]]:
            end += 1
        for k in range(start, end + 1):
            ranks[order[k]] = (start + end) / 2.0 + 1.0
        start = end + 1


@njit(cache=True)
def _pearson(x, y, n):
    """Correlation of ``x[:n]`` and ``y[:n]``, and whether either side is constant (then
    NaN). For ranks, small integers or halves, a constant side centres to exactly zero."""
    mean_x, mean_y = x[:n].mean(), y[:n].mean()
    sxx = syy = sxy = 0.0
    for k in range(n):
        dx, dy = x[k] - mean_x, y[k] - mean_y
        sxx += dx * dx
        syy += dy * dy
        sxy += dx * dy
    if sxx == 0.0 or syy == 0.0:
        return np.nan, True
    return sxy / (np.sqrt(sxx) * np.sqrt(syy)), False


@njit(cache=True)
def _long_short(index, order, n, next_returns, quantiles, means, weights):
    """Quantile mean next returns into ``means`` and the long-short weights into
    ``weights``; the asset at 0-based sorted position p is in quantile ``floor(Q p / n)``,
    so quantile q holds positions ``ceil(q n / Q) ..``."""
    for quantile in range(quantiles):
        first, end = _quantile_bounds(quantile, n, quantiles)
        total = 0.0
        for position in range(first, end):
            total += next_returns[index[order[position]]]
        means[quantile] = total / (end - first)
    weights[:] = 0.0
    first, end = _quantile_bounds(0, n, quantiles)
    for position in range(first, end):
        weights[index[order[position]]] = -1.0 / (end - first)
    first, end = _quantile_bounds(quantiles - 1, n, quantiles)
    for position in range(first, end):
        weights[index[order[position]]] = 1.0 / (end - first)


@njit(cache=True, inline="always")
def _quantile_bounds(quantile, n, quantiles):
    """Sorted positions p with floor(Q p / n) == quantile: [ceil(q n / Q), ceil((q+1) n / Q))."""
    return -((-quantile * n) // quantiles), -((-(quantile + 1) * n) // quantiles)


@njit(cache=True)
def _half_distance(weights, held):
    total = 0.0
    for j in range(weights.size):
        total += abs(weights[j] - held[j])
    return 0.5 * total
