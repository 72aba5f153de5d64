"""Bulk loads of a dataset into the point-in-time stores (the demo's and a deployment's
seed data). Idempotent: loading the same data twice adds nothing.

Market data: each (date, asset, field) of a panel becomes available at the end of its
date's New York day, the panel's own visibility rule (``alphafactory.clock``);
a group's integer codes are stored as the field ``group:<name>`` (``GROUP_PREFIX``), so a
reader knows to turn them back into a group. Macro releases keep their release times.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import psycopg

from alphafactory.clock import visible_from
from alphafactory.panel import Panel
from storage.macro import MacroObservation, record_macro_observations
from storage.market import record_market_observations

GROUP_PREFIX = "group:"


def load_panel(conn: psycopg.Connection, panel: Panel) -> int:
    """Store every field and group of ``panel``; returns how many observations were new."""
    t, n = panel.shape
    available = np.repeat(visible_from(panel.dates).to_numpy(), n)
    base = {
        "asset": np.tile(panel.assets.astype(str), t),
        "date": np.repeat(pd.DatetimeIndex(panel.dates).date, n),
        "available_at": available,
    }
    groups = {GROUP_PREFIX + k: v.astype(np.float64) for k, v in panel.groups.items()}
    columns = {**panel.fields, **groups}
    frames = [
        pd.DataFrame({**base, "field": name, "value": values.reshape(-1)})
        for name, values in columns.items()
    ]
    if not frames:
        return 0
    observations = pd.concat(frames, ignore_index=True)
    observations["available_at"] = pd.to_datetime(observations["available_at"], utc=True)
    with conn.transaction():
        return record_market_observations(conn, observations=observations)


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
