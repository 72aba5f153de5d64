"""Bulk loads and the decision panel read back from Postgres (consumers.market_data)."""

from __future__ import annotations

from datetime import UTC

import numpy as np
import pandas as pd
import pytest

from alphafactory.data import synthetic_market
from alphafactory.decision import decision_panel
from alphafactory.strategy import Strategy
from consumers.market_data import PanelCache, market_panel, strategy_panel
from storage.loading import load_panel, load_releases


@pytest.fixture(scope="module")
def market():
    return synthetic_market(n_assets=5, n_dates=60, n_macro=3, seed=11, frequency="M")


def test_a_loaded_dataset_reads_back_as_the_same_point_in_time_panel(fresh_db, market):
    import psycopg

    from storage.admin import prepare_database

    settings = fresh_db()
    prepare_database(settings)
    with psycopg.connect(settings.dsn("app"), autocommit=True) as conn:
        columns = len(market.panel.fields) + len(market.panel.groups)
        assert load_panel(conn, market.panel) == 60 * 5 * columns
        assert load_releases(conn, market.releases) == len(market.releases)
        assert load_panel(conn, market.panel) == 0 and load_releases(conn, market.releases) == 0
        when = (pd.Timestamp(market.panel.dates[40]) + pd.Timedelta(days=9, hours=14)).tz_localize(
            UTC
        )
        stored = market_panel(conn, when)
        assert stored.dates[-1] == market.panel.dates[40]  # later rows not yet available
        np.testing.assert_array_equal(stored.returns, market.panel.returns[:41])
        for name, codes in market.panel.groups.items():
            np.testing.assert_array_equal(stored.groups[name], codes[:41])
        strategy = Strategy.model_validate({"id": "s", "alpha": {"training_months": 24}})
        from_db = strategy_panel(conn, strategy, when)
        releases = market.releases[market.releases["released_at"] <= when]
        direct = decision_panel(market.panel, releases, when, 24 + 120)
        assert set(from_db.macro) == set(direct.macro)
        for name, values in direct.macro.items():
            np.testing.assert_array_equal(from_db.macro[name], values)
        cache = PanelCache(size=1)
        assert cache.get(conn, strategy, when) is cache.get(conn, strategy, when)
        # another strategy on the same data (a baseline variant) shares the panel
        same_data = strategy.model_copy(update={"id": "s@random"})
        assert cache.get(conn, same_data, when) is cache.get(conn, strategy, when)
        fewer = strategy.model_copy(
            update={
                "universe": strategy.universe.model_copy(
                    update={"assets": tuple(stored.assets[:2])}
                )
            }
        )
        assert list(cache.get(conn, fewer, when).assets) == list(stored.assets[:2])


def test_a_decision_sees_what_was_stored_before_its_trigger_whatever_arrives_later(
    fresh_db, market
):
    import psycopg

    from storage.admin import prepare_database
    from storage.macro import record_macro_observation

    settings = fresh_db()
    prepare_database(settings)
    series = sorted(market.releases["series_id"].unique())
    when = (pd.Timestamp(market.panel.dates[40]) + pd.Timedelta(days=20)).tz_localize(UTC)
    period = pd.Timestamp(market.panel.dates[40]).date()
    strategy = Strategy.model_validate({"id": "s", "alpha": {"training_months": 24}})

    def release(series_id: str, value: float) -> dict:
        event_id = f"{series_id}:{period}:at-decision"
        return dict(
            series_id=series_id, period=period, value=value, released_at=when, event_id=event_id
        )

    with psycopg.connect(settings.dsn("app"), autocommit=True) as conn:
        load_panel(conn, market.panel)
        load_releases(conn, market.releases[market.releases["released_at"] < when])
        trigger = release(series[0], 1.0)
        record_macro_observation(conn, **trigger)
        cache = PanelCache()
        before = cache.get(conn, strategy, when, trigger["event_id"])
        # a release of the same instant (or a late one) stored after the trigger
        record_macro_observation(conn, **release(series[1], 99.0))
        again = PanelCache().get(conn, strategy, when, trigger["event_id"])
        everything = PanelCache().get(conn, strategy, when)
    assert before.macro[series[0]][-1] == 1.0
    for name, values in before.macro.items():  # a fresh cache rebuilds the same panel
        np.testing.assert_array_equal(again.macro[name], values)
    assert everything.macro[series[1]][-1] == 99.0  # without a trigger: all stored by now
    assert before.macro[series[1]][-1] != 99.0
