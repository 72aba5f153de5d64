"""A pool's alphas combined by a learned model instead of fixed weights.

``combination.method = "lightgbm"``: the pool's signals over the training window are the
features (each standardised across assets per date, :mod:`.features`) and the next
period's standardised return the label; the model is chosen and fitted as of the decision
row by the same purged cross-validation as an ML alpha's (:func:`.fit.fit_at`: only the
returns known at the decision), and its prediction on the decision row is the combined
signal. A tree model can use an alpha only in some regimes, or two only together, which
fixed weights cannot express. The weights reported per alpha are its share of the
model's importance (gain): how much the model used it, not a signed linear weight.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from alphafactory.ml.features import feature_cube, labels
from alphafactory.ml.fit import MLSpec, fit_at
from alphafactory.ml.models import MODEL_NAMES


@dataclass(frozen=True)
class LearnedCombination:
    signal: np.ndarray  # (N,) on the decision row
    weights: np.ndarray  # (K,) each alpha's share of the model's importance


def learned_combination(
    signals: np.ndarray, returns: np.ndarray, method: str, *, seed: int = 0, folds: int = 3
) -> LearnedCombination:
    """``signals`` (K, T, N) over the window, the last row the decision; ``returns`` (T, N)
    of the same rows (row ``t``: the return over the period ending at ``t``); ``method``:
    the model (``alphafactory.ml.models``)."""
    if method not in MODEL_NAMES:
        raise ValueError(f"learned combination {method!r}: expected a model of {MODEL_NAMES}")
    k, rows, _ = signals.shape
    cube = feature_cube({f"alpha{j}": signals[j] for j in range(k)})
    spec = MLSpec(method, horizon=1, folds=folds, seed=seed)
    fit = fit_at(cube, labels(returns, 1), rows - 1, spec)
    signal = fit.predict(cube, np.array([rows - 1]))[0]
    importance = np.asarray(fit.model.importances, dtype=np.float64)
    total = importance.sum()
    weights = importance / total if total > 0 else np.full(k, 1.0 / k)
    return LearnedCombination(np.nan_to_num(signal), weights)
