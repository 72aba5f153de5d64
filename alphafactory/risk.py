"""Risk models for portfolio construction: a Ledoit-Wolf-shrunk covariance kept in factor
form, per decision or per row of a window, and forecasts from a standardised signal.

:func:`shrunk_risk`: the sample correlation of a window's returns shrunk toward the
identity by the Ledoit-Wolf intensity (scikit-learn's estimate on the standardised
returns), scaled back by each asset's volatility. With a window of ``K`` rows that is
``K`` loadings plus a diagonal, exactly (:class:`RiskModel`), so an optimisation over
thousands of assets stays small and the covariance's inverse is a ``K x K`` solve (the
Woodbury identity, ``alphafactory.optimiser``). :func:`risk_rows` gives the model a
decision at each row of a panel would use: the same windows as the risk-parity benchmark
(``portfolio.risk_parity_rows``). :func:`forecasts` turns a standardised signal into
expected returns by Grinold's rule (information coefficient x volatility x score).
Pure numpy (scikit-learn's Ledoit-Wolf intensity, computed for many windows at once).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

# below this volatility an asset is riskless (cash whose constant return rounds to a
# volatility of 1e-19): inverse volatility would give it all the risk parity
RISKLESS_VOL = 1e-10


@dataclass(frozen=True)
class RiskModel:
    """Covariance ``loadings' loadings + diag(specific)`` of N assets."""

    loadings: np.ndarray  # (K, N)
    specific: np.ndarray  # (N,)
    usable: np.ndarray  # (N,) bool: assets with at least two returns in the window

    def covariance(self) -> np.ndarray:
        return self.loadings.T @ self.loadings + np.diag(self.specific)

    def volatility(self) -> np.ndarray:
        return np.sqrt((self.loadings**2).sum(axis=0) + self.specific)

    def variance(self, active: np.ndarray) -> np.ndarray:
        """``a' S a`` of each row of ``active`` (..., N)."""
        factor = np.asarray(active) @ self.loadings.T
        return (factor**2).sum(axis=-1) + (np.asarray(active) ** 2 * self.specific).sum(axis=-1)


def shrunk_risk(returns: np.ndarray) -> RiskModel:
    """The Ledoit-Wolf-shrunk covariance of a (T, N) window of returns (missing returns:
    the asset's mean; an asset with fewer than two is not usable and has no risk)."""
    returns = np.asarray(returns, dtype=np.float64)
    return risk_rows(returns, max(len(returns), 1), max(len(returns) - 1, 0))[0]


def forecasts(signal: np.ndarray, risk: RiskModel, information_coefficient: float) -> np.ndarray:
    """Expected active return per asset and period from a standardised ``signal``
    (Grinold: IC x volatility x score); missing scores forecast nothing."""
    score = np.nan_to_num(np.asarray(signal, dtype=np.float64))
    return information_coefficient * risk.volatility() * score


def risk_rows(returns: np.ndarray, window: int, first: int = 0) -> list[RiskModel]:
    """The :func:`shrunk_risk` of the ``window`` returns up to each row from ``first`` on
    (row ``t``: ``returns[max(0, t + 1 - window) : t + 1]``), as the benchmark's; every
    row's shrinkage computed at once, blocks of rows at a time."""
    returns = np.asarray(returns, dtype=np.float64)
    rows, n = returns.shape
    padded = np.concatenate([np.full((window - 1, n), np.nan), returns])
    block = max(1, (1 << 24) // max(window * n, 1))
    out: list[RiskModel] = []
    for start in range(first, rows, block):
        stop = min(start + block, rows)
        stack = np.lib.stride_tricks.sliding_window_view(
            padded[start : stop + window - 1], window, axis=0
        ).transpose(0, 2, 1)  # (rows, window, assets)
        lengths = np.minimum(np.arange(start, stop) + 1, window)
        out.extend(_shrunk_block(stack, lengths))
    return out


def _shrunk_block(stack: np.ndarray, lengths: np.ndarray) -> list[RiskModel]:
    """:func:`shrunk_risk` of each (window, N) slice of ``stack`` whose last ``lengths``
    rows are its window: scikit-learn's Ledoit-Wolf intensity (``ledoit_wolf_shrinkage``
    on the standardised returns, assumed centred), from each window's row Gram matrix."""
    window = stack.shape[1]
    inside = (np.arange(window) >= window - lengths[:, None])[:, :, None]
    finite = np.isfinite(stack) & inside
    count = finite.sum(axis=1)
    mean = np.where(finite, stack, 0.0).sum(axis=1) / np.maximum(count, 1)
    centred = np.where(finite, stack - mean[:, None, :], 0.0)
    vol = np.sqrt((centred**2).sum(axis=1) / np.maximum(count - 1, 1))
    usable = count >= 2
    risky = usable & (vol > RISKLESS_VOL)
    scores = np.divide(centred, vol[:, None, :], out=np.zeros_like(centred), where=risky[:, None])
    gram = np.einsum("rkn,rjn->rkj", scores, scores)  # (rows, window, window)
    samples, features = lengths.astype(np.float64), risky.sum(axis=1).astype(np.float64)
    trace = np.einsum("rkk->r", gram)
    mu = trace / samples / np.maximum(features, 1)
    delta_ = (gram**2).sum(axis=(1, 2)) / samples**2
    beta_ = (np.einsum("rkk->rk", gram) ** 2).sum(axis=1)
    beta = (beta_ / samples - delta_) / (np.maximum(features, 1) * samples)
    delta = (delta_ - 2.0 * mu * trace / samples + features * mu**2) / np.maximum(features, 1)
    beta = np.minimum(beta, delta)
    with np.errstate(invalid="ignore", divide="ignore"):
        shrinkage = np.where((beta == 0) | (features <= 1), 0.0, beta / delta)
    models = []
    for r, length in enumerate(lengths):
        if length < 2 or not risky[r].any():
            models.append(
                RiskModel(np.zeros((1, stack.shape[2])), np.zeros(stack.shape[2]), usable[r])
            )
            continue
        held = np.where(risky[r], centred[r, window - length :], 0.0)
        loadings = np.sqrt((1.0 - shrinkage[r]) / length) * held
        models.append(
            RiskModel(loadings, shrinkage[r] * np.where(risky[r], vol[r] ** 2, 0.0), usable[r])
        )
    return models
