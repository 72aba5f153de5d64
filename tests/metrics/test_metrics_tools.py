"""The metrics agree with the standard tools on real data (DESIGN.md contract 5).

alphalens-reloaded for the rank IC, scipy for the Pearson IC, empyrical-reloaded for
Sharpe, CAGR and drawdown, statsmodels for the Newey-West t-statistic.
"""

from __future__ import annotations

import alphalens
import empyrical
import numpy as np
import pandas as pd
import pytest
from scipy import stats

from alphafactory.metrics import FactorScorer, factor_metrics, infer_periods_per_year
from tests.metrics import _realdata as data
from tests.metrics import _reference as ref

RTOL = 1e-10


@pytest.fixture(scope="module")
def industries():
    returns = data.industry_returns()
    return returns, data.momentum(returns, 12, 1)


@pytest.fixture(scope="module")
def macro():
    returns = data.macro_growth()
    return returns, data.momentum(returns, 2, 0)


HORIZONS = (1, 3)


@pytest.fixture(scope="module")
def alphalens_ic(industries):
    """alphalens' per-date rank IC for each horizon, on its exactly compounded returns.

    alphalens derives forward returns from prices (P[t+h] / P[t] - 1), which perturbs
    them by ~1e-17; these returns have four decimals, so two industries often tie
    exactly, and the perturbation breaks such ties at random and moves the rank IC by
    ~1e-2. The forward returns are therefore replaced by the contract's exact
    compounding (checked to agree with alphalens' to 1e-9 first).
    """
    returns, factor = industries
    stacked = factor.stack()
    stacked.index.names = ["date", "asset"]
    factor_data = alphalens.utils.get_clean_factor_and_forward_returns(
        stacked, (1.0 + returns).cumprod(), periods=HORIZONS, quantiles=5, max_loss=1.0
    )
    for column, horizon in zip(factor_data.columns, HORIZONS, strict=False):
        exact = pd.DataFrame(
            ref.forward_returns(data.as_arrays(returns), horizon),
            index=returns.index,
            columns=returns.columns,
        ).stack()
        exact = exact.loc[factor_data.index].to_numpy()
        np.testing.assert_allclose(factor_data[column], exact, rtol=1e-9)
        factor_data[column] = exact
    return alphalens.performance.factor_information_coefficient(factor_data)


@pytest.mark.parametrize("horizon", HORIZONS)
def test_rank_ic_per_date_matches_alphalens(industries, alphalens_ic, horizon):
    returns, factor = industries
    expected = alphalens_ic.iloc[:, HORIZONS.index(horizon)]
    scorer = FactorScorer(data.as_arrays(returns), horizon=horizon, dates=returns.index)
    ours = pd.Series(scorer.series(data.as_arrays(factor))["rank_ic"], index=returns.index)
    ours = ours.dropna()
    # alphalens keeps the dates that have every horizon's forward return: ours may go on
    assert ours.index[: len(expected)].equals(expected.index)
    assert len(ours) - len(expected) == max(HORIZONS) - horizon
    np.testing.assert_allclose(ours.iloc[: len(expected)], expected, rtol=RTOL, atol=1e-13)
    if horizon == max(HORIZONS):
        metrics = scorer.score(data.as_arrays(factor))
        assert metrics.rank_ic == pytest.approx(expected.mean(), rel=RTOL)
        ir = expected.mean() / expected.std(ddof=1)
        assert metrics.rank_icir == pytest.approx(ir, rel=RTOL)


def test_pearson_ic_per_date_matches_scipy(industries):
    returns, factor = industries
    r, x = data.as_arrays(returns), data.as_arrays(factor)
    series = FactorScorer(r, periods_per_year=12).series(x)["ic"]
    forward = returns.shift(-1)
    expected = {}
    for t, date in enumerate(returns.index):
        ok = factor.loc[date].notna() & forward.loc[date].notna()
        if ok.sum() >= 3:
            expected[t] = stats.pearsonr(factor.loc[date, ok], forward.loc[date, ok])[0]
    assert sorted(expected) == list(np.flatnonzero(np.isfinite(series)))
    np.testing.assert_allclose(series[list(expected)], list(expected.values()), rtol=RTOL)


@pytest.mark.parametrize("dataset", ["industries", "macro"])
def test_long_short_statistics_match_empyrical_and_statsmodels(request, dataset):
    returns, factor = request.getfixturevalue(dataset)
    r, x = data.as_arrays(returns), data.as_arrays(factor)
    ppy = infer_periods_per_year(returns.index)
    period = {12: "monthly", 4: "quarterly"}[ppy]
    metrics = factor_metrics(x, r, dates=returns.index.to_numpy())
    ls = FactorScorer(r, periods_per_year=ppy).series(x)["ls"]
    ls = ls[np.isfinite(ls)]
    assert metrics.n_periods == len(ls) > 100
    assert metrics.ls_sharpe == pytest.approx(empyrical.sharpe_ratio(ls, period=period), rel=RTOL)
    cagr = empyrical.annual_return(ls, period=period)
    assert metrics.ls_annual_return == pytest.approx(cagr, rel=RTOL)
    assert metrics.ls_max_drawdown == pytest.approx(-empyrical.max_drawdown(ls), rel=RTOL)
    assert metrics.hac_tstat == pytest.approx(ref.hac_tstat(ls), rel=RTOL)


@pytest.mark.parametrize("dataset", ["industries", "macro"])
@pytest.mark.parametrize("horizon", [1, 2])
def test_every_metric_matches_the_per_date_reference(request, dataset, horizon):
    returns, factor = request.getfixturevalue(dataset)
    r, x = data.as_arrays(returns), data.as_arrays(factor)
    ppy = infer_periods_per_year(returns.index)
    got = factor_metrics(x, r, horizon=horizon, periods_per_year=ppy).to_dict()
    expected = ref.reference_metrics(x, r, horizon=horizon, periods_per_year=ppy)
    for key, value in expected.items():
        np.testing.assert_allclose(got[key], value, rtol=RTOL, err_msg=key)


def test_real_data_has_the_expected_frequencies(industries, macro):
    assert infer_periods_per_year(industries[0].index) == 12
    assert infer_periods_per_year(macro[0].index) == 4
