"""The per-date statistics of a factor batch, compiled: IC, rank IC, quantiles, turnover.

One pass per factor and block of dates (in parallel over every core: factors when there
are many, blocks of dates when there are few), one date at a time, following
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
from numba import get_num_threads, njit, prange

from alphafactory.metrics._kernels import MIN_ASSETS, forward_returns
from alphafactory.ordering import order_and_ranks, rank_rows, workspace

_SEPARATE_BYTES = 4 * 2**20  # factors this big are scored one call each, not stacked


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
        self.forward = forward_returns(returns, horizon)
        # average ranks among each date's finite forward returns, compiled (a numpy sort of
        # the whole table cost more than scoring a factor)
        self.forward_ranks = np.empty(returns.shape)
        rank_rows(self.forward, self.forward_ranks, False, True)
        self.forward_counts = np.isfinite(self.forward).sum(axis=1)
        self.next_returns = np.full(returns.shape, np.nan)
        self.next_returns[:-1] = returns[1:]


def cross_sections(factors, tables: ReturnTables) -> CrossSections:
    """Per-date IC, rank IC and long-short statistics of a ``(F, T, N)`` factor stack, or
    of a sequence of ``(T, N)`` factors (scored one by one, each over every core, so that
    no stack of them has to be built)."""
    if not isinstance(factors, np.ndarray) and tables.forward.nbytes < _SEPARATE_BYTES:
        factors = np.stack(factors)  # small factors: one call for all beats one call each
    stacks = [factors] if isinstance(factors, np.ndarray) else [f[None] for f in factors]
    stacks = [np.ascontiguousarray(stack, dtype=np.float64) for stack in stacks]
    f, t = sum(len(stack) for stack in stacks), tables.forward.shape[0]
    q = tables.quantiles
    ic, rank_ic, ls, turnover = (np.full((f, t), np.nan) for _ in range(4))
    quantile_returns = np.full((f, t, q), np.nan)
    defined = np.zeros((f, t), dtype=np.bool_)
    start = 0
    for stack in stacks:
        k = len(stack)
        # enough (factor, date block) items for every thread: dates in parallel when the
        # factors are few, each factor in one block when they are many
        blocks = max(1, min(t, -(-4 * get_num_threads() // max(k, 1))))
        rows = slice(start, start + k)
        _sections(
            stack,
            (tables.forward, tables.forward_ranks, tables.forward_counts, tables.next_returns),
            q,
            tables.horizon == 1,
            blocks,
            (ic[rows], rank_ic[rows], ls[rows], quantile_returns[rows], turnover[rows]),
            defined[rows],
        )
        start += k
    return CrossSections(ic, rank_ic, ls, quantile_returns, turnover, defined)


@njit(parallel=True, cache=True, nogil=True)
def _sections(x, tables, quantiles, shared_mask, blocks, out, defined):
    # Helpers take whole arrays plus indices, never row views: a view of an array shared
    # by the threads bumps its reference count atomically, and at 20 assets a date that
    # contention costs more than the arithmetic.
    factors, dates, assets = x.shape
    per_block = -(-dates // blocks)
    forward, forward_ranks, forward_counts, next_returns = tables
    ic_tables = (forward, forward_ranks, forward_counts)
    # the long-short portfolio's assets: a forward return at horizon 1, else a next return
    portfolio_mask = forward if shared_mask else next_returns
    ic, rank_ic, ls, quantile_returns, turnover = out
    for item in prange(factors * blocks):
        f, first = item // blocks, (item % blocks) * per_block
        if first >= dates:
            continue
        # scratch, reused across dates: no allocation in the inner loop
        index, order = np.empty(assets, np.int64), np.empty(assets, np.int64)
        values, other = np.empty(assets), np.empty(assets)
        ranks, other_ranks = np.empty(assets), np.empty(assets)
        work = workspace(assets)
        scratch = (index, values, other, ranks, other_ranks, np.empty(assets, np.int64), work)
        weights = np.zeros((2, assets))  # this date's and the previous long-short date's
        # which weights row holds the previous long-short portfolio (-1: none yet)
        previous = _last_portfolio(x, f, first, portfolio_mask, quantiles, scratch, order, weights)
        for t in range(first, min(dates, first + per_block)):
            n = _valid(x, f, t, forward, index, values)
            order_and_ranks(values, n, order, ranks, work)
            if n >= MIN_ASSETS:
                _date_ic(f, t, n, ic_tables, index, scratch, ic, rank_ic)
            if not shared_mask:  # the portfolio's assets: a next-period return, not forward
                n = _valid(x, f, t, next_returns, index, values)
                order_and_ranks(values, n, order, ranks, work)
            if n < max(MIN_ASSETS, quantiles):
                continue
            current = 1 if previous == 0 else 0
            _long_short(index, order, n, t, next_returns, quantiles, f, quantile_returns)
            _weights(index, order, n, quantiles, weights, current)
            ls[f, t] = quantile_returns[f, t, quantiles - 1] - quantile_returns[f, t, 0]
            defined[f, t] = True
            if previous >= 0:
                turnover[f, t] = _half_distance(weights, current, previous)
            previous = current


@njit(cache=True)
def _last_portfolio(x, f, first, portfolio_mask, quantiles, scratch, order, weights):
    """Put the portfolio of the last long-short date before ``first`` in ``weights[0]``
    and return 0, or -1 when there is none: a block of dates starts from the portfolio
    the block before it ended with, so turnover does not depend on the blocks."""
    index, values, _other, ranks, _other_ranks, _other_order, work = scratch
    for t in range(first - 1, -1, -1):
        n = _valid(x, f, t, portfolio_mask, index, values)
        if n >= max(MIN_ASSETS, quantiles):
            order_and_ranks(values, n, order, ranks, work)
            _weights(index, order, n, quantiles, weights, 0)
            return 0
    return -1


@njit(cache=True)
def _date_ic(f, t, n, tables, index, scratch, ic, rank_ic):
    """Pearson and Spearman IC of factor ``f`` at date ``t`` over its ``n`` valid assets;
    both stay NaN when either side is constant. The forward returns' ranks come from the
    table when every asset with a forward return is valid (the common case), else from
    their own sort."""
    forward, forward_ranks, forward_counts = tables
    _index, values, other, ranks, other_ranks, other_order, work = scratch
    for k in range(n):
        other[k] = forward[t, index[k]]
    if n == forward_counts[t]:
        for k in range(n):
            other_ranks[k] = forward_ranks[t, index[k]]
    else:
        order_and_ranks(other, n, other_order, other_ranks, work)
    rank_value = _pearson(ranks, other_ranks, n)
    if not np.isnan(rank_value):
        ic[f, t], rank_ic[f, t] = _pearson(values, other, n), rank_value


@njit(cache=True)
def _valid(x, f, t, other, index, values):
    """Fill ``index``/``values`` with the assets (in asset order) where both ``x[f, t]``
    and ``other[t]`` are finite and the factor's values there; returns how many."""
    n = 0
    for j in range(x.shape[2]):
        value = x[f, t, j]
        if np.isfinite(value) and np.isfinite(other[t, j]):
            index[n], values[n] = j, value
            n += 1
    return n


@njit(cache=True)
def _pearson(x, y, n):
    """Correlation of ``x[:n]`` and ``y[:n]``; NaN when either side is constant. For
    ranks, small integers or halves, a constant side centres to exactly zero."""
    mean_x = mean_y = 0.0
    for k in range(n):
        mean_x += x[k]
        mean_y += y[k]
    mean_x, mean_y = mean_x / n, mean_y / n
    sxx = syy = sxy = 0.0
    for k in range(n):
        dx, dy = x[k] - mean_x, y[k] - mean_y
        sxx += dx * dx
        syy += dy * dy
        sxy += dx * dy
    if sxx == 0.0 or syy == 0.0:
        return np.nan
    return sxy / (np.sqrt(sxx) * np.sqrt(syy))


@njit(cache=True)
def _long_short(index, order, n, t, next_returns, quantiles, f, means):
    """Quantile mean next returns into ``means[f, t]``; the asset at 0-based sorted
    position p is in quantile ``floor(Q p / n)``, so quantile q holds positions
    ``ceil(q n / Q) ..``."""
    for quantile in range(quantiles):
        first, end = _quantile_bounds(quantile, n, quantiles)
        total = 0.0
        for position in range(first, end):
            total += next_returns[t, index[order[position]]]
        means[f, t, quantile] = total / (end - first)


@njit(cache=True)
def _weights(index, order, n, quantiles, weights, row):
    """The long-short portfolio into ``weights[row]``: -1/n on the bottom quantile,
    +1/n on the top one."""
    weights[row, :] = 0.0
    first, end = _quantile_bounds(0, n, quantiles)
    for position in range(first, end):
        weights[row, index[order[position]]] = -1.0 / (end - first)
    first, end = _quantile_bounds(quantiles - 1, n, quantiles)
    for position in range(first, end):
        weights[row, index[order[position]]] = 1.0 / (end - first)


@njit(cache=True, inline="always")
def _quantile_bounds(quantile, n, quantiles):
    """Sorted positions p with floor(Q p / n) == quantile: [ceil(q n / Q), ceil((q+1) n / Q))."""
    return -((-quantile * n) // quantiles), -((-(quantile + 1) * n) // quantiles)


@njit(cache=True)
def _half_distance(weights, row, other_row):
    total = 0.0
    for j in range(weights.shape[1]):
        total += abs(weights[row, j] - weights[other_row, j])
    return 0.5 * total
