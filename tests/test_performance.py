"""Holding allocations out of sample (alphafactory.performance): no return before the
decision counts, and the summary matches direct formulas."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from alphafactory.performance import held_returns, summarize

DATES = pd.date_range("2020-01-31", periods=6, freq="ME").to_numpy()
ASSETS = np.array(["A", "B"])
RETURNS = np.array(
    [[0.01, 0.02], [0.03, -0.01], [0.02, 0.00], [-0.01, 0.04], [0.00, 0.01], [0.05, 0.02]]
)


def test_a_mid_month_decision_earns_from_the_following_month_on():
    decisions = pd.DatetimeIndex(["2020-02-14 13:30", "2020-04-15 13:30"], tz="UTC")
    series = held_returns(DATES, ASSETS, RETURNS, decisions, [{"A": 1.0}, {"A": 0.5, "B": 0.5}])
    # Feb decision: Feb's return (known in part before it) is skipped; March and April held
    assert list(series.index) == list(DATES[2:])
    np.testing.assert_allclose(series.to_numpy(), [0.02, -0.01, 0.005, 0.035])
    # held one period only, the last allocation stops after May
    once = held_returns(
        DATES, ASSETS, RETURNS, decisions, [{"A": 1.0}, {"A": 0.5, "B": 0.5}], hold_last=1
    )
    assert list(once.index) == list(DATES[2:5])
    np.testing.assert_allclose(once.to_numpy(), [0.02, -0.01, 0.005])


def test_the_summary_follows_the_usual_definitions():
    series = pd.Series([0.02, -0.01, 0.03, -0.02])
    perf = summarize(series, periods_per_year=12)
    wealth = np.cumprod(1 + series.to_numpy())
    assert perf.total_return == pytest.approx(wealth[-1] - 1)
    assert perf.annual_return == pytest.approx(wealth[-1] ** 3 - 1)
    assert perf.sharpe == pytest.approx(series.mean() / series.std() * np.sqrt(12))
    assert perf.max_drawdown == pytest.approx(1 - wealth[-1] / wealth[2])
    assert summarize(pd.Series([], dtype=float), 12).periods == 0
    with pytest.raises(ValueError, match="2 decision times for 1 weight sets"):
        held_returns(
            DATES, ASSETS, RETURNS, pd.DatetimeIndex(["2020-02-14", "2020-03-14"], tz="UTC"), [{}]
        )


def test_each_decision_s_held_period_compounds_each_asset_s_returns():
    from alphafactory.performance import held_asset_returns

    decisions = pd.DatetimeIndex(["2020-02-14 13:30", "2020-04-15 13:30"], tz="UTC")
    held = held_asset_returns(DATES, RETURNS, decisions, hold_last=1)
    # Feb decision: March and April (rows 2, 3); the April one: May (row 4) only
    np.testing.assert_allclose(held[0], (1 + RETURNS[2]) * (1 + RETURNS[3]) - 1)
    np.testing.assert_allclose(held[1], RETURNS[4])
    late = held_asset_returns(DATES, RETURNS, pd.DatetimeIndex(["2020-06-30 23:00"], tz="UTC"))
    assert np.isnan(late).all()  # decided after the last close: nothing held yet
