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
            values = asset_scores(text, panel, evaluator=scorer.evaluator)
            assert metrics == reference.score(values)
    ic = metric_values(got, "ic")
    assert np.isnan(ic[2]) and np.isfinite(ic[0])


def test_a_later_period_is_scored_with_history_and_only_its_own_dates(panel):
    split = 100
    scorer = FormulaScorer(panel, score_from=split)
    later = scorer.score(FORMULAS[:2])
    for text, metrics in zip(FORMULAS[:2], later, strict=True):
        values = asset_scores(text, panel, evaluator=scorer.evaluator)[split:]
        expected = FactorScorer(panel.returns[split:], dates=panel.dates[split:]).score(values)
        assert metrics == expected
    with pytest.raises(ValueError, match="score_from"):
        FormulaScorer(panel, score_from=149)


def test_score_each_says_why_a_formula_is_invalid_and_gives_series(panel):
    scorer = FormulaScorer(panel)
    scored = list(scorer.score_each(FORMULAS, series=True))
    assert [s.text for s in scored] == FORMULAS
    assert [s.metrics is None for s in scored] == [False, False, True, False, True]
    assert "rank" in str(scored[2].error) and "nonsense" in str(scored[4].error)
    reference = FactorScorer.for_panel(panel)
    values = asset_scores(FORMULAS[1], panel, evaluator=scorer.evaluator)
    expected = reference.series(values)
    assert scored[1].metrics == reference.score(values)
    assert set(scored[1].series) == set(expected)
    for key, array in expected.items():
        np.testing.assert_array_equal(scored[1].series[key], array)
    assert all(s.series is None for s in scorer.score_each(FORMULAS[:2]))


def test_periods_per_year_and_metric_options_override(panel):
    options = ScoringOptions(periods_per_year=4, horizon=2, quantiles=3, macro_min_periods=24)
    scorer = FormulaScorer(panel, options=options)
    metrics = scorer.score([FORMULAS[0]])[0]
    assert metrics.periods_per_year == 4 and metrics.horizon == 2 and metrics.quantiles == 3
    values = asset_scores(FORMULAS[0], panel, min_periods=24, evaluator=scorer.evaluator)
    expected = FactorScorer(panel.returns, horizon=2, quantiles=3, periods_per_year=4)
    assert metrics == expected.score(values)


def test_kernel_threads_are_set_per_thread_and_capped_at_what_numba_has():
    import numba

    from alphafactory.scoring import set_kernel_threads

    before = numba.get_num_threads()
    try:
        set_kernel_threads(1)
        assert numba.get_num_threads() == 1
        set_kernel_threads(10_000)  # more than numba started with: all it has
        assert numba.get_num_threads() == numba.config.NUMBA_NUM_THREADS
    finally:
        numba.set_num_threads(before)


def test_with_a_position_the_judged_series_is_what_that_position_earns(panel):
    """A long-only rule's position beyond the equal weights a signal with no information
    gives, held t -> t+1: its return series and turnover replace the quantile
    long-short's, the IC stays."""
    from alphafactory.traded import PositionRule

    rule = PositionRule(kind="long_only", volatility_months=24)
    plain = FormulaScorer(panel, score_from=30)
    traded = FormulaScorer(panel, options=ScoringOptions(position=rule), score_from=30)
    formula = "rank(-pct_change(close, 3))"
    (values,) = plain.signals([formula])
    metrics = traded.score([formula])[0]
    assert metrics.ic == plain.score([formula])[0].ic
    earned, weights = [], []
    for row in range(30, panel.shape[0] - 1):
        if not np.isfinite(values[row]).any():
            continue
        held = np.maximum(values[row] - np.nanmean(values[row]), 0.0)
        held = np.nan_to_num(held) / np.nansum(held) - 1.0 / panel.shape[1]
        weights.append(held)
        earned.append(np.nansum(held * panel.returns[row + 1]))
    earned = np.array(earned)
    assert metrics.n_periods == len(earned)
    sharpe = earned.mean() / earned.std(ddof=1) * np.sqrt(12)
    assert metrics.ls_sharpe == pytest.approx(sharpe, rel=1e-9)
    turnover = np.mean(0.5 * np.abs(np.diff(weights, axis=0)).sum(axis=1))
    assert metrics.turnover == pytest.approx(turnover, rel=1e-9)
