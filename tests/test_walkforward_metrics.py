"""The walk-forward report's numbers against plain reference computations."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from alphafactory.walkforward import (
    alpha_survival,
    out_of_sample_ic,
    pool_size_answer,
    turnover,
    variant_record,
)


def _series(values, start="2000-01-31") -> pd.Series:
    return pd.Series(values, index=pd.date_range(start, periods=len(values), freq="ME"))


def test_a_variant_record_agrees_with_the_textbook_formulas():
    import statsmodels.api as sm

    rng = np.random.default_rng(3)
    r = _series(rng.normal(0.01, 0.04, 60))
    b = _series(rng.normal(0.005, 0.03, 60))
    weights = [{"A": 0.5, "B": 0.5}, {"A": 1.0}, {"B": 1.0}]
    record = variant_record(r, b, weights, periods_per_year=12, in_sample_sharpe=1.5)
    values, excess = r.to_numpy(), (r - b).to_numpy()
    assert record["n_rebalances"] == 3 and record["n_periods"] == 60
    assert record["cagr"] == pytest.approx(np.prod(1 + values) ** (12 / 60) - 1, rel=1e-12)
    assert record["volatility"] == pytest.approx(values.std(ddof=1) * np.sqrt(12), rel=1e-12)
    assert record["sharpe"] == pytest.approx(
        values.mean() / values.std(ddof=1) * np.sqrt(12), rel=1e-12
    )
    wealth = np.cumprod(1 + values)
    drawdown = np.max(1 - wealth / np.maximum.accumulate(np.r_[1.0, wealth])[1:])
    assert record["max_drawdown"] == pytest.approx(max(drawdown, 0.0), rel=1e-12)
    assert record["turnover"] == pytest.approx((0.5 + 1.0) / 2)
    assert record["excess_return"] == pytest.approx(excess.mean() * 12, rel=1e-12)
    assert record["information_ratio"] == pytest.approx(
        excess.mean() / excess.std(ddof=1) * np.sqrt(12), rel=1e-12
    )
    lags = int(np.floor(4 * (60 / 100) ** (2 / 9)))
    fit = sm.OLS(excess, np.ones(60)).fit(cov_type="HAC", cov_kwds={"maxlags": lags})
    assert record["excess_hac_tstat"] == pytest.approx(float(fit.tvalues[0]), rel=1e-9)
    assert record["in_sample_sharpe"] == 1.5


def test_the_sharpe_over_cash_subtracts_the_cash_return_and_is_null_without_cash():
    rng = np.random.default_rng(4)
    r = _series(rng.normal(0.01, 0.04, 48))
    cash = _series(np.linspace(0.001, 0.005, 48))
    record = variant_record(r, r * 0, [{"A": 1.0}], periods_per_year=12, cash=cash)
    over = (r - cash).to_numpy()
    assert record["sharpe_over_cash"] == pytest.approx(
        over.mean() / over.std(ddof=1) * np.sqrt(12), rel=1e-12
    )
    assert record["sharpe_over_cash"] < record["sharpe"]
    assert variant_record(r, r * 0, [{"A": 1.0}], periods_per_year=12)["sharpe_over_cash"] is None


def test_a_benchmark_date_missing_counts_as_zero_and_turnover_needs_two():
    r = _series([0.01, 0.02])
    record = variant_record(r, _series([0.01]), [{"A": 1.0}], periods_per_year=12)
    assert record["excess_return"] == pytest.approx((0.0 + 0.02) / 2 * 12)
    assert np.isnan(turnover([{"A": 1.0}]))


def test_alpha_survival_counts_runs_of_consecutive_membership():
    pools = [["a", "b"], ["a", "b"], ["a"], ["b"], []] + [["c"]] * 12
    survival = alpha_survival(pools)
    # a: one run of 3; b: runs of 2 and 1; c: 12 (still open at the end)
    assert survival["runs"] == 4
    assert survival["mean"] == pytest.approx((3 + 2 + 1 + 12) / 4)
    assert survival["median"] == pytest.approx(2.5)
    assert survival["share_12"] == pytest.approx(0.25)
    assert alpha_survival([[], []])["runs"] == 0


def test_the_pool_size_answer_compares_the_largest_with_the_smallest():
    records = {
        "pool10": {"sharpe": 0.2, "cagr": 0.02, "in_sample_sharpe": 1.4},
        "pool100": {"sharpe": 0.5, "cagr": 0.05, "in_sample_sharpe": 0.9},
        "pool25": {"sharpe": 0.3, "cagr": 0.03, "in_sample_sharpe": 1.1},
        "random": {"sharpe": 0.9, "cagr": 0.1, "in_sample_sharpe": 0.0},
    }
    answer = pool_size_answer(records)
    assert [row["pool_size"] for row in answer["rows"]] == [10, 25, 100]
    assert answer["largest_beats_smallest"] and answer["monotone"]
    assert answer["sharpe_gain"] == pytest.approx(0.3)
    assert answer["overfit_reduction"] == pytest.approx((1.4 - 0.2) - (0.9 - 0.5))
    assert "sharpe_gain" not in pool_size_answer({"pool10": records["pool10"]})


def test_the_out_of_sample_ic_is_the_mean_spearman_with_its_newey_west_t():
    import statsmodels.api as sm
    from scipy.stats import spearmanr

    rng = np.random.default_rng(8)
    held = rng.normal(0.0, 0.05, (40, 12))
    signals = 0.3 * held + rng.normal(0.0, 0.05, (40, 12))
    signals[5] = np.nan  # a decision with no alpha: no signal, no IC
    signals[7, :10] = np.nan  # two assets only: no IC
    held[9, 3] = np.nan  # an asset with no held return drops out of that decision
    record = out_of_sample_ic(signals, held)
    expected = []
    for s, h in zip(signals, held, strict=True):
        known = np.isfinite(s) & np.isfinite(h)
        if known.sum() >= 3:
            expected.append(spearmanr(s[known], h[known]).statistic)
    assert record["oos_ic_decisions"] == len(expected) == 38
    assert record["oos_ic"] == pytest.approx(np.mean(expected), rel=1e-12)
    lags = int(np.floor(4 * (38 / 100) ** (2 / 9)))
    fit = sm.OLS(np.array(expected), np.ones(38)).fit(cov_type="HAC", cov_kwds={"maxlags": lags})
    assert record["oos_ic_t"] == pytest.approx(float(fit.tvalues[0]), rel=1e-9)
    assert record["oos_ic_t"] > 3  # a signal that ranks what was held
    nothing = out_of_sample_ic(np.full((3, 4), np.nan), held[:3, :4])
    assert nothing["oos_ic_decisions"] == 0 and np.isnan(nothing["oos_ic"])


def test_bootstrap_intervals_bracket_the_ratios_and_the_detectable_ir_shrinks_with_years():
    from alphafactory.walkforward import min_detectable_ir

    rng = np.random.default_rng(4)
    r = _series(rng.normal(0.01, 0.04, 240))
    b = _series(rng.normal(0.005, 0.03, 240))
    record = variant_record(r, b, [{"A": 1.0}], periods_per_year=12)
    low, high = record["sharpe_ci"]
    assert low < record["sharpe"] < high and high - low < 1.5
    low, high = record["information_ratio_ci"]
    assert low < record["information_ratio"] < high
    again = variant_record(r, b, [{"A": 1.0}], periods_per_year=12)
    assert again["sharpe_ci"] == record["sharpe_ci"]  # a fixed seed: the same interval
    # 20 years: (1.96 + 0.84) / sqrt(20)
    assert record["min_detectable_ir"] == pytest.approx(2.8016 / np.sqrt(20), rel=1e-3)
    assert min_detectable_ir(60, 12) > record["min_detectable_ir"]
    short = variant_record(r[:12], b[:12], [{"A": 1.0}], periods_per_year=12)
    assert short["sharpe_ci"] is None and short["information_ratio_ci"] is None
