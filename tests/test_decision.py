"""One decision: the point-in-time panel, qualification and allocation (alphafactory.decision)."""

from __future__ import annotations

from datetime import UTC, datetime

import numpy as np
import pandas as pd
import pytest

from alphafactory.data import synthetic_market
from alphafactory.decision import (
    DecisionError,
    allocate,
    benchmark_weights,
    decision_panel,
    evaluate_formulas,
)
from alphafactory.metrics import parse_definition
from alphafactory.scoring import FormulaScorer, config_for_panel
from alphafactory.strategy import Strategy

STRATEGY = Strategy.model_validate(
    {
        "id": "test",
        "alpha": {"definition": "hac_tstat >= 1", "training_months": 60},
        "pool": {"size": 3, "max_correlation": 0.9},
        "portfolio": {"kind": "tilt", "tilt_limit": 0.05},
    }
)
FORMULAS = [
    "ts_zscore(M0000, 12)",
    "delta(M0001, 3)",
    "M0002",
    "ts_mean(M0003, 6)",
    "rank(returns)",
    "ts_zscore(M0001, 6)",
]


@pytest.fixture(scope="module")
def market():
    return synthetic_market(n_assets=8, n_dates=160, n_macro=4, seed=3, frequency="M")


def decision_time(market, row: int, days: int = 12) -> datetime:
    return (pd.Timestamp(market.panel.dates[row]) + pd.Timedelta(days=days, hours=15)).tz_localize(
        UTC
    )


def released_by(releases: pd.DataFrame, when: datetime) -> pd.DataFrame:
    return releases[releases["released_at"] <= when]


def test_the_panel_holds_what_was_published_by_the_decision_time_only(market):
    when = decision_time(market, 120)
    panel = decision_panel(market.panel, released_by(market.releases, when), when, 100)
    assert panel.dates[-1] == market.panel.dates[120] and panel.shape == (100, 8)
    # later market rows and later releases never reach it
    shorter = decision_panel(market.panel.head(121), released_by(market.releases, when), when, 100)
    for name, values in panel.macro.items():
        np.testing.assert_array_equal(values, shorter.macro[name])
    np.testing.assert_array_equal(panel.returns, shorter.returns)
    # the decision row shows each series' newest period released by the decision time
    for series, rows in released_by(market.releases, when).groupby("series_id"):
        newest = rows.sort_values(["period", "released_at"]).iloc[-1]
        assert panel.macro[series][-1] == newest["value"]
    # earlier rows are as the point-in-time panel has them
    np.testing.assert_array_equal(panel.macro["M0000"][:-1], market.panel.macro["M0000"][21:120])


def test_a_release_after_the_decision_time_is_refused(market):
    when = decision_time(market, 120)
    with pytest.raises(DecisionError, match="after the decision time .* only data released"):
        decision_panel(market.panel, market.releases, when, 100)
    with pytest.raises(DecisionError, match="must carry a time zone"):
        decision_panel(market.panel, market.releases.iloc[:0], when.replace(tzinfo=None), 100)


def test_qualification_applies_the_definition_to_the_training_window(market):
    when = decision_time(market, 150)
    panel = decision_panel(market.panel, released_by(market.releases, when), when, 140)
    results = evaluate_formulas(panel, STRATEGY, FORMULAS + ["not_a_series"])
    scorer = FormulaScorer(panel, config=config_for_panel(panel), score_from=140 - 1 - 60)
    expected = scorer.score(FORMULAS)
    definition = parse_definition("hac_tstat >= 1")
    for result, metrics in zip(results, expected, strict=False):
        assert result.metrics.hac_tstat == pytest.approx(metrics.hac_tstat, nan_ok=True)
        assert result.qualified == bool(definition.evaluate(metrics))
    assert results[-1].metrics is None and not results[-1].qualified


def test_allocation_tilts_the_risk_parity_mix_within_the_limit(market):
    when = decision_time(market, 150)
    panel = decision_panel(market.panel, released_by(market.releases, when), when, 140)
    allocation = allocate(panel, STRATEGY, FORMULAS, scores=np.arange(len(FORMULAS), 0, -1.0))
    weights = np.array(list(allocation.weights.values()))
    assert list(allocation.weights) == [str(a) for a in panel.assets]
    assert np.isclose(weights.sum(), 1.0) and (weights >= 0).all()
    assert 1 <= len(allocation.pool) <= 3 and set(allocation.pool) <= set(FORMULAS)
    assert np.isclose(sum(abs(w) for w in allocation.pool.values()), 1.0)
    empty = allocate(panel, STRATEGY, [], scores=[])
    assert empty.pool == {} and np.isclose(sum(empty.weights.values()), 1.0)
    assert np.abs(weights - np.array(list(empty.weights.values()))).max() <= 0.05 + 1e-9


def test_benchmark_by_group_excludes_cash_and_names_a_missing_group(market):
    panel = market.panel
    assets = [str(a) for a in panel.assets]
    classes = np.broadcast_to(np.arange(len(assets)) % 2, panel.shape).copy()
    grouped = type(panel)(panel.dates, panel.assets, panel.fields, panel.macro, {"cls": classes})
    rules = {"kind": "tilt", "risk_parity_group": "cls", "benchmark_excludes": [assets[0]]}
    strategy = STRATEGY.model_copy(update={"portfolio": STRATEGY.portfolio.model_validate(rules)})
    weights = benchmark_weights(grouped, strategy, 100)
    assert weights[0] == 0.0 and np.isclose(weights.sum(), 1.0) and (weights[1:] > 0).all()
    window = grouped.returns[100 - strategy.portfolio.volatility_months : 100]
    risk = [
        np.std(window[:, c == k] @ weights[c == k], ddof=1) for c in [classes[0]] for k in (0, 1)
    ]
    assert risk[0] == pytest.approx(risk[1], rel=1e-9)
    with pytest.raises(DecisionError, match=r"risk_parity_group 'cls' is not a group.*'sector'"):
        benchmark_weights(panel, strategy, 100)


def test_a_group_universe_keeps_the_assets_with_its_latest_codes(market):
    from alphafactory.decision import universe_of
    from alphafactory.strategy import Universe

    panel = market.panel
    codes = np.broadcast_to(np.arange(panel.shape[1]) % 3, panel.shape).copy()
    codes[-5:, 0] = -1  # asset 0's code not stored lately: its last stored code counts
    grouped = type(panel)(panel.dates, panel.assets, panel.fields, panel.macro, {"tier": codes})
    chosen = universe_of(grouped, Universe(data="store", group="tier", group_codes=(0, 2)))
    expected = [str(a) for k, a in enumerate(panel.assets) if k % 3 in (0, 2)]
    assert list(chosen.assets) == expected
    assert chosen.fields["returns"].shape == (panel.shape[0], len(expected))
    assert universe_of(grouped, Universe()) is grouped
    with pytest.raises(DecisionError, match=r"universe.group 'region' is not stored.*'tier'"):
        universe_of(grouped, Universe(data="store", group="region", group_codes=(1,)))
    with pytest.raises(DecisionError, match=r"no asset has universe.group 'tier' code in \[7\]"):
        universe_of(grouped, Universe(data="store", group="tier", group_codes=(7,)))
