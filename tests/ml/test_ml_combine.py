"""A pool combined by a learned model (combination.method = "lightgbm")."""

from __future__ import annotations

import numpy as np
import pytest

from alphafactory import portfolio
from alphafactory.combinations import combination_weights
from alphafactory.ml.combine import learned_combination

T, N = 80, 300


def interacting_pool(seed: int):
    """Three alphas; the next return depends on the product of the first two only (an
    interaction fixed weights cannot express), the third is noise."""
    rng = np.random.default_rng(seed)
    signals = rng.normal(size=(3, T + 1, N))
    returns = rng.normal(0, 0.01, size=(T + 1, N))
    returns[1:] += 0.03 * signals[0, :-1] * signals[1, :-1]
    return signals, returns


def _correlation(x: np.ndarray, y: np.ndarray) -> float:
    return float(np.corrcoef(x, y)[0, 1])


def test_lightgbm_learns_an_interaction_that_fixed_weights_cannot():
    learned, fixed = [], []
    for seed in range(3):
        signals, returns = interacting_pool(seed)
        window, decision = signals[:, :T], returns[:T]  # the decision row is T - 1
        combined = learned_combination(window, decision, "lightgbm")
        forward = np.vstack([decision[1:], np.full((1, N), np.nan)])
        weights = combination_weights(window, forward, "ic_weighted")
        linear = portfolio.combined_signal(window, weights)
        realised = returns[T]  # the return after the decision, which neither saw
        learned.append(_correlation(combined.signal, realised))
        fixed.append(_correlation(linear, realised))
    assert np.mean(learned) > 0.4
    assert np.mean(fixed) < 0.15


def test_the_weights_are_each_alpha_s_share_of_the_model_s_use():
    signals, returns = interacting_pool(5)
    combined = learned_combination(signals[:, :T], returns[:T], "lightgbm")
    assert combined.weights.shape == (3,) and np.isclose(combined.weights.sum(), 1.0)
    assert (combined.weights >= 0).all()
    assert combined.weights[2] < min(combined.weights[:2])  # the noise alpha, least used
    again = learned_combination(signals[:, :T], returns[:T], "lightgbm")
    np.testing.assert_array_equal(again.signal, combined.signal)  # seeded, deterministic


def test_an_unknown_learned_method_is_named():
    with pytest.raises(ValueError, match="learned combination 'forest': expected a model of"):
        learned_combination(np.zeros((1, 10, 5)), np.zeros((10, 5)), "forest")
