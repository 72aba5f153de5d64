"""The per-date statistics of a factor batch, with a fast path for the common rows.

A row (factor ``f``, date ``t``) takes the fast path when the factor is finite at every
asset that has a next-period return. Then the valid assets are the date's, so everything
on the returns side (standardised forward returns and their ranks, the quantile of each
sorted position) is tabulated once per date, and each factor needs one sort (stable only
when values tie) and a few gathers and dot products. Other rows (missing factor values,
dates whose forward-return and next-return assets differ) go through the general kernels
of :mod:`alphafactory.metrics.crosssection`, which define the conventions; tests check
that both paths agree.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from alphafactory.metrics._kernels import MIN_ASSETS, average_ranks
from alphafactory.metrics.crosssection import ForwardReturns, LongShort, ic_series, long_short
from alphafactory.metrics.turnover import MAX_BIT_ASSETS, turnover_by_date, turnover_by_legs


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
        t, n = returns.shape
        self.quantiles = quantiles
        self.forward = ForwardReturns.build(returns, horizon)
        self.next_returns = np.full((t, n), np.nan)
        self.next_returns[:-1] = returns[1:]
        self.next_valid = np.isfinite(self.next_returns)
        self.n_valid = self.next_valid.sum(axis=1)  # (T,)
        self.penalty = np.where(self.next_valid, 0.0, np.nan)  # NaN where no next return
        self.ls_dates = self.n_valid >= max(MIN_ASSETS, quantiles)
        self.row_offsets = (np.arange(t) * n)[:, None]
        self.ones = np.ones(n)
        self.pow2 = 2.0 ** np.arange(n) if n <= MAX_BIT_ASSETS else None
        self._build_ic_tables()
        self._build_quantile_tables()
        self.next_filled = np.where(self.next_valid, self.next_returns, 0.0)

    def _build_ic_tables(self) -> None:
        fwd, valid = self.forward.values, self.forward.valid
        self.z_fwd = _standardise(np.where(valid, fwd, 0.0), valid)
        ranks = average_ranks(fwd, self.forward.order, valid)
        self.z_fwd_ranks = _standardise(np.where(valid, ranks, 0.0), valid)
        constant = ~np.any(self.z_fwd_ranks != 0.0, axis=1)  # so is any subset of them
        self.ic_dates = (valid.sum(axis=1) >= MIN_ASSETS) & ~constant  # an IC may exist
        # Fast IC dates: the forward-return assets are the next-return assets.
        self.ic_fast_dates = self.ic_dates & (valid == self.next_valid).all(axis=1)
        positions = np.arange(valid.shape[1], dtype=np.float64) + 1.0
        in_prefix = positions[None, :] <= self.n_valid[:, None]
        self.z_positions = _standardise(np.where(in_prefix, positions, 0.0), in_prefix)
        self.in_prefix = in_prefix * 1.0  # (T, N): sorted positions holding valid assets

    def _build_quantile_tables(self) -> None:
        q, n = self.quantiles, self.n_valid[:, None]
        positions = np.arange(self.penalty.shape[1])[None, :]
        codes = np.where(positions < n, q * positions // np.maximum(n, 1) + 1, 0)  # (T, N)
        member = (codes[..., None] == np.arange(1, q + 1)) & self.ls_dates[:, None, None]
        counts = member.sum(axis=1)  # (T, Q)
        with np.errstate(divide="ignore", invalid="ignore"):
            self.share = np.where(member, 1.0 / counts[:, None, :], 0.0)  # (T, N, Q)
        self.top_flag, self.bottom_flag = member[..., -1] * 1.0, member[..., 0] * 1.0
        self.k_top, self.k_bottom = counts[:, -1], counts[:, 0]
        ls_shares = self.share[self.ls_dates]
        uniform = len(ls_shares) and (ls_shares == ls_shares[:1]).all()
        self.uniform_share = ls_shares[0] if uniform else None  # (N, Q): one matmul


def _standardise(values: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """Centre each row over ``mask`` and scale to unit norm; rows with no spread give 0."""
    n = np.maximum(mask.sum(axis=1, keepdims=True), 1)
    centred = np.where(mask, values - values.sum(axis=1, keepdims=True) / n, 0.0)
    norm = np.sqrt(np.einsum("tn,tn->t", centred, centred))[:, None]
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(norm > 0, centred / norm, 0.0)


def cross_sections(x: np.ndarray, tables: ReturnTables) -> CrossSections:
    """Per-date IC, rank IC and long-short statistics of a ``(F, T, N)`` factor batch."""
    if np.isinf(x).any():
        x = np.where(np.isinf(x), np.nan, x)
    f, t, n = x.shape
    kept = np.where(tables.next_valid, x, 0.0)
    row_sum = kept @ tables.ones
    complete = np.isfinite(row_sum)  # the factor is finite wherever a next return exists
    key = x + tables.penalty  # NaN where the factor or the next return is missing
    order = np.argsort(key, axis=-1)  # NaN last
    ranked = np.take(key, order + tables.row_offsets + (np.arange(f) * (t * n))[:, None, None])
    tied = ranked[..., 1:] == ranked[..., :-1]  # the sorted values, whatever the sort
    if tied.any():
        order = np.argsort(key, axis=-1, kind="stable")  # ties by order of appearance
        scores, constant = _tied_position_scores(tied, tables)
    else:
        scores, constant = tables.z_positions, np.zeros((f, t), dtype=bool)
    idx_t = order + tables.row_offsets
    ic, rank_ic = _fast_ic(kept, row_sum, np.take(tables.z_fwd_ranks, idx_t), scores, tables)
    next_sorted = np.take(tables.next_filled, idx_t)  # next returns in factor order
    if tables.uniform_share is not None:
        quantile_returns = next_sorted @ tables.uniform_share
    else:
        quantile_returns = np.matmul(next_sorted[..., None, :], tables.share)[..., 0, :]
    fast_ic = complete & tables.ic_fast_dates
    out = CrossSections(
        ic=np.where(fast_ic & ~constant, ic, np.nan),
        rank_ic=np.where(fast_ic & ~constant, rank_ic, np.nan),
        ls=quantile_returns[..., -1] - quantile_returns[..., 0],
        quantile_returns=quantile_returns,
        turnover=np.empty((f, t)),
        defined=complete & tables.ls_dates,
    )
    general = _general_rows(x, order, complete, tables, out)
    out.turnover[:] = _turnover(order, general, tables, out.defined)
    out.ls[~out.defined] = np.nan
    out.quantile_returns[~out.defined] = np.nan
    return out


def _tied_position_scores(tied: np.ndarray, tables: ReturnTables):
    """Standardised average rank of each sorted position when runs of values tie.

    ``tied[..., j]`` says sorted positions ``j`` and ``j+1`` hold equal values. Returns
    the scores ``(F, T, N)`` and which rows are constant (every valid value equal).
    """
    n = tied.shape[-1] + 1
    positions = np.arange(n)
    edge = np.ones(tied.shape[:-1] + (1,), dtype=bool)
    first = np.where(np.concatenate([edge, ~tied], axis=-1), positions, 0)
    last = np.where(np.concatenate([~tied, edge], axis=-1), positions, n - 1)
    start = np.maximum.accumulate(first, axis=-1)
    end = np.minimum.accumulate(last[..., ::-1], axis=-1)[..., ::-1]
    centred = (start + end) / 2.0 + 1.0 - (tables.n_valid[:, None] + 1.0) / 2.0
    centred *= tables.in_prefix
    norm = np.sqrt(np.einsum("ftn,ftn->ft", centred, centred))
    with np.errstate(divide="ignore", invalid="ignore"):
        return centred / norm[..., None], norm == 0


def _fast_ic(kept, row_sum, fwd_ranks, scores, tables: ReturnTables):
    """Pearson and Spearman IC of rows whose valid assets are the date's."""
    with np.errstate(divide="ignore", invalid="ignore"):
        centred = kept - (row_sum / tables.n_valid)[..., None]
        centred *= tables.next_valid
        spread = np.einsum("ftn,ftn->ft", centred, centred)
        ic = np.einsum("ftn,tn->ft", centred, tables.z_fwd) / np.sqrt(spread)
    spec = "ftn,tn->ft" if scores.ndim == 2 else "ftn,ftn->ft"
    return ic, np.einsum(spec, fwd_ranks, scores)


def _general_rows(x, order, complete, tables: ReturnTables, out: CrossSections):
    """Recompute, with the general kernels, the rows the fast path cannot take.

    ``order`` sorts ``x + penalty``: the same order of ``x`` among the assets with a next
    return, which hold every asset valid for either statistic (a forward return needs
    the next one), and stable where values tie, so the general kernels can reuse it.
    Returns the rows (index pair) and their long-short portfolios, for turnover.
    """
    candidates = np.nonzero(~(complete & tables.ic_fast_dates))
    n_finite = np.isfinite(x[candidates]).sum(axis=-1)
    dates = candidates[1]
    ic_rows = tables.ic_dates[dates] & (n_finite >= MIN_ASSETS)
    ls_rows = ~complete[candidates] & tables.ls_dates[dates] & (n_finite >= tables.quantiles)
    keep = ic_rows | ls_rows
    if not keep.any():
        return (np.empty(0, dtype=int), np.empty(0, dtype=int)), None
    rows, dates, ic_rows, ls_rows = (candidates[0][keep], dates[keep], ic_rows[keep],
                                     ls_rows[keep])  # fmt: skip
    xr, order = x[rows, dates], order[rows, dates]  # (K, N)
    fwd = tables.forward
    subset = ForwardReturns(fwd.values[dates], fwd.valid[dates], fwd.order[dates])
    ic, rank_ic = ic_series(xr, order, subset)
    out.ic[rows[ic_rows], dates[ic_rows]] = ic[ic_rows]
    out.rank_ic[rows[ic_rows], dates[ic_rows]] = rank_ic[ic_rows]
    ls = long_short(xr, order, tables.next_returns[dates], tables.quantiles)
    sel = ls_rows & ls.defined
    target = (rows[sel], dates[sel])
    out.ls[target] = ls.returns[sel]
    out.quantile_returns[target] = ls.quantile_returns[sel]
    out.defined[target] = True
    return target, LongShort(ls.returns[sel], ls.weights[sel], ls.defined[sel],
                             ls.quantile_returns[sel])  # fmt: skip


def _turnover(order, general, tables: ReturnTables, defined) -> np.ndarray:
    """Per-date turnover: fast rows' legs come from the sorted positions' tables."""
    target, ls = general
    if tables.pow2 is None:  # too many assets for bit sets: materialise the weights
        f, t, n = order.shape
        weights = np.empty(f * t * n)
        table = tables.top_flag / np.maximum(tables.k_top, 1)[:, None]
        table -= tables.bottom_flag / np.maximum(tables.k_bottom, 1)[:, None]
        np.put(weights, order + tables.row_offsets + (np.arange(f) * t * n)[:, None, None],
               table)  # fmt: skip
        weights = weights.reshape(f, t, n)
        if ls is not None:
            weights[target] = ls.weights
        return turnover_by_date(weights, defined)
    lead = np.take(tables.pow2, order)  # 2^asset at each sorted position
    top = np.einsum("ftn,tn->ft", lead, tables.top_flag).astype(np.int64)
    bottom = np.einsum("ftn,tn->ft", lead, tables.bottom_flag).astype(np.int64)
    k_top = np.broadcast_to(tables.k_top, defined.shape)
    k_bottom = np.broadcast_to(tables.k_bottom, defined.shape)
    if ls is not None:
        k_top, k_bottom = k_top.copy(), k_bottom.copy()
        top[target] = ((ls.weights > 0) @ tables.pow2).astype(np.int64)
        bottom[target] = ((ls.weights < 0) @ tables.pow2).astype(np.int64)
        k_top[target] = (ls.weights > 0).sum(axis=-1)
        k_bottom[target] = (ls.weights < 0).sum(axis=-1)
    return turnover_by_legs(top, bottom, k_top, k_bottom, defined)
