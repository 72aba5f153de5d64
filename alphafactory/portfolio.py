"""From qualified alphas to target weights: prune, combine, allocate. Pure numpy.

Signals are factor values on (dates, assets) over the strategy's training window, the
last row being the decision date. Each is standardised per date (cross-sectional z-score,
missing values neutral) before anything else, so alphas on different scales mix.

* ``prune``: greedy by score, an alpha joins the pool only if its correlation with every
  member (pooled over dates and assets) is at most ``max_correlation``; at most ``size``.
* ``combined_signal``: the weighted sum of the standardised signals on the decision row
  (the weights from a method of ``alphafactory.combinations``).
* ``positions``: the weights of the strategy's construction (its ``kind``, one of
  ``alphafactory.constructions``: ``long_short``, ``long_only``, ``tilt``...) at every
  row of a signal.
* ``in_sample_sharpe``: the Sharpe ratio of a position built that way at every row of a
  window (its combined signal there, the same kind and benchmark) and held for the
  period each row's ``forward`` return covers: the in-sample side of a like-for-like
  overfit.
"""

from __future__ import annotations

import numpy as np

from alphafactory.constructions import (
    Market,
    PortfolioError,
    Sizing,
    construction,
    standardize,
)
from alphafactory.risk import RISKLESS_VOL

DEFAULT_SIZING = Sizing()
NO_MARKET = Market()  # no benchmark, no risk model: enough for long-short and long-only


def prune(
    scores: np.ndarray,
    signals: np.ndarray,
    *,
    max_correlation: float,
    size: int,
    settled: np.ndarray | None = None,
) -> list[int]:
    """Indices of the kept alphas, best score first (``signals``: (k, dates, assets)).
    An alpha correlated beyond ``max_correlation`` with one kept before it is left out,
    unless it is ``settled`` (a boolean per alpha: the pool's members), which only the
    size can leave out: the correlation of two members drifts as the window moves, and a
    member evicted when it crosses the bar loses its record (alphafactory.pool)."""
    scores = np.asarray(scores, dtype=np.float64)
    if signals.shape[0] != len(scores):
        raise PortfolioError(f"{len(scores)} scores for {signals.shape[0]} signals")
    if len(scores) == 0:
        return []
    flat = standardize(signals).reshape(len(scores), -1)
    norms = np.linalg.norm(flat, axis=1)
    kept: list[int] = []
    for index in np.argsort(-np.nan_to_num(scores, nan=-np.inf), kind="stable"):
        if norms[index] == 0:
            continue  # no cross-section anywhere: nothing to allocate on
        if kept and not (settled is not None and settled[index]):
            corr = flat[kept] @ flat[index] / (norms[kept] * norms[index])
            if np.abs(corr).max() > max_correlation:
                continue
        kept.append(int(index))
        if len(kept) == size:
            break
    return kept


def combined_signal(signals: np.ndarray, weights: np.ndarray) -> np.ndarray:
    """The weighted sum of the standardised signals on the last (decision) date."""
    return np.tensordot(weights, standardize(signals[:, -1, :]), axes=1)


def risk_parity(
    returns: np.ndarray,
    classes: np.ndarray | None = None,
    *,
    held: np.ndarray | None = None,
) -> np.ndarray:
    """Inverse-volatility weights from a (periods, assets) window, summing to 1.

    With ``classes`` (an integer per asset), each class gets an equal share of risk: the
    assets of a class are mixed by inverse volatility, and the classes by the inverse
    volatility of those mixes, so a class is not weighted by how many assets it has.
    Assets with fewer than two returns in the window, riskless ones (``RISKLESS_VOL``),
    or ``held`` False (cash, say, which
    a tilt can still move into), get weight 0; with none left, equal weights."""
    returns = np.asarray(returns, dtype=np.float64)
    rows, n = returns.shape
    if not rows:
        return np.full(n, 1.0 / n)
    groups = None if classes is None else np.broadcast_to(np.asarray(classes), (rows, n))
    return risk_parity_rows(returns, rows, groups, held=held, first=rows - 1)[0]


def risk_parity_rows(
    returns: np.ndarray,
    window: int,
    classes: np.ndarray | None = None,
    *,
    held: np.ndarray | None = None,
    first: int = 0,
    block: int = 128,
) -> np.ndarray:
    """``risk_parity`` at every row from ``first`` on, at once: row ``t`` of the result is
    ``risk_parity(returns[max(0, t + 1 - window) : t + 1], classes[t], held=held)``
    (``classes``: (T, N), one row per date). Vectorised over rows, ``block`` rows at a
    time so a (rows, window, assets) stack stays small."""
    returns = np.asarray(returns, dtype=np.float64)
    rows, n = returns.shape
    padded = np.concatenate([np.full((window - 1, n), np.nan), returns])
    held = np.ones(n, bool) if held is None else np.asarray(held, bool)
    out = np.empty((rows - first, n))
    for start in range(first, rows, block):
        stop = min(start + block, rows)
        stack = np.lib.stride_tricks.sliding_window_view(
            padded[start : stop + window - 1], window, axis=0
        )
        stack = stack.transpose(0, 2, 1)  # (rows, window, assets)
        inside = np.arange(window) >= window - 1 - np.arange(start, stop)[:, None]  # (rows, window)
        groups = None if classes is None else np.asarray(classes)[start:stop]
        out[start - first : stop - first] = _risk_parity_block(stack, inside, groups, held)
    return out


def _risk_parity_block(stack, inside, classes, held) -> np.ndarray:
    """``risk_parity`` of each (window, assets) slice of ``stack``; ``inside``: which of a
    slice's rows are in its window (the first rows of the data have shorter ones)."""
    finite = np.isfinite(stack)
    count = finite.sum(axis=1)
    filled = np.where(finite, stack, 0.0)
    with np.errstate(invalid="ignore", divide="ignore"):
        mean = filled.sum(axis=1) / count
        squares = (np.where(finite, stack - mean[:, None, :], 0.0) ** 2).sum(axis=1)
        vol = np.where(count >= 2, np.sqrt(squares / (count - 1)), np.nan)
    usable = np.isfinite(vol) & (vol > RISKLESS_VOL) & held
    inverse = np.where(usable, 1.0 / np.where(usable, vol, 1.0), 0.0)
    if classes is None:
        weights = inverse
    else:
        weights = np.zeros_like(inverse)
        length = inside.sum(axis=1)
        for value in np.unique(classes[usable]):
            members = usable & (classes == value)
            total = (inverse * members).sum(axis=1, keepdims=True)
            within = np.divide(
                inverse * members, total, out=np.zeros_like(inverse), where=total > 0
            )
            mix = np.einsum("twn,tn->tw", filled, within)
            mix_mean = np.where(inside, mix, 0.0).sum(axis=1) / length
            spread = (np.where(inside, mix - mix_mean[:, None], 0.0) ** 2).sum(axis=1)
            with np.errstate(invalid="ignore", divide="ignore"):
                mix_vol = np.where(length >= 2, np.sqrt(spread / (length - 1)), 0.0)
                mean_vol = np.where(members, vol, 0.0).sum(axis=1) / members.sum(axis=1)
            scale = np.where(mix_vol > 0, mix_vol, mean_vol)
            weights += np.divide(within, scale[:, None], out=np.zeros_like(within), where=members)
    total = weights.sum(axis=1, keepdims=True)
    equal = np.full_like(weights, 1.0 / weights.shape[1])
    return np.where(
        usable.any(axis=1, keepdims=True), weights / np.where(total > 0, total, 1.0), equal
    )


def positions(
    signals: np.ndarray, kind: str, sizing: Sizing = DEFAULT_SIZING, market: Market = NO_MARKET
) -> np.ndarray:
    """The weights construction ``kind`` builds from every row of ``signals`` (..., N)
    at once: the assets are the last axis, ``market``'s benchmark broadcasts against
    the rows (a tilt's, per row or one for all, with a risk model per row or one for
    all). A missing signal value is neutral."""
    return construction(kind).positions(signals, sizing, market)


def in_sample_sharpe(
    signals: np.ndarray,
    weights: np.ndarray,
    forward: np.ndarray,
    kind: str,
    *,
    periods_per_year: float,
    sizing: Sizing = DEFAULT_SIZING,
    market: Market = NO_MARKET,
) -> float:
    """Annualised Sharpe ratio of the position ``positions`` builds at each row from the
    ``weights``-combined standardised ``signals`` (K, W, N) and earns ``forward`` (W, N)
    there (NaN: not known, e.g. the decision row; such rows are left out). With no
    signal (K = 0) the position is what the construction holds without alpha (flat for
    a long-short book). NaN with fewer than two rows held, or no spread."""
    known = np.isfinite(forward)
    if len(signals):
        combined = np.tensordot(np.asarray(weights, dtype=np.float64), standardize(signals), 1)
        held = positions(combined, kind, sizing, market)
    elif market.benchmark is None:
        held = np.zeros(forward.shape)
    else:
        held = np.broadcast_to(construction(kind).without_alpha(market.benchmark), forward.shape)
    returns = np.nansum(held * forward, axis=1)[known.any(axis=1)]
    if len(returns) < 2 or returns.std(ddof=1) <= 1e-12 * abs(returns.mean()):
        return float("nan")
    return float(returns.mean() / returns.std(ddof=1) * np.sqrt(periods_per_year))
