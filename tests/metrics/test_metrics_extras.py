"""IC decay and correlations with reference factors and a pool, against pandas / scipy."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from alphafactory.metrics import (
    MetricsError,
    factor_correlations,
    factor_metrics,
    ic_decay,
    max_abs_correlation,
)
from tests.metrics import _realdata as data

RTOL = 1e-10


@pytest.fixture(scope="module")
def panel():
    returns = data.industry_returns().iloc[-240:]
    signals = [
        data.momentum(returns, 12, 1),
        data.momentum(returns, 3, 0),
        data.momentum(returns, 24, 12),
        -data.momentum(returns, 12, 1),
    ]
    return data.as_arrays(returns), np.stack([data.as_arrays(s) for s in signals])


def test_ic_decay_matches_metrics_at_each_horizon(panel):
    returns, factors = panel
    decay = ic_decay(factors[0], returns, [1, 2, 6])
    assert list(decay) == [1, 2, 6]
    for horizon, (ic, rank_ic) in decay.items():
        metrics = factor_metrics(factors[0], returns, horizon=horizon, periods_per_year=12)
        assert ic == pytest.approx(metrics.ic, rel=RTOL)
        assert rank_ic == pytest.approx(metrics.rank_ic, rel=RTOL)
    with pytest.raises(MetricsError, match="horizons must be integers >= 1"):
        ic_decay(factors[0], returns, [1, 0])


def _pandas_mean_correlation(a: np.ndarray, b: np.ndarray, method: str) -> float:
    frame_a, frame_b = pd.DataFrame(a).T, pd.DataFrame(b).T  # assets x dates
    values = []
    for date in frame_a.columns:
        ok = frame_a[date].notna() & frame_b[date].notna()
        if ok.sum() >= 3:
            tool = stats.pearsonr if method == "pearson" else stats.spearmanr
            values.append(tool(frame_a.loc[ok, date], frame_b.loc[ok, date])[0])
    return float(np.mean(values))


@pytest.mark.parametrize("method", ["pearson", "spearman"])
def test_factor_correlations_match_scipy_per_date(panel, method):
    _, factors = panel
    got = factor_correlations(factors[0], factors[1:], method=method)
    expected = [_pandas_mean_correlation(factors[0], ref, method) for ref in factors[1:]]
    np.testing.assert_allclose(got, expected, rtol=RTOL)
    assert got[-1] == pytest.approx(-1.0)  # the negated factor


def test_max_abs_correlation_with_a_pool(panel):
    _, factors = panel
    assert max_abs_correlation(factors[0], factors[1:3]) == pytest.approx(
        np.max(np.abs(factor_correlations(factors[0], factors[1:3])))
    )
    assert max_abs_correlation(factors[0], factors[1:]) == pytest.approx(1.0)
    assert max_abs_correlation(factors[0], factors[:0]) == 0.0
    assert np.isnan(max_abs_correlation(factors[0], np.full((1,) + factors[0].shape, np.nan)))
    with pytest.raises(MetricsError, match="unknown correlation method"):
        factor_correlations(factors[0], factors[1:], method="kendall")
