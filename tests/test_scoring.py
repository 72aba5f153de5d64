"""Batched formula scoring: the same metrics as one formula at a time, point-in-time."""

from __future__ import annotations

import numpy as np
import pytest

from alphafactory.data import synthetic_market
from alphafactory.evaluate import asset_scores
from alphafactory.metrics import FactorScorer
from alphafactory.scoring import FormulaScorer, ScoringOptions, metric_values


@pytest.fixture(scope="module")
def panel():
    return synthetic_market(n_assets=12, n_dates=150, n_macro=4, seed=5, frequency="M").panel


FORMULAS = [
    "ts_zscore(M0001, 12)",
    "rank(-pct_change(close, 3))",
    "rank(M0002)",
    "ts_mean(M0000 - M0003, 6)",
    "nonsense(close)",
]


def test_batch_equals_one_formula_at_a_time_and_bad_ones_get_none(panel):
    scorer = FormulaScorer(panel, options=ScoringOptions(stack_bytes=2 * 150 * 12 * 8))
    got = scorer.score(FORMULAS)
    assert got[2] is None and got[4] is None  # a type error and an unknown operator
    reference = FactorScorer.for_panel(panel)
    for text, metrics in zip(FORMULAS, got, strict=True):
        if metrics is not None:
            values = asset_scores(text, panel, window=36, evaluator=scorer.evaluator)
            assert metrics == reference.score(values)
    ic = metric_values(got, "ic")
    assert np.isnan(ic[2]) and np.isfinite(ic[0])


def test_a_later_period_is_scored_with_history_and_only_its_own_dates(panel):
    split = 100
    scorer = FormulaScorer(panel, score_from=split)
    later = scorer.score(FORMULAS[:2])
    for text, metrics in zip(FORMULAS[:2], later, strict=True):
        values = asset_scores(text, panel, window=36, evaluator=scorer.evaluator)[split:]
        expected = FactorScorer(panel.returns[split:], dates=panel.dates[split:]).score(values)
        assert metrics == expected
    with pytest.raises(ValueError, match="score_from"):
        FormulaScorer(panel, score_from=149)
