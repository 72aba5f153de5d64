"""Point-in-time market data: values per (asset, date, field) with the time each became
available. A revision is a new row with a later ``available_at``; recording the same vintage
twice changes nothing.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import date, datetime

import numpy as np
import pandas as pd
import psycopg

from storage.db import require_aware
from storage.errors import InvalidRecordError
from storage.market_reads import StoredObservations, read_observations

OBSERVATION_COLUMNS = ["asset", "date", "field", "value", "available_at"]
# Rows per INSERT: large enough to amortise the round trip, small enough to keep the
# parameter arrays of one statement well under the protocol's limits.
CHUNK_ROWS = 50_000

_INSERT = """
INSERT INTO core.market_observations (asset, date, field, value, available_at)
SELECT * FROM unnest(%s::text[], %s::date[], %s::text[], %s::float8[], %s::timestamptz[])
ON CONFLICT ON CONSTRAINT market_observations_vintage_key DO NOTHING
"""


def record_market_observations(conn: psycopg.Connection, *, observations: pd.DataFrame) -> int:
    """Store a long frame with columns ``asset, date, field, value, available_at``.

    ``available_at`` must be time-zone aware; ``date`` must be calendar dates. A NaN value
    is stored as NULL (the vintage says "no value"). Returns how many rows were new.
    """
    columns = _columns(observations)
    inserted = 0
    for start in range(0, len(observations), CHUNK_ROWS):
        chunk = [column[start : start + CHUNK_ROWS] for column in columns]
        inserted += conn.execute(_INSERT, chunk).rowcount
    return inserted


def panel_to_observations(
    panel: pd.DataFrame, *, available_at: pd.Series | datetime
) -> pd.DataFrame:
    """Melt a panel (``date, asset, <fields>...``) into observations available at
    ``available_at`` (one timestamp, or a Series aligned with the panel's rows)."""
    missing = {"date", "asset"} - set(panel.columns)
    if missing:
        raise InvalidRecordError(f"panel lacks columns {sorted(missing)}; has {list(panel)}")
    frame = panel.copy()
    frame["available_at"] = available_at
    return frame.melt(
        id_vars=["asset", "date", "available_at"], var_name="field", value_name="value"
    )[OBSERVATION_COLUMNS]


def market_as_of(conn: psycopg.Connection, *, as_of: datetime, **filters) -> pd.DataFrame:
    """:func:`latest_as_of` as a long frame ``date, asset, field, value, available_at``
    sorted by date, asset, field (``filters``: its ``fields``, ``assets``, ``start``,
    ``end``)."""
    latest = latest_as_of(conn, as_of=as_of, **filters)
    frame = pd.DataFrame(
        {
            "date": pd.to_datetime(latest.days.astype("datetime64[D]")).as_unit("ns"),
            "asset": latest.assets.astype(str),
            "field": latest.fields.astype(str),
            "value": latest.values,
            "available_at": pd.to_datetime(latest.available_us, unit="us", utc=True),
        }
    )
    return frame.sort_values(["date", "asset", "field"], ignore_index=True)


def latest_as_of(
    conn: psycopg.Connection,
    *,
    as_of: datetime,
    fields: Sequence[str] | None = None,
    assets: Sequence[str] | None = None,
    start: date | None = None,
    end: date | None = None,
) -> StoredObservations:
    """For each (asset, field, date), the latest value available at or before ``as_of``
    (of two stored with the same ``available_at``, the first stored), as columns; ``None``
    filters select everything, ``start``/``end`` bound dates inclusively."""
    stored = read_observations(
        conn,
        as_of=require_aware(as_of, "as_of"),
        fields=fields,
        assets=assets,
        start=start,
        end=end,
    )
    return latest_vintages(stored)


def sorted_codes(names: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``np.unique(names.astype(str), return_inverse=True)`` of an object array of strings,
    by hashing: sorting tens of thousands of repeated names as strings was most of the
    cost of reading a decision panel."""
    codes, uniques = pd.factorize(names, sort=False)
    text = np.asarray(uniques, dtype=str)
    order = np.argsort(text, kind="stable")
    rank = np.empty(len(order), dtype=np.intp)
    rank[order] = np.arange(len(order))
    return text[order], rank[codes]


def latest_vintages(stored: StoredObservations) -> StoredObservations:
    """The latest vintage of each (asset, field, date) of ``stored``."""
    if len(stored.days) == 0:
        return stored
    _, asset = sorted_codes(stored.assets)
    _, field = sorted_codes(stored.fields)
    order = np.lexsort((-stored.ingested_us, stored.available_us, stored.days, field, asset))
    key = [asset[order], field[order], stored.days[order]]
    last = np.ones(len(order), bool)
    last[:-1] = ~(
        (key[0][1:] == key[0][:-1]) & (key[1][1:] == key[1][:-1]) & (key[2][1:] == key[2][:-1])
    )
    pick = order[last]
    return stored.take(pick)


def as_panel(observations: pd.DataFrame) -> pd.DataFrame:
    """A long as-of frame pivoted to the panel layout: ``date, asset, <field>...``."""
    wide = observations.pivot(index=["date", "asset"], columns="field", values="value")
    wide.columns.name = None
    return wide.reset_index()


def _columns(frame: pd.DataFrame) -> list[list]:
    """The frame as five Python lists, validated, in ``OBSERVATION_COLUMNS`` order."""
    missing = set(OBSERVATION_COLUMNS) - set(frame.columns)
    if missing:
        raise InvalidRecordError(
            f"market observations lack columns {sorted(missing)}; got {list(frame.columns)}"
        )
    available = pd.to_datetime(frame["available_at"])
    if not isinstance(available.dtype, pd.DatetimeTZDtype):
        raise InvalidRecordError(
            f"available_at must be time-zone aware, got dtype {available.dtype}; "
            f"localise it (e.g. .dt.tz_localize('UTC'))"
        )
    dates = pd.to_datetime(frame["date"])
    if isinstance(dates.dtype, pd.DatetimeTZDtype) or (dates != dates.dt.normalize()).any():
        bad = frame["date"][dates != dates.dt.normalize()].head(1).tolist()
        raise InvalidRecordError(f"date must hold calendar dates, got timestamps such as {bad}")
    values = frame["value"].astype("float64").to_numpy()
    if np.isinf(values).any():
        raise InvalidRecordError(
            f"value must be finite or NaN, got {values[np.isinf(values)][:3].tolist()}"
        )
    return [
        frame["asset"].astype(str).tolist(),
        dates.dt.date.tolist(),
        frame["field"].astype(str).tolist(),
        [None if np.isnan(v) else float(v) for v in values],
        available.tolist(),
    ]


def stored_inventory(conn: psycopg.Connection) -> tuple[set[str], set[str]]:
    """The assets and the fields with any stored observation (rows or blocks)."""
    rows = conn.execute(
        """
        SELECT 'asset', asset FROM core.market_blocks
        UNION SELECT 'asset', asset FROM core.market_observations
        UNION SELECT 'asset', asset FROM core.market_events
        UNION SELECT 'field', field FROM core.market_blocks
        UNION SELECT 'field', field FROM core.market_observations
        UNION SELECT 'field', unnest(fields) FROM core.market_events
        """
    ).fetchall()
    return {v for k, v in rows if k == "asset"}, {v for k, v in rows if k == "field"}
