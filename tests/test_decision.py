"""One decision: the point-in-time panel, qualification and allocation (alphafactory.decision)."""

from __future__ import annotations

from datetime import UTC, datetime

import numpy as np
import pandas as pd
import pytest

from alphafactory.clock import visible_from
from alphafactory.constructions import Market, construction
from alphafactory.data import synthetic_market
from alphafactory.decision import (
    EXECUTION_LAG,
    DecisionError,
    allocate,
    alpha_signals,
    benchmark_weights,
    decision_panel,
    evaluate_formulas,
    position_rule,
)
from alphafactory.evaluate import evaluate
from alphafactory.metrics import parse_definition
from alphafactory.panel import Panel
from alphafactory.risk import shrunk_risk
from alphafactory.strategy import Strategy

STRATEGY = Strategy.model_validate(
    {
        "id": "test",
        "alpha": {"definition": "hac_tstat >= 1", "training_months": 60},
        "pool": {"size": 3, "max_correlation": 0.9, "probation": 0},
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
    # each earlier row is the decision row's twin: what a decision made as long after
    # that row's close would have seen on its last row
    offset = pd.Timestamp(when) - visible_from(market.panel.dates[120:121])[0]
    for row in (21, 60, 119):
        twin = visible_from(market.panel.dates[row : row + 1])[0] + offset
        earlier = decision_panel(
            market.panel, released_by(market.releases, twin), twin.to_pydatetime(), 10
        )
        assert earlier.dates[-1] == market.panel.dates[row]
        for name, values in earlier.macro.items():
            np.testing.assert_array_equal(values[-1], panel.macro[name][row - 21], err_msg=name)


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
    # what is scored is what would be held (issue 30, item 3): at every row of the window
    # the strategy's tilt of that row's risk parity built from the formula alone (within
    # its tracking-error budget on that row's shrunk risk), its active return earned over
    # the period after next (EXECUTION_LAG)
    window = range(140 - 1 - 60, 140)
    signals = alpha_signals(panel, STRATEGY, FORMULAS)  # the per-asset forecasts
    definition = parse_definition("hac_tstat >= 1")
    sizing = position_rule(STRATEGY, 12).sizing
    for result, signal in zip(results, signals, strict=False):
        active = []
        for row in window:
            later = row + 1 + EXECUTION_LAG
            if later >= len(panel.dates) or not np.isfinite(signal[row]).any():
                continue
            mix = benchmark_weights(panel, STRATEGY, row + 1)
            risk = shrunk_risk(panel.returns[max(0, row + 1 - 36) : row + 1])
            tilt = construction("tilt").positions(signal[row], sizing, Market(mix, [risk]))
            held = tilt - mix
            active.append(np.nansum(held * panel.returns[later]))
        expected = hac_tstat(np.array(active))
        assert result.metrics.n_periods == len(active)
        assert result.metrics.hac_tstat == pytest.approx(expected, rel=1e-9, nan_ok=True)
        assert result.qualified == bool(definition.evaluate(result.metrics))
    assert results[-1].metrics is None and not results[-1].qualified


def hac_tstat(series: np.ndarray) -> float:
    """statsmodels' Newey-West t of the mean, the rule-of-thumb lags (contract 5)."""
    import statsmodels.api as sm

    lags = int(np.floor(4 * (len(series) / 100) ** (2 / 9)))
    fit = sm.OLS(series, np.ones(len(series))).fit(cov_type="HAC", cov_kwds={"maxlags": lags})
    return float(fit.tvalues[0])


def test_allocation_tilts_the_risk_parity_mix_within_the_limit(market):
    when = decision_time(market, 150)
    panel = decision_panel(market.panel, released_by(market.releases, when), when, 140)
    allocation = allocate(panel, STRATEGY, FORMULAS, scores=np.arange(len(FORMULAS), 0, -1.0))
    weights = np.array(list(allocation.weights.values()))
    assert list(allocation.weights) == [str(a) for a in panel.assets]
    assert np.isclose(weights.sum(), 1.0) and (weights >= 0).all()
    assert 1 <= len(allocation.pool) <= 3 and set(allocation.pool) <= set(FORMULAS)
    # the same construction over the training window: what overfit compares like for like
    assert np.isfinite(allocation.in_sample_sharpe)
    assert np.isclose(sum(abs(w) for w in allocation.pool.values()), 1.0)
    empty = allocate(panel, STRATEGY, [], scores=[])
    assert empty.pool == {} and np.isclose(sum(empty.weights.values()), 1.0)
    benchmark = np.array(list(empty.weights.values()))
    assert np.abs(weights - benchmark).max() <= 0.05 + 1e-9
    assert (np.abs(weights - benchmark) <= benchmark + 1e-9).all()  # nothing shorted


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


def _index_market(release_lag_months: int) -> tuple[Panel, pd.DataFrame]:
    """Ten years of month ends and one monthly series whose value is its period's index
    (months since 2000-01), each period released on the 5th of the month after its end
    plus ``release_lag_months``: ``delta(IDX, L)`` is L wherever it spans L periods."""
    dates = pd.date_range("2000-01-31", periods=120, freq="ME")
    periods = pd.date_range("1999-01-01", periods=140, freq="MS")
    released = (periods + pd.DateOffset(months=1 + release_lag_months, days=4)).tz_localize(
        "America/New_York"
    ) + pd.Timedelta(hours=8, minutes=30)
    releases = pd.DataFrame(
        {
            "series_id": "IDX",
            "period": periods,
            "value": np.arange(len(periods), dtype=float),
            "released_at": released.tz_convert("UTC"),
            "event_id": [f"IDX:{p:%Y-%m}" for p in periods],
        }
    )
    rng = np.random.default_rng(0)
    close = 100 * np.cumprod(1 + 0.01 * rng.standard_normal((120, 3)), axis=0)
    panel = Panel(
        dates.to_numpy("datetime64[ns]"), np.array(["A", "B", "C"]), {"close": close}, {}, {}
    )
    return panel, releases


@pytest.mark.parametrize("release_lag_months", [0, 1])
@pytest.mark.parametrize("days_after_close", [1, 9, 20])
def test_the_decision_row_spans_the_same_periods_as_the_training_rows(
    release_lag_months, days_after_close
):
    market, releases = _index_market(release_lag_months)
    # a decision some days after the last month end: often just after a new release
    when = pd.Timestamp(market.dates[100]) + pd.Timedelta(days=days_after_close, hours=15)
    when = when.tz_localize("UTC").to_pydatetime()
    panel = decision_panel(market, released_by(releases, when), when, 80)
    newest = released_by(releases, when)["value"].max()
    assert panel.macro["IDX"][-1] == newest  # the decision sees the newest release
    for lag in (1, 3, 12):
        spans = evaluate(f"delta(IDX, {lag})", panel)
        known = spans[np.isfinite(spans)]
        assert len(known) >= 60 and np.all(known == lag), (lag, np.unique(known))
        assert spans[-1] == lag


def test_a_series_that_stopped_goes_missing_after_its_cadence_multiple():
    market, releases = _index_market(0)
    stopped = releases[releases["period"] < "2004-01-01"]  # the last release: 2004-01-05
    when = (pd.Timestamp(market.dates[100]) + pd.Timedelta(days=10)).tz_localize("UTC")
    panel = decision_panel(market, released_by(stopped, when), when.to_pydatetime(), 101)
    values = panel.macro["IDX"]
    dates = pd.DatetimeIndex(panel.dates)
    # shown while within 3 months of its last release (rows see it 10 days after close)
    assert np.isfinite(values[dates <= "2004-03-31"]).sum() >= 40
    assert np.isnan(values[dates >= "2004-04-30"]).all() and np.isnan(values[-1])
    kept = decision_panel(
        market, released_by(stopped, when), when.to_pydatetime(), 101, stale_after=None
    )
    assert kept.macro["IDX"][-1] == stopped["value"].max()  # carried forward when asked
