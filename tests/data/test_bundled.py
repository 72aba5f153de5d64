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
    assert panel.shape == (600, 21)  # 1960-01..2009-12, 12 industries + 9 size/value
    assert pd.DatetimeIndex(panel.dates).is_month_end.all()
    assert set(panel.macro) == set(RELEASE_RULES)
    assert list(market.releases.columns) == RELEASE_COLUMNS
    assert market.releases["event_id"].is_unique
    assert not np.isnan(panel.returns).any()
    np.testing.assert_allclose(
        panel.fields["close"][1:] / panel.fields["close"][:-1] - 1, panel.returns[1:], atol=1e-12
    )


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
