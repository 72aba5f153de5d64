"""The planted and null macro markets (alphafactory.data.macro_markets): the same noise,
a signal only in the planted one, calibrated by the oracle, and found by the strategy's
own scoring (macro forecasts, execution lag) where it was planted."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from alphafactory.data.macro_markets import (
    CLASS_GROUP,
    LEAD,
    PLANTED_STRENGTH,
    TRIGGER_LAG_DAYS,
    macro_market,
    oracle_information_ratio,
)
from alphafactory.data.releases import point_in_time_macro
from alphafactory.decision import decision_panel
from alphafactory.evaluate import evaluate
from alphafactory.formula import LanguageConfig, parse
from alphafactory.scoring import FormulaScorer, ScoringOptions, metric_values

SEEDS = (0, 1, 2)


@pytest.fixture(scope="module")
def markets():
    return {seed: (macro_market(seed=seed), macro_market(seed=seed, null=True)) for seed in SEEDS}


def test_the_null_twin_has_the_same_noise_and_releases_and_no_signal(markets):
    planted, null = markets[0]
    assert null.planted == () and null.strength == 0.0 and not null.expected.any()
    pd.testing.assert_frame_equal(planted.releases, null.releases)
    np.testing.assert_allclose(
        planted.panel.returns - planted.expected, null.panel.returns, equal_nan=True
    )
    assert np.abs(planted.expected).max() > 0.005


def test_the_universe_has_classes_cash_and_point_in_time_series(markets):
    market, _ = markets[1]
    panel = market.panel
    classes = panel.groups[CLASS_GROUP]
    assert classes.shape == panel.shape and set(np.unique(classes)) == {0, 1, 2, 3}
    cash = list(panel.assets).index("CASH")
    assert np.all(panel.returns[1:, cash] == 0.003) and not market.expected[:, cash].any()
    assert pd.Timestamp(panel.dates[0]) == pd.Timestamp("1980-01-31")
    for name, values in point_in_time_macro(market.releases, panel.dates).items():
        np.testing.assert_array_equal(panel.macro[name], values)
    # released within 5 to 45 days of the period's end: a lag of zero or one period
    assert set(market.series["lag_days"]) <= set(range(5, 46))


def test_the_planted_formulas_are_the_grammar_s_and_move_returns_two_periods_later(markets):
    market, _ = markets[2]
    assert len(market.planted) == 6
    for formula in market.planted:
        parse(formula)
        values = evaluate(formula, market.panel)
        assert values.ndim == 1 and np.nanstd(values) > 0
    # nothing planted reaches the first LEAD rows
    assert not market.expected[:LEAD].any() and market.expected[LEAD + 30].any()


def test_the_oracle_earns_an_information_ratio_near_1_5_at_the_documented_strength(markets):
    ratios = [oracle_information_ratio(markets[s][0], "1990-01-01") for s in SEEDS]
    assert all(1.2 < ratio < 1.8 for ratio in ratios), ratios
    assert np.isnan(oracle_information_ratio(markets[0][1]))
    weaker = macro_market(seed=0, strength=PLANTED_STRENGTH / 2)
    assert oracle_information_ratio(weaker, "1990-01-01") < ratios[0] * 0.7


def decision_view(market):
    """The panel a decision at the trigger's last release sees (twin rows, 1980-2016)."""
    trigger = market.releases[market.releases["series_id"] == "MAC00"]
    first_prints = trigger.drop_duplicates("period")["released_at"]
    decided = first_prints.iloc[-1] + pd.Timedelta(minutes=1)
    visible = market.releases[market.releases["released_at"] <= decided]
    return decision_panel(market.panel, visible, decided.to_pydatetime(), len(market.panel.dates))


def test_the_trigger_is_released_at_its_lag_and_the_decision_sees_the_planted_values(markets):
    planted, _ = markets[0]
    lags = dict(zip(planted.series["series_id"], planted.series["lag_days"], strict=True))
    assert lags["MAC00"] == TRIGGER_LAG_DAYS
    view = decision_view(planted)
    # what moves returns is what a decision at the trigger's release reads on its rows
    rows = slice(36, len(view.dates) - LEAD)
    driven = planted.expected[rows.start + LEAD : rows.stop + LEAD, 0]
    fit = {
        name: explained(panel, planted.planted, rows, driven)
        for name, panel in (("decision", view), ("month end", planted.panel))
    }
    assert fit["decision"] > 0.95 and fit["month end"] < 0.9, fit


def explained(panel, formulas, rows, target) -> float:
    """R-squared of ``target`` on the formulas' values over ``rows`` of ``panel``."""
    monthly = LanguageConfig.monthly()
    x = np.column_stack(
        [evaluate(parse(f), panel, config=monthly)[rows] for f in formulas] + [np.ones(len(target))]
    )
    coef, *_ = np.linalg.lstsq(x, target, rcond=None)
    return 1.0 - np.var(target - x @ coef) / np.var(target)


def test_the_strategy_s_scoring_finds_the_planted_formulas_and_nothing_in_the_null(markets):
    """Over 1990-2016, each planted formula's forecasts (class-shrunk, scored on the rows a
    decision sees against the returns its positions would earn) rank next returns: a
    positive mean rank IC in every planted market, none in the null twins."""
    options = ScoringOptions(class_group=CLASS_GROUP, execution_lag=1)
    for seed in SEEDS:
        planted, null = markets[seed]
        ic = {}
        for name, market in (("planted", planted), ("null", null)):
            scorer = FormulaScorer(decision_view(market), options=options, score_from=120)
            ic[name] = metric_values(scorer.score(list(planted.planted)), "rank_ic")
        assert ic["planted"].mean() > 0.03 and (ic["planted"] > 0).sum() >= 5, ic
        assert abs(ic["null"].mean()) < 0.025, ic


def test_bad_arguments_are_named():
    with pytest.raises(ValueError, match="n_planted must be 1 to 6, got 7"):
        macro_market(seed=0, n_planted=7)
    with pytest.raises(ValueError, match="at least 24"):
        macro_market(seed=0, start="2016-01-31")
