"""ML alphas scored like formulas (alphafactory.scoring dispatching to alphafactory.ml):
the walked signal, its metrics, its features, point-in-time."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from alphafactory.data import synthetic_market
from alphafactory.metrics import FactorScorer
from alphafactory.ml.features import feature_cube, labels
from alphafactory.ml.fit import MLSpec
from alphafactory.ml.signal import MIN_TRAIN_ROWS, walk_forward
from alphafactory.panel import Panel
from alphafactory.scoring import FormulaScorer

T, N, SCORE_FROM = 150, 25, 60
RIDGE_ON_A = "ml:ridge(features=[a, b], retrain=10, folds=2)"


def panel(seed: int = 0, *, returns: np.ndarray | None = None) -> Panel:
    """Fields ``a`` and ``b``; the next period's return loads on ``a``."""
    rng = np.random.default_rng(seed)
    a, b = rng.normal(size=(T, N)), rng.normal(size=(T, N))
    if returns is None:
        returns = rng.normal(0, 0.05, size=(T, N))
        returns[1:] += 0.03 * a[:-1]
    dates = pd.date_range("2000-01-31", periods=T, freq="ME").values
    assets = np.array([f"A{i}" for i in range(N)])
    return Panel(dates=dates, assets=assets, fields={"a": a, "b": b, "returns": returns})


def test_an_ml_alpha_is_scored_on_its_walked_signal_like_a_formula():
    market = panel()
    scorer = FormulaScorer(market, score_from=SCORE_FROM)
    (scored,) = scorer.score_each([RIDGE_ON_A])
    assert scored.error is None and scored.text == RIDGE_ON_A
    signal = scorer.signals([RIDGE_ON_A])[0]
    cube = feature_cube({"a": market.fields["a"], "b": market.fields["b"]})
    expected = walk_forward(
        cube,
        labels(market.returns, 1),
        MLSpec("ridge", folds=2),
        first_row=SCORE_FROM,
        last_row=T - 1,
        retrain_every=10,
    ).values
    np.testing.assert_array_equal(signal, expected)
    assert np.isnan(signal[:SCORE_FROM]).all() and np.isfinite(signal[SCORE_FROM:]).all()
    metrics = FactorScorer(market.returns[SCORE_FROM:], dates=market.dates[SCORE_FROM:])
    assert scored.metrics == metrics.score(signal[SCORE_FROM:])
    assert scored.metrics.ic > 0.2  # it learnt the planted loading, out of sample


def test_an_ml_alpha_and_formulas_are_scored_together_in_order():
    scorer = FormulaScorer(panel(), score_from=SCORE_FROM)
    texts = ["rank(a)", RIDGE_ON_A, "ml:ridge(features=[nope])", "rank(nope)"]
    scored = list(scorer.score_each(texts))
    assert [s.text for s in scored] == texts
    assert scored[0].metrics is not None and scored[1].metrics is not None
    assert "feature 'nope' is neither a set (library, operands) nor an operand" in str(
        scored[2].error
    )
    assert scored[2].metrics is None and scored[3].metrics is None
    alone = FormulaScorer(panel(), score_from=SCORE_FROM).score(["rank(a)"])[0]
    assert scored[0].metrics == alone


def test_no_value_of_the_signal_depends_on_a_later_return():
    market = panel(3)
    later = market.returns.copy()
    later[100:] = 0.2
    changed = panel(3, returns=later)
    before = FormulaScorer(market, score_from=SCORE_FROM).signals([RIDGE_ON_A])[0]
    after = FormulaScorer(changed, score_from=SCORE_FROM).signals([RIDGE_ON_A])[0]
    np.testing.assert_array_equal(after[:100], before[:100])
    assert not np.array_equal(after[100:], before[100:])


def test_the_walk_starts_once_a_fit_has_enough_labels():
    scorer = FormulaScorer(panel(), score_from=0)
    signal = scorer.signals([RIDGE_ON_A])[0]
    assert np.isnan(signal[: MIN_TRAIN_ROWS + 1]).all()
    assert np.isfinite(signal[MIN_TRAIN_ROWS + 1 :]).all()
    short = Panel(
        dates=panel().dates[:30],
        assets=panel().assets,
        fields={k: v[:30] for k, v in panel().fields.items()},
    )
    (scored,) = FormulaScorer(short).score_each([RIDGE_ON_A])
    assert scored.metrics is None
    assert "the panel's 30 dates leave none to predict" in str(scored.error)


@pytest.mark.parametrize("features", ["library", "operands"])
def test_feature_sets_are_the_library_and_the_operands_with_macro_mapped(features):
    """A macro series has one value per date: as a feature it is mapped to assets the
    way a macro formula is (its trailing regression on each asset's returns)."""
    market = synthetic_market(n_assets=12, n_dates=140, n_macro=2, seed=4, frequency="M")
    scorer = FormulaScorer(market.panel, score_from=60)
    text = f"ml:ridge(features=[{features}], folds=2)"
    (scored,) = scorer.score_each([text])
    assert scored.error is None and np.isfinite(scored.metrics.ic)
    sources = scorer.ml._sources[features]
    assert len(sources) > 2 and all(v.shape == market.panel.shape for v in sources.values())
    if features == "operands":
        assert {"M0000", "M0001", "close", "returns", "volume"} <= set(sources)
