"""Synthetic market: determinism, shapes, OHLC, planted IC, point-in-time macro releases."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from alphafactory.clock import visible_from
from alphafactory.data import DataError, synthetic_market
from alphafactory.data.releases import RELEASE_COLUMNS


@pytest.fixture(scope="module")
def market():
    return synthetic_market(
        n_assets=300,
        n_dates=400,
        n_macro=12,
        seed=11,
        planted=(("reversal", 0.06), ("volume_shock", 0.05)),
    )


def mean_ic(signal: np.ndarray, returns: np.ndarray, start: int) -> float:
    """Mean over dates of the cross-sectional Pearson correlation with next-period returns."""
    ics = [
        pd.Series(signal[t]).corr(pd.Series(returns[t + 1])) for t in range(start, len(signal) - 1)
    ]
    return float(np.nanmean(ics))


def test_seeded_determinism():
    a = synthetic_market(n_assets=20, n_dates=50, n_macro=4, seed=5, planted=(("reversal", 0.1),))
    b = synthetic_market(n_assets=20, n_dates=50, n_macro=4, seed=5, planted=(("reversal", 0.1),))
    c = synthetic_market(n_assets=20, n_dates=50, n_macro=4, seed=6, planted=(("reversal", 0.1),))
    for name in a.panel.fields:
        np.testing.assert_array_equal(a.panel.fields[name], b.panel.fields[name])
    pd.testing.assert_frame_equal(a.releases, b.releases)
    assert not np.array_equal(a.panel.fields["close"], c.panel.fields["close"])


def test_shapes_and_fields(market):
    panel = market.panel
    assert panel.shape == (400, 300)
    assert set(panel.fields) == {"close", "returns", "volume", "open", "high", "low"}
    assert all(v.dtype == np.float64 for v in panel.fields.values())
    assert len(panel.macro) == 12 and panel.groups["sector"].shape == (400, 300)
    assert list(market.releases.columns) == RELEASE_COLUMNS
    assert market.releases["event_id"].is_unique


def test_ohlc_consistency(market):
    f = market.panel.fields
    assert (f["high"] >= np.maximum(f["open"], f["close"])).all()
    assert (f["low"] <= np.minimum(f["open"], f["close"])).all()
    assert (f["low"] > 0).all() and (f["volume"] > 0).all()
    np.testing.assert_allclose(f["returns"][1:], f["close"][1:] / f["close"][:-1] - 1, atol=1e-14)
    np.testing.assert_allclose(market.panel.returns[1:], f["returns"][1:])


def test_monthly_frequency():
    m = synthetic_market(n_assets=10, n_dates=24, seed=1, frequency="M", n_sectors=0)
    dates = pd.DatetimeIndex(m.panel.dates)
    assert dates.is_month_end.all() and not m.panel.groups


def test_planted_ic_is_recovered(market):
    f = market.panel.fields
    planted = {s.name: s for s in market.planted}
    assert planted["reversal"].formula == "-ts_mean(returns, 5)"
    # the formula texts, recomputed here with pandas
    reversal = -pd.DataFrame(f["returns"]).rolling(5).mean().to_numpy()
    log_volume = pd.DataFrame(np.log(f["volume"]))
    shock = (log_volume - log_volume.rolling(20).mean()).to_numpy()
    for name, signal in (("reversal", reversal), ("volume_shock", shock)):
        spec = planted[name]
        assert np.isnan(signal[spec.first_valid - 1]).all()
        assert not np.isnan(signal[spec.first_valid]).any()
        realised = mean_ic(signal, f["returns"], spec.first_valid)
        assert realised == pytest.approx(spec.ic, abs=0.015), name
    # an unplanted formula has no IC
    assert abs(mean_ic(f["high"] / f["low"], f["returns"], 1)) < 0.015


def test_bad_arguments():
    with pytest.raises(DataError, match="'momentum'"):
        synthetic_market(n_assets=5, n_dates=5, seed=0, planted=(("momentum", 0.1),))
    with pytest.raises(DataError, match="'W'"):
        synthetic_market(n_assets=5, n_dates=5, seed=0, frequency="W")


def test_releases_after_period_end_with_revisions(market):
    rel = market.releases.merge(market.series, on="series_id")
    end = np.where(
        rel["frequency"] == "Q",
        rel["period"] + pd.offsets.QuarterEnd(0),
        rel["period"] + pd.offsets.MonthEnd(0),
    )
    period_end = pd.DatetimeIndex(end) + pd.Timedelta(days=1)  # midnight after the last day
    assert (rel["released_at"] > period_end.tz_localize("America/New_York")).all()
    counts = rel.groupby(["series_id", "period"]).size()
    assert counts.max() == 2 and (counts == 2).sum() > 10  # revisions exist
    revised = rel[rel.duplicated(["series_id", "period"], keep=False)]
    spans = revised.groupby(["series_id", "period"])["released_at"].agg(["min", "max"])
    assert (spans["max"] > spans["min"]).all()


def test_macro_arrays_are_point_in_time(market):
    """Oracle: at t, the newest period released by t, at its latest vintage released by t."""
    cutoffs = visible_from(market.panel.dates).asi8
    rel = market.releases
    for series_id, values in market.panel.macro.items():
        rows = rel[rel["series_id"] == series_id]
        times = rows["released_at"].array.asi8
        periods = rows["period"].to_numpy()
        for t, cutoff in enumerate(cutoffs):
            seen = times <= cutoff
            if not seen.any():
                assert np.isnan(values[t])
                continue
            newest = seen & (periods == periods[seen].max())
            latest = np.flatnonzero(newest)[np.argmax(times[newest])]
            assert values[t] == rows["value"].iloc[latest], (series_id, t)


def test_no_value_before_first_release(market):
    dates = pd.DatetimeIndex(market.panel.dates)
    cutoffs = visible_from(market.panel.dates)
    rel = market.releases
    for series_id, values in market.panel.macro.items():
        rows = rel[rel["series_id"] == series_id]
        first = rows["released_at"].min()
        assert np.isnan(values[cutoffs < first]).all()
        # each distinct shown value was released on or before the first date it shows up
        shown = pd.Series(values, index=dates).dropna().drop_duplicates()
        for day, value in shown.items():
            released = rows.loc[rows["value"] == value, "released_at"].min()
            assert released <= cutoffs[dates.get_loc(day)]
