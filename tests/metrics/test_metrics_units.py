"""Hand-checked conventions of the factor metrics, and the fast path against the reference."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from alphafactory.metrics import (
    CONTRACT_KEYS,
    FactorScorer,
    MetricsError,
    factor_metrics,
    factor_metrics_batch,
    infer_periods_per_year,
)
from alphafactory.metrics.series import newey_west_maxlags
from alphafactory.panel import Panel
from tests.metrics import _reference as ref

NAN = np.nan


def test_quantiles_rank_ties_by_order_of_appearance():
    values = np.array([[3.0, 1.0, 1.0, 2.0, 1.0, NAN], [0.0] * 6])
    returns = np.array([[0.0] * 6, [0.01, 0.02, 0.03, 0.04, 0.05, 0.06]])
    series = FactorScorer(returns, quantiles=3, periods_per_year=12).series(values)
    # ordinal ranks 5, 1, 2, 4, 3 among n = 5 -> quantiles floor(3 (rank - 1) / 5) + 1
    codes = ref.quantiles_of(values[0, :5], 3)
    assert codes.tolist() == [3, 1, 1, 2, 2]
    expected = [returns[1, :5][codes == q].mean() for q in (1, 2, 3)]
    np.testing.assert_allclose(series["quantile_returns"][0], expected, rtol=1e-12)


@pytest.mark.parametrize("missing", [False, True], ids=["all-valid", "one-missing"])
def test_long_short_uses_those_quantiles(missing):
    factor = np.array([[3.0, 1.0, 1.0, 2.0, 1.0, NAN if missing else 9.0], [0.0] * 6])
    returns = np.array([[0.0] * 6, [0.05, 0.01, 0.02, 0.03, 0.04, 0.06]])
    ls = FactorScorer(returns, quantiles=3, periods_per_year=12).series(factor)["ls"]
    if missing:  # top: asset 0; bottom: assets 1 and 2 (the first two of the tied ones)
        assert ls[0] == pytest.approx(0.05 - 0.015)
    else:  # top: assets 0 and 5; bottom: assets 1 and 2
        assert ls[0] == pytest.approx(0.055 - 0.015)
    assert np.isnan(ls[1])  # no next period


def test_dates_with_fewer_than_three_valid_assets_are_skipped():
    rng = np.random.default_rng(1)
    returns = rng.normal(0.0, 0.05, (6, 4))
    factor = rng.normal(size=(6, 4))
    factor[1, :2] = NAN  # 2 valid assets: skipped
    factor[2, :1] = NAN  # 3 valid assets: kept
    scorer = FactorScorer(returns, quantiles=2, periods_per_year=12)
    series = scorer.series(factor)
    assert np.isnan(series["ic"][1]) and np.isnan(series["rank_ic"][1])
    assert np.isfinite(series["ic"][2]) and np.isfinite(series["rank_ic"][2])
    assert np.isnan(series["ls"][1]) and np.isfinite(series["ls"][2])
    metrics = scorer.score(factor)
    assert metrics.n_ic_dates == 4  # dates 0, 2, 3, 4; date 5 has no forward return
    assert metrics.n_periods == 4
    assert metrics.ic == pytest.approx(np.nanmean(series["ic"]))


@pytest.mark.parametrize(
    ("dates", "expected"),
    [
        (pd.bdate_range("2020-01-01", periods=300), 252),
        (pd.date_range("2020-01-01", periods=300, freq="D"), 252),
        (pd.date_range("2020-01-03", periods=100, freq="W-FRI"), 52),
        (pd.date_range("2000-01-31", periods=50, freq="ME"), 12),
        (pd.date_range("2000-01-01", periods=50, freq="MS"), 12),
        (pd.date_range("2000-03-31", periods=40, freq="QE"), 4),
        (pd.date_range("2000-12-31", periods=10, freq="YE"), 1),
    ],
)
def test_periods_per_year_from_the_median_spacing(dates, expected):
    assert infer_periods_per_year(dates) == expected
    assert infer_periods_per_year(dates.to_numpy()) == expected


def test_periods_per_year_is_overridable_and_needs_dates():
    returns = np.zeros((5, 3))
    dates = pd.date_range("2000-01-31", periods=5, freq="ME")
    assert FactorScorer(returns, dates=dates, periods_per_year=4).periods_per_year == 4
    with pytest.raises(MetricsError, match="periods_per_year"):
        FactorScorer(returns)
    with pytest.raises(MetricsError, match="at least 2 dates"):
        infer_periods_per_year(dates[:1])
    with pytest.raises(MetricsError, match="3 dates for 5 rows"):
        FactorScorer(returns, dates=dates[:3])
    with pytest.raises(MetricsError, match="not datetimes"):
        infer_periods_per_year(["2020-01-01", "soon"])
    with pytest.raises(MetricsError, match="must be a number"):
        FactorScorer(returns, periods_per_year="monthly")
    assert FactorScorer(returns, periods_per_year=12.0).periods_per_year == 12


@pytest.mark.parametrize("assets", [4, 60], ids=["bit-set legs", "weights"])
def test_turnover_by_hand(assets):
    factor = np.array([[1, 2, 3, 4], [4, 3, 2, 1], [1, 3, 2, 4], [0, 0, 0, 0]], dtype=float)
    returns = np.full((4, 4), 0.01)
    if assets > 4:  # same portfolios among more assets (the padding never enters a leg)
        factor = np.repeat(factor, assets // 4, axis=1)
        returns = np.full((4, assets), 0.01)
    # Q=2: top half +1/k, bottom half -1/k. Date 1 flips both legs: 0.5 * 2 * 2 = 2.
    # Date 2 swaps one name of each leg: 0.5 * (1/k + 1/k) * (k/2) * 2 = 1. Date 0 has no
    # previous portfolio; date 3 has no next return.
    metrics = factor_metrics(factor, returns, quantiles=2, periods_per_year=12)
    assert metrics.n_periods == 3
    assert metrics.turnover == pytest.approx(1.5)


def test_forward_returns_compound_over_the_horizon():
    returns = np.array([[0.0, 0.0, 0.0], [0.1, 0.2, -0.1], [0.1, -0.5, 0.3], [0.0, 0.0, 0.0]])
    expected = np.array([[0.21, -0.4, 0.17]])
    np.testing.assert_allclose(ref.forward_returns(returns, 2)[:1], expected)
    factor = np.array([[1.0, 2.0, 3.0]] * 4)
    series = FactorScorer(returns, horizon=2, quantiles=2, periods_per_year=4).series(factor)
    assert series["ic"][0] == pytest.approx(np.corrcoef([1, 2, 3], expected[0])[0, 1])
    assert np.isnan(series["ic"][2:]).all()  # no 2-period forward return


def test_newey_west_lag_rule():
    assert newey_west_maxlags(np.array([1, 50, 100, 360, 806])).tolist() == [1, 3, 4, 5, 6]


def test_to_dict_has_the_contract_keys_first():
    rng = np.random.default_rng(2)
    metrics = factor_metrics(
        rng.normal(size=(30, 6)), rng.normal(0, 0.1, (30, 6)), periods_per_year=12
    )
    assert tuple(metrics.to_dict())[: len(CONTRACT_KEYS)] == CONTRACT_KEYS
    assert isinstance(metrics.n_periods, int)
    assert len(metrics.to_dict()["quantile_mean_returns"]) == 5


def test_an_empty_factor_gives_nan_metrics():
    metrics = factor_metrics(np.full((10, 5), NAN), np.zeros((10, 5)), periods_per_year=12)
    assert metrics.n_periods == 0 and metrics.n_ic_dates == 0
    assert all(np.isnan(getattr(metrics, k)) for k in CONTRACT_KEYS[:9])


def test_bad_inputs_name_the_problem():
    returns = np.zeros((10, 5))
    with pytest.raises(MetricsError, match=r"\(F, T, N\)"):
        factor_metrics(np.zeros((10, 4)), returns, periods_per_year=12)
    with pytest.raises(MetricsError, match="horizon"):
        factor_metrics(np.zeros((10, 5)), returns, horizon=0, periods_per_year=12)
    with pytest.raises(MetricsError, match="quantiles"):
        factor_metrics(np.zeros((10, 5)), returns, quantiles=1, periods_per_year=12)


def test_batch_equals_one_at_a_time():
    rng = np.random.default_rng(3)
    returns = rng.normal(0.01, 0.05, (40, 8))
    factors = rng.normal(size=(5, 40, 8))
    factors[1, :, 3] = NAN
    factors[2] = np.round(factors[2])
    batch = factor_metrics_batch(factors, returns, periods_per_year=12)
    for factor, metrics in zip(factors, batch, strict=True):
        assert factor_metrics(factor, returns, periods_per_year=12) == metrics


def _random_panel(seed: int, assets: int):
    rng = np.random.default_rng(seed)
    t = int(rng.integers(8, 40))
    returns = rng.normal(0.005, 0.05, (t, assets))
    if rng.random() < 0.3:
        returns = np.round(returns, 2)  # tied returns
    returns[rng.integers(t)] = 0.0  # a holiday: constant returns
    returns[rng.random((t, assets)) < rng.choice([0.0, 0.05])] = NAN
    factor = rng.normal(size=(t, assets))
    if rng.random() < 0.5:
        factor = np.round(factor * rng.choice([1, 2]))  # ties, sometimes constant rows
    factor[rng.random((t, assets)) < rng.choice([0.0, 0.1, 0.4])] = NAN
    factor[: int(rng.integers(0, 4))] = NAN  # warm-up rows
    if rng.random() < 0.2:
        factor[rng.random((t, assets)) < 0.05] = np.inf
    return factor, returns


@settings(max_examples=60, deadline=None, database=None)
@given(
    seed=st.integers(0, 2**32 - 1),
    assets=st.sampled_from([3, 5, 8, 13, 60]),
    horizon=st.integers(1, 3),
    quantiles=st.integers(2, 6),
)
def test_vectorised_metrics_match_the_per_date_reference(seed, assets, horizon, quantiles):
    factor, returns = _random_panel(seed, assets)
    got = factor_metrics(
        factor, returns, horizon=horizon, quantiles=quantiles, periods_per_year=12
    ).to_dict()
    expected = ref.reference_metrics(factor, returns, horizon=horizon, quantiles=quantiles)
    for key, value in expected.items():
        np.testing.assert_allclose(got[key], value, rtol=1e-9, atol=1e-12, err_msg=key)


def test_scorer_for_a_panel_uses_its_returns_and_dates():
    dates = pd.date_range("2000-01-31", periods=30, freq="ME").to_numpy()
    rng = np.random.default_rng(4)
    close = 100 * np.cumprod(1 + rng.normal(0.01, 0.05, (30, 6)), axis=0)
    panel = Panel(dates=dates, assets=np.array(list("abcdef")), fields={"close": close})
    scorer = FactorScorer.for_panel(panel, quantiles=3)
    assert scorer.periods_per_year == 12
    factor = rng.normal(size=(30, 6))
    expected = factor_metrics(factor, panel.returns, quantiles=3, dates=dates)
    assert scorer.score(factor) == expected
