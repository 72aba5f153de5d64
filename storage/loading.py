"""Bulk loads of a dataset into the point-in-time stores (the demo's and a deployment's
seed data). Idempotent: loading the same data twice adds nothing.

Market data: each (date, asset, field) of a panel becomes available at the end of its
date's New York day, the panel's own visibility rule (``alphafactory.clock``), and is
stored in columnar blocks (``storage.market_blocks``); a group's integer codes are stored
as the field ``group:<name>`` (``alphafactory.observations.GROUP_PREFIX``). Macro releases
keep their release times.
"""

from __future__ import annotations

import pandas as pd
import psycopg

from alphafactory.observations import MarketObservations
from alphafactory.panel import Panel
from storage.macro import MacroObservation, record_macro_observations
from storage.market_blocks import store_blocks


def load_panel(conn: psycopg.Connection, panel: Panel) -> int:
    """Store every field and group of ``panel``; returns how many observations were new."""
    return load_observations(conn, MarketObservations.from_panel(panel))


def load_observations(conn: psycopg.Connection, observations: MarketObservations) -> int:
    """Store market observations (a file's, with their own availability); returns how many
    were new."""
    with conn.transaction():
        return store_blocks(conn, observations)


def load_releases(conn: psycopg.Connection, releases: pd.DataFrame) -> int:
    """Store a releases frame (``alphafactory.data.releases`` columns); returns how many
    were new."""
    observations = [
        MacroObservation(
            str(r.series_id),
            pd.Timestamp(r.period).date(),
            float(r.value),
            pd.Timestamp(r.released_at).to_pydatetime(),
            str(r.event_id),
        )
        for r in releases.itertuples(index=False)
    ]
    with conn.transaction():
        return record_macro_observations(conn, observations=observations)
