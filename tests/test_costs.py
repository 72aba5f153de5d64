"""Trading costs (alphafactory.costs) and returns net of them (performance.held_returns)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from pydantic import ValidationError

from alphafactory.costs import BASIS_POINT, cost_rates, decision_costs, describe_costs
from alphafactory.performance import held_periods, held_returns
from alphafactory.strategy import Costs, Strategy

DATES = pd.date_range("2001-01-31", periods=8, freq="ME").to_numpy()
ASSETS = np.array(["EQ", "BOND", "CASH"])
RETURNS = np.random.default_rng(3).normal(0.005, 0.03, (8, 3))


def test_an_assets_rate_comes_before_its_classes_and_the_default():
    rates = cost_rates(
        ["EQ", "BOND", "CASH", "OIL"],
        default_bps=7,
        asset_bps={"OIL": 25},
        group_bps={0: 10, 3: 0},
        codes=np.array([0, 1, 3, 2]),
    )
    np.testing.assert_allclose(rates, np.array([10, 7, 0, 25]) * BASIS_POINT)
    with pytest.raises(ValueError, match="need each asset's class code"):
        cost_rates(["EQ"], default_bps=1, group_bps={0: 2})


def test_costs_reduce_returns_by_exactly_the_traded_weight_times_the_rate():
    decisions = pd.DatetimeIndex(["2001-01-31 20:00", "2001-03-31 20:00", "2001-06-15"], tz="UTC")
    weights = [{"EQ": 0.6, "BOND": 0.4}, {"EQ": 0.3, "BOND": 0.5, "CASH": 0.2}, {"EQ": 1.0}]
    rates = np.array([10, 20, 0]) * BASIS_POINT
    gross = held_returns(DATES, ASSETS, RETURNS, decisions, weights)
    net = held_returns(DATES, ASSETS, RETURNS, decisions, weights, costs=rates)
    traded = [0.6 * 10 + 0.4 * 20, 0.3 * 10 + 0.1 * 20, 0.7 * 10 + 0.5 * 20]
    # each allocation's first period held
    first_held = [DATES[start] for start, _ in held_periods(DATES, decisions)]
    paid = pd.Series(np.array(traded) * BASIS_POINT, index=first_held)
    expected = gross - paid.reindex(gross.index).fillna(0.0)
    pd.testing.assert_series_equal(net, expected, rtol=0, atol=1e-15)
    matrix = np.array([[0.6, 0.4, 0.0], [0.3, 0.5, 0.2], [1.0, 0.0, 0.0]])
    np.testing.assert_allclose(decision_costs(matrix, rates), paid.to_numpy())


def test_an_allocation_never_held_passes_its_cost_to_the_next():
    decisions = pd.DatetimeIndex(["2001-01-31 20:00", "2001-02-05", "2001-02-10"], tz="UTC")
    weights = [{"EQ": 1.0}, {"BOND": 1.0}, {"EQ": 1.0}]  # the second is replaced unheld
    rates = np.full(3, 10 * BASIS_POINT)
    gross = held_returns(DATES, ASSETS, RETURNS, decisions, weights)
    net = held_returns(DATES, ASSETS, RETURNS, decisions, weights, costs=rates)
    assert (gross - net).sum() == pytest.approx((1 + 2 + 2) * 10 * BASIS_POINT, abs=1e-15)


def test_the_strategy_section_names_a_class_rate_without_its_group():
    with pytest.raises(ValidationError, match=r"costs.group_bps \{0: 5.0\} prices classes"):
        Costs(group_bps={0: 5})
    with pytest.raises(ValidationError, match="greater than or equal to 0"):
        Costs(default_bps=-1)
    bundled = Strategy.model_validate({"id": "x", "costs": {"group": "asset_class"}})
    assert describe_costs(bundled.costs) == "10 bp a unit of weight traded"
    priced = Costs(default_bps=5, group="asset_class", group_bps={1: 15}, asset_bps={"OIL": 9})
    assert describe_costs(priced) == (
        "5 bp a unit of weight traded; by asset_class class (1: 15 bp); by asset (OIL: 9 bp)"
    )
