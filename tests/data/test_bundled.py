"""Bundled real dataset: offline build, release timing, no look-ahead in the macro arrays."""

from __future__ import annotations

import socket

import numpy as np
import pandas as pd
import pytest

from alphafactory.clock import visible_from
from alphafactory.data.releases import RELEASE_COLUMNS

pytest.importorskip("arch")
pytest.importorskip("linearmodels")
pytest.importorskip("statsmodels")

from alphafactory.data.bundled import RELEASE_RULES, bundled_market  # noqa: E402
from alphafactory.data.bundled_assets import ASSET_CLASSES, bond_duration  # noqa: E402


@pytest.fixture(scope="module")
def market(monkeypatch_module):
    return bundled_market()


@pytest.fixture(scope="module")
def monkeypatch_module():
    """Any network use during the build fails loudly: the dataset must build offline."""
    patch = pytest.MonkeyPatch()

    def refuse(*args, **kwargs):
        raise AssertionError("the bundled dataset tried to open a network connection")

    patch.setattr(socket.socket, "connect", refuse)
    patch.setattr(socket, "create_connection", refuse)
    yield patch
    patch.undo()


def test_builds_offline_with_expected_shape(market):
    panel = market.panel
    # 1960-01..2017-03: the market, 12 industries, 9 size/value, 2 bonds, oil, cash
    assert panel.shape == (687, 26)
    assert pd.DatetimeIndex(panel.dates).is_month_end.all()
    assert set(panel.macro) == set(RELEASE_RULES)
    assert list(market.releases.columns) == RELEASE_COLUMNS
    assert market.releases["event_id"].is_unique
    oil = list(panel.assets).index("OIL_WTI")
    first_oil = int(np.argmax(np.isfinite(panel.returns[:, oil])))
    assert str(panel.dates[first_oil])[:7] == "1986-02"  # the daily WTI series starts 1986-01
    others = np.delete(panel.returns, oil, axis=1)
    assert not np.isnan(others).any() and not np.isnan(panel.returns[first_oil:]).any()
    close, returns = panel.fields["close"][first_oil:], panel.returns[first_oil:]
    np.testing.assert_allclose(close[1:] / close[:-1] - 1, returns[1:], atol=1e-12)
    assert np.isnan(panel.fields["close"][:first_oil, oil]).all()


def test_asset_classes_and_returns_follow_their_sources(market):
    from arch.data import default, wti
    from linearmodels.datasets import french

    panel = market.panel
    names = list(panel.assets)
    classes = dict(zip(names, panel.groups["asset_class"][-1], strict=True))
    assert {classes[n] for n in ("US_EQUITY", "NoDur", "S5V5")} == {ASSET_CLASSES["equity"]}
    assert classes["US_AAA_BOND"] == classes["US_BAA_BOND"] == ASSET_CLASSES["bonds"]
    assert classes["OIL_WTI"] == ASSET_CLASSES["commodities"]
    assert classes["CASH"] == ASSET_CLASSES["cash"]
    returns = pd.DataFrame(panel.returns, index=pd.DatetimeIndex(panel.dates), columns=names)
    ff = french.load().set_index("dates")
    assert returns.loc["2008-10-31", "US_EQUITY"] == pytest.approx(
        ff.loc["2008-10-01", "MktRF"] + ff.loc["2008-10-01", "RF"]
    )
    assert returns.loc["2008-10-31", "CASH"] == pytest.approx(ff.loc["2008-10-01", "RF"])
    # oil: the last daily price of October 2008 over that of September
    daily = wti.load()["DCOILWTICO"].dropna()
    sep, oct_ = daily.loc["2008-09"].iloc[-1], daily.loc["2008-10"].iloc[-1]
    assert returns.loc["2008-10-31", "OIL_WTI"] == pytest.approx(oct_ / sep - 1)
    # bonds: a month's carry at last month's yield minus duration times the yield change
    yields = default.load()["BAA"] / 100
    y0, y1 = yields.loc["2008-09-01"], yields.loc["2008-10-01"]
    duration = (1 - (1 + y0 / 2) ** -40) / y0
    assert returns.loc["2008-10-31", "US_BAA_BOND"] == pytest.approx(y0 / 12 - duration * (y1 - y0))


def test_bond_duration_is_that_of_a_twenty_year_par_bond():
    # price of a 20-year 7% semi-annual par bond under a 1bp move, by discounting its flows
    def price(y: float) -> float:
        t = np.arange(1, 41)
        return float((3.5 / (1 + y / 2) ** t).sum() + 100 / (1 + y / 2) ** 40)

    bump = 1e-5
    numeric = -(price(0.07 + bump) - price(0.07 - bump)) / (2 * bump) / price(0.07)
    assert bond_duration(np.array([0.07]))[0] == pytest.approx(numeric, rel=1e-6)
    assert 10 < numeric < 11


def test_release_times_strictly_after_period_end(market):
    rel = market.releases.merge(market.series, on="series_id")
    quarterly = rel["frequency"] == "Q"
    end = np.where(
        quarterly, rel["period"] + pd.offsets.QuarterEnd(0), rel["period"] + pd.offsets.MonthEnd(0)
    )
    after_last_day = (pd.DatetimeIndex(end) + pd.Timedelta(days=1)).tz_localize("America/New_York")
    assert (rel["released_at"] > after_last_day).all()
    assert str(rel["released_at"].dt.tz) == "UTC"
    # 08:30 New York is 13:30 UTC in winter and 12:30 UTC in summer
    gdp = rel.loc[rel["series_id"] == "us_realgdp", "released_at"]
    local = gdp.dt.tz_convert("America/New_York")
    assert (local.dt.strftime("%H:%M") == "08:30").all()
    assert set(gdp.dt.hour) == {12, 13}


def test_macro_arrays_have_no_look_ahead(market):
    cutoffs = visible_from(market.panel.dates)
    rel = market.releases
    for series_id, values in market.panel.macro.items():
        rows = rel[rel["series_id"] == series_id].sort_values("released_at")
        times = rows["released_at"].array.asi8
        k = np.searchsorted(times, cutoffs.asi8, side="right") - 1
        # one vintage per period, released in period order: the latest release is the value
        expected = np.where(k >= 0, rows["value"].to_numpy()[np.maximum(k, 0)], np.nan)
        np.testing.assert_array_equal(values, expected, err_msg=series_id)


def test_gdp_for_a_quarter_is_not_seen_at_quarter_end(market):
    dates = pd.DatetimeIndex(market.panel.dates)
    gdp = pd.Series(market.panel.macro["us_realgdp"], index=dates)
    rel = market.releases.set_index(["series_id", "period"])["value"]
    # at 2000-03-31 the newest GDP is 1999Q4 (released end of January), not 2000Q1
    assert gdp["2000-03-31"] == rel[("us_realgdp", pd.Timestamp("1999-10-01"))]
    assert gdp["2000-04-30"] == rel[("us_realgdp", pd.Timestamp("1999-10-01"))]
    assert gdp["2000-05-31"] == rel[("us_realgdp", pd.Timestamp("2000-01-01"))]


def test_the_bundled_stocks_are_daily_closes_and_their_returns(monkeypatch_module):
    from alphafactory.data.bundled_stocks import bundled_stocks

    pytest.importorskip("skfolio")
    panel = bundled_stocks()
    assert panel.shape == (8313, 20)  # 1990-01-02..2022-12-28, the file's trading days
    assert str(panel.dates[0])[:10] == "1990-01-02" and str(panel.dates[-1])[:10] == "2022-12-28"
    assert {"AAPL", "MSFT", "XOM"} <= set(panel.assets) and len(set(panel.assets)) == 20
    close, returns = panel.fields["close"], panel.fields["returns"]
    assert np.isfinite(close).all() and (close > 0).all()
    assert np.isnan(returns[0]).all()
    np.testing.assert_allclose(returns[1:], close[1:] / close[:-1] - 1, rtol=0, atol=1e-15)
    assert len(bundled_stocks(start="2022-01-01").dates) < 260
