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
