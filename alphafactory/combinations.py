"""Combination methods: how a pool's alphas become one signal on the decision row.

Each method is declared once, here, as a small class registered under its name; the
strategy schema (``[combination] method``) and its error message, the ``combo_<method>``
variant names and the CLI's help, and the decision read :data:`COMBINATIONS`. Adding a
method is a class here (or in a module that calls :func:`register`) and its test.

Signals are (K alphas, W window rows, N assets), the last row the decision; each is
standardised per row (``portfolio.standardize``) first. ``forward[t]`` is the return a
position taken at row ``t`` earns (NaN where not known, the decision row among them).

- ``equal``: 1/K each;
- ``ic_weighted``: each alpha's mean IC over the window, over the sum of absolute ICs (an
  alpha that ranks backwards is flipped); a pool member with a mature out-of-sample record
  is weighted by that record instead (``alphafactory.pool.record_weights``);
- ``ridge``: a pooled ridge regression of the standardised forward returns on the
  signals, the penalty ``ridge_alpha`` times the signals' mean variance (scale-free);
- ``lightgbm``: a model learns the next return from the signals
  (``alphafactory.ml.combine``); its weights are each alpha's share of the model's use.

Pure numpy (the learned method fits its model through ``alphafactory.ml``).
"""

from __future__ import annotations

from typing import ClassVar

import numpy as np

from alphafactory.constructions import PortfolioError
from alphafactory.portfolio import combined_signal, standardize
from alphafactory.registry import Registry


class Combination:
    name: ClassVar[str]
    summary: ClassVar[str]
    # True: the weights come from a fitted model with no per-row linear signal (the
    # in-sample position cannot be rebuilt row by row)
    learned: ClassVar[bool] = False
    # True: mature pool members are weighted by their out-of-sample record
    weighted_by_record: ClassVar[bool] = False

    def weights(self, signals: np.ndarray, forward: np.ndarray, ridge_alpha: float) -> np.ndarray:
        """One weight per alpha, absolute weights summing to 1 (a fixed-weight method)."""
        raise PortfolioError(f"combination {self.name!r} learns a model: it has no fixed weights")

    def combine(
        self, signals: np.ndarray, forward: np.ndarray, returns: np.ndarray, ridge_alpha: float
    ) -> tuple[np.ndarray, np.ndarray]:
        """(the combined signal on the decision row, each alpha's weight). ``returns``:
        the window's rows' own returns (what a learned method labels from)."""
        weights = self.weights(signals, forward, ridge_alpha)
        return combined_signal(signals, weights), weights


def _known(forward: np.ndarray) -> np.ndarray:
    return np.isfinite(forward).sum(axis=1) >= 2


class Equal(Combination):
    name = "equal"
    summary = "every alpha alike"

    def weights(self, signals, forward, ridge_alpha):
        return np.full(len(signals), 1.0 / max(len(signals), 1))


class ICWeighted(Combination):
    name = "ic_weighted"
    summary = "by each alpha's IC in the window, then its out-of-sample record"
    weighted_by_record = True

    def weights(self, signals, forward, ridge_alpha):
        k, known = len(signals), _known(forward)
        if not k or not known.any():
            return np.full(k, 1.0 / max(k, 1))
        z, y = standardize(signals)[:, known], standardize(forward)[known]
        # per row, the Pearson correlation of standardised rows; then the mean over rows
        ics = (z * y).sum(axis=2).mean(axis=1) / max(signals.shape[2] - 1, 1)
        total = np.abs(ics).sum()
        return ics / total if total > 0 else np.full(k, 1.0 / k)


class Ridge(Combination):
    name = "ridge"
    summary = "a pooled ridge regression of the next returns on the signals"

    def weights(self, signals, forward, ridge_alpha):
        k, known = len(signals), _known(forward)
        if not k or not known.any():
            return np.full(k, 1.0 / max(k, 1))
        x = standardize(signals)[:, known].reshape(k, -1).T  # (observations, k)
        target = standardize(forward)[known].reshape(-1)
        gram = x.T @ x
        penalty = ridge_alpha * np.trace(gram) / k
        beta = np.linalg.solve(gram + penalty * np.eye(k), x.T @ target)
        total = np.abs(beta).sum()
        return beta / total if total > 0 else np.full(k, 1.0 / k)


class LightGBM(Combination):
    name = "lightgbm"
    summary = "a gradient-boosted model of the next return on the signals"
    learned = True

    def combine(self, signals, forward, returns, ridge_alpha):
        from alphafactory.ml.combine import learned_combination

        learned = learned_combination(signals, returns, self.name)
        return learned.signal, learned.weights


COMBINATIONS: Registry[Combination] = Registry("combination method", PortfolioError)
register = COMBINATIONS.register
combination = COMBINATIONS.lookup
for _builtin in (Equal, ICWeighted, Ridge, LightGBM):
    register(_builtin)


def combination_weights(
    signals: np.ndarray, forward: np.ndarray, method: str, *, ridge_alpha: float = 1.0
) -> np.ndarray:
    """One weight per alpha by the fixed-weight ``method``."""
    return combination(method).weights(np.asarray(signals, np.float64), forward, ridge_alpha)
