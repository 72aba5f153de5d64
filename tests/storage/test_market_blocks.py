"""Bulk market blocks on the real Postgres: COPY round trip, reloads store nothing, an
overlapping load stores only what is new, a contradiction is refused whole, revisions and
single-row observations (events) resolve together as of any time."""

from __future__ import annotations

import uuid
from datetime import UTC, date, datetime, timedelta

import numpy as np
import pandas as pd
import pytest

from alphafactory.observations import MarketObservations
from storage.errors import InvalidRecordError
from storage.loading import load_observations
from storage.market import latest_as_of, market_as_of, record_market_observations
from storage.market_reads import read_observations


def observations(assets, days, available, **fields) -> MarketObservations:
    names, index = np.unique(np.asarray(assets, str), return_inverse=True)
    return MarketObservations(
        asset_names=names,
        asset_index=index,
        dates=np.asarray(days, "datetime64[D]"),
        available_at=pd.to_datetime(available, utc=True)
        .tz_localize(None)
        .to_numpy("datetime64[us]"),
        fields={k: np.asarray(v, np.float64) for k, v in fields.items()},
    )


@pytest.fixture
def assets():
    tag = uuid.uuid4().hex[:8]
    return [f"blk_{tag}_a", f"blk_{tag}_b"]


def grid(assets, n_days=5, **extra):
    """Every asset on ``n_days`` dates from 2020-01-01, available at noon UTC the next day."""
    days = np.repeat(np.arange(n_days), len(assets)) + np.datetime64("2020-01-01", "D")
    available = days.astype("datetime64[us]") + np.timedelta64(36, "h")
    rng = np.random.default_rng(0)  # a longer grid extends a shorter one
    close = rng.standard_normal(len(days))
    close[1] = np.nan  # a vintage without a value survives the round trip
    return observations(np.tile(assets, n_days), days, available, close=close, **extra)


def test_a_load_round_trips_and_a_reload_stores_nothing(app_conn, assets):
    load = grid(assets, volume=np.arange(10.0))
    assert load_observations(app_conn, load) == 20
    assert load_observations(app_conn, load) == 0
    back = read_observations(app_conn, assets=assets)
    order = np.lexsort((back.days, back.assets.astype(str), back.fields.astype(str)))
    expected = pd.DataFrame(
        {"asset": load.assets, "date": load.dates, "close": load.fields["close"]}
    )
    expected = expected.sort_values(["asset", "date"])
    closes = order[back.fields[order] == "close"]
    np.testing.assert_array_equal(back.values[closes], expected["close"].to_numpy())
    np.testing.assert_array_equal(back.assets[closes].astype(str), expected["asset"].to_numpy())
    view = app_conn.execute(
        "SELECT count(*) FROM core.market_observations_all WHERE asset = ANY(%s)", (assets,)
    ).fetchone()[0]
    assert view == 20


def test_an_overlapping_load_stores_only_the_new_observations(app_conn, assets):
    assert load_observations(app_conn, grid(assets, n_days=5)) == 10
    assert load_observations(app_conn, grid(assets, n_days=8)) == 6
    assert len(read_observations(app_conn, assets=assets).days) == 16


def test_a_different_value_for_a_stored_key_is_refused_and_nothing_is_stored(app_conn, assets):
    load_observations(app_conn, grid(assets, n_days=3))
    changed = grid(assets, n_days=4)
    changed.fields["close"][4] += 1.0  # asset a, 2020-01-03, same available_at
    with pytest.raises(InvalidRecordError, match=r"2020-01-03.*a revision needs a later"):
        load_observations(app_conn, changed)
    assert len(read_observations(app_conn, assets=assets).days) == 6


def test_a_load_with_a_repeated_key_is_refused(app_conn, assets):
    at = np.datetime64("2020-01-02T12:00", "us")
    twice = observations([assets[0]] * 2, ["2020-01-01"] * 2, [at, at], close=[1.0, 2.0])
    with pytest.raises(InvalidRecordError, match=r"twice with the same available_at"):
        load_observations(app_conn, twice)


def test_revisions_and_event_rows_resolve_together_as_of_any_time(app_conn, assets):
    asset = assets[0]
    first = datetime(2020, 1, 2, 12, tzinfo=UTC)
    revised = first + timedelta(days=3)
    event = revised + timedelta(days=3)
    load_observations(
        app_conn,
        observations([asset] * 2, ["2020-01-01"] * 2, [first, revised], close=[10.0, 11.0]),
    )
    row = {"asset": asset, "date": date(2020, 1, 1), "field": "close", "value": 12.0}
    record_market_observations(
        app_conn, observations=pd.DataFrame([{**row, "available_at": event}])
    )

    def close_as_of(when):
        frame = market_as_of(app_conn, as_of=when, assets=[asset], fields=["close"])
        return frame["value"].tolist()

    assert close_as_of(first - timedelta(microseconds=1)) == []
    assert close_as_of(first) == [10.0]
    assert close_as_of(revised) == [11.0]
    assert close_as_of(event) == [12.0]
    # a bulk load of the event's own vintage is already held: nothing new
    again = observations([asset], ["2020-01-01"], [event], close=[12.0])
    assert load_observations(app_conn, again) == 0


def test_latest_as_of_bounds_dates(app_conn, assets):
    load_observations(app_conn, grid(assets, n_days=6))
    latest = latest_as_of(
        app_conn,
        as_of=datetime(2030, 1, 1, tzinfo=UTC),
        assets=assets,
        start=date(2020, 1, 2),
        end=date(2020, 1, 4),
    )
    days = np.unique(latest.days.astype("datetime64[D]"))
    assert days.tolist() == [date(2020, 1, 2), date(2020, 1, 3), date(2020, 1, 4)]
    assert len(latest.days) == 6


def test_sorted_codes_are_numpys_unique_and_inverse():
    from storage.market import sorted_codes

    rng = np.random.default_rng(3)
    names = np.array(["b", "a", "Z", "a_1", "é", "b", "a"], dtype=object)[rng.integers(0, 7, 500)]
    expected = np.unique(names.astype(str), return_inverse=True)
    got = sorted_codes(names)
    np.testing.assert_array_equal(got[0], expected[0])
    np.testing.assert_array_equal(got[1], expected[1])
