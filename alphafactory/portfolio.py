"""From qualified alphas to target weights: prune, combine, allocate. Pure numpy.

Signals are factor values on (dates, assets) over the strategy's training window, the
last row being the decision date. Each is standardised per date (cross-sectional z-score,
missing values neutral) before anything else, so alphas on different scales mix.

* ``prune``: greedy by score, an alpha joins the pool only if its correlation with every
  member (pooled over dates and assets) is at most ``max_correlation``; at most ``size``.
* ``combination_weights``: ``equal``; ``ic_weighted`` (each alpha's IC over the window,
  divided by the sum of absolute ICs, so an alpha that ranks backwards is flipped); or
  ``ridge`` (a pooled ridge regression of the demeaned next-period returns on the signals,
  the penalty ``ridge_alpha`` times the signals' mean variance, so it is scale-free).
* ``target_weights``: ``long_short`` (demeaned signal, sum of absolute weights = gross),
  ``long_only`` (shorts truncated, weights sum to 1), or ``tilt`` (a benchmark, e.g.
  ``risk_parity``, moved by the long-short weights scaled so no asset moves more than
  ``tilt_limit``, negatives cut, renormalised to 1).
* ``in_sample_sharpe``: the Sharpe ratio of a position built that way at every row of a
  window (its combined signal there, the same kind and benchmark) and held for the
  period each row's ``forward`` return covers: the in-sample side of a like-for-like
  overfit.
"""

from __future__ import annotations

import warnings

import numpy as np

METHODS = ("equal", "ic_weighted", "ridge")
KINDS = ("long_short", "long_only", "tilt")


class PortfolioError(ValueError):
    """Inputs the allocation cannot use; the message names them."""


def standardize(values: np.ndarray) -> np.ndarray:
    """Cross-sectional z-score along the last axis; NaN and constant rows become 0."""
    values = np.asarray(values, dtype=np.float64)
    valid = np.isfinite(values)
    count = valid.sum(axis=-1, keepdims=True)
    filled = np.where(valid, values, 0.0)
    mean = filled.sum(axis=-1, keepdims=True) / np.maximum(count, 1)
    centred = np.where(valid, values - mean, 0.0)
    std = np.sqrt((centred**2).sum(axis=-1, keepdims=True) / np.maximum(count - 1, 1))
    with np.errstate(invalid="ignore", divide="ignore"):
        z = np.where(std > 1e-12, centred / std, 0.0)
    return np.where(count >= 2, z, 0.0)


def prune(
    scores: np.ndarray, signals: np.ndarray, *, max_correlation: float, size: int
) -> list[int]:
    """Indices of the kept alphas, best score first (``signals``: (k, dates, assets))."""
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
        if kept:
            corr = flat[kept] @ flat[index] / (norms[kept] * norms[index])
            if np.abs(corr).max() > max_correlation:
                continue
        kept.append(int(index))
        if len(kept) == size:
            break
    return kept


def combination_weights(
    signals: np.ndarray,
    forward_returns: np.ndarray,
    method: str,
    *,
    ridge_alpha: float = 1.0,
) -> np.ndarray:
    """One weight per alpha. ``forward_returns[t]`` is the return from date t to t+1 (NaN
    where unknown, e.g. the decision date itself: only earlier rows are used)."""
    k = signals.shape[0]
    if method not in METHODS:
        raise PortfolioError(f"combination method {method!r} is not one of {METHODS}")
    if k == 0:
        return np.zeros(0)
    if method == "equal":
        return np.full(k, 1.0 / k)
    z = standardize(signals)
    y = standardize(forward_returns)
    known = np.isfinite(forward_returns).sum(axis=1) >= 2
    if not known.any():
        return np.full(k, 1.0 / k)
    if method == "ic_weighted":
        ics = np.array([_mean_ic(z[j][known], y[known]) for j in range(k)])
        total = np.abs(ics).sum()
        return ics / total if total > 0 else np.full(k, 1.0 / k)
    x = z[:, known].reshape(k, -1).T  # (observations, k)
    target = y[known].reshape(-1)
    gram = x.T @ x
    penalty = ridge_alpha * np.trace(gram) / k
    beta = np.linalg.solve(gram + penalty * np.eye(k), x.T @ target)
    total = np.abs(beta).sum()
    return beta / total if total > 0 else np.full(k, 1.0 / k)


def _mean_ic(signal: np.ndarray, returns: np.ndarray) -> float:
    """Mean over dates of the Pearson correlation of standardised rows."""
    n = signal.shape[1]
    per_date = (signal * returns).sum(axis=1) / max(n - 1, 1)
    return float(per_date.mean())


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
    Assets with fewer than two returns in the window, or ``held`` False (cash, say, which
    a tilt can still move into), get weight 0; with none left, equal weights."""
    returns = np.asarray(returns, dtype=np.float64)
    n = returns.shape[1]
    count = np.isfinite(returns).sum(axis=0)
    filled = np.where(np.isfinite(returns), returns, 0.0)
    with np.errstate(invalid="ignore", divide="ignore"), warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # all-NaN columns: vol NaN
        vol = np.where(count >= 2, np.nanstd(returns, axis=0, ddof=1), np.nan)
    usable = np.isfinite(vol) & (vol > 0) & (True if held is None else np.asarray(held, bool))
    if not usable.any():
        return np.full(n, 1.0 / n)
    inverse = np.where(usable, 1.0 / np.where(usable, vol, 1.0), 0.0)
    if classes is None:
        return inverse / inverse.sum()
    classes = np.asarray(classes)
    weights = np.zeros(n)
    for value in np.unique(classes[usable]):
        members = usable & (classes == value)
        within = inverse * members / inverse[members].sum()
        mix = filled @ within
        mix_vol = float(np.std(mix, ddof=1)) if len(mix) >= 2 else 0.0
        weights += within / mix_vol if mix_vol > 0 else within / vol[members].mean()
    return weights / weights.sum()


def target_weights(
    signal: np.ndarray,
    kind: str,
    *,
    gross: float = 1.0,
    benchmark: np.ndarray | None = None,
    tilt_limit: float = 0.1,
) -> np.ndarray:
    """Weights per asset from the combined signal on the decision date."""
    if kind not in KINDS:
        raise PortfolioError(f"portfolio kind {kind!r} is not one of {KINDS}")
    signal = np.nan_to_num(np.asarray(signal, dtype=np.float64))
    centred = signal - signal.mean()
    spread = np.abs(centred).sum()
    long_short = centred / spread if spread > 0 else np.zeros_like(centred)
    if kind == "long_short":
        return gross * long_short
    if kind == "long_only":
        longs = np.maximum(long_short, 0.0)
        total = longs.sum()
        return longs / total if total > 0 else np.full(len(signal), 1.0 / len(signal))
    if benchmark is None or benchmark.shape != signal.shape:
        raise PortfolioError(f"a tilt needs a benchmark of {signal.shape[0]} weights")
    largest = np.abs(long_short).max()
    tilt = long_short * (tilt_limit / largest) if largest > 0 else 0.0
    tilted = np.maximum(benchmark + tilt, 0.0)
    return tilted / tilted.sum()


def in_sample_sharpe(
    signals: np.ndarray,
    weights: np.ndarray,
    forward: np.ndarray,
    kind: str,
    *,
    periods_per_year: float,
    gross: float = 1.0,
    benchmark: np.ndarray | None = None,
    tilt_limit: float = 0.1,
) -> float:
    """Annualised Sharpe ratio of the position ``target_weights`` builds at each row from
    the ``weights``-combined standardised ``signals`` (K, W, N) and earns ``forward`` (W,
    N) there (NaN: not known, e.g. the decision row; such rows are left out). With no
    signal (K = 0) the position is the benchmark (flat for a long-short book), as an
    allocation with no alpha holds. NaN with fewer than two rows held, or no spread."""
    known = np.isfinite(forward)
    combined = np.tensordot(np.asarray(weights, dtype=np.float64), standardize(signals), axes=1)
    held = []
    for row in np.flatnonzero(known.any(axis=1)):
        if len(signals):
            position = target_weights(
                combined[row], kind, gross=gross, benchmark=benchmark, tilt_limit=tilt_limit
            )
        elif kind == "long_short" or benchmark is None:
            position = np.zeros(forward.shape[1])
        else:
            position = benchmark
        held.append(float(np.sum(position[known[row]] * forward[row][known[row]])))
    returns = np.array(held)
    if len(returns) < 2 or returns.std(ddof=1) <= 1e-12 * abs(returns.mean()):
        return float("nan")
    return float(returns.mean() / returns.std(ddof=1) * np.sqrt(periods_per_year))
