"""Histories to replay: stored (or file) releases and market data as events, in time order.

A release becomes a ``MacroRelease`` with its own event id. Market observations become one
``MarketData`` event per (asset, date, availability time) with every field of that
vintage; its event id is ``market:ASSET:DATE:AVAILABLE_AT``, so a replay of the same
history twice is dropped as duplicates downstream. Group columns (``group:<name>``) are
static attributes loaded with the panel, not market data: they are not replayed.
"""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pandas as pd
import psycopg

from alphafactory.events import MarketData
from alphafactory.observations import GROUP_PREFIX, MarketObservations
from producers.releases import release_events
from producers.replay import Timed, select_events

US_PER_DAY = 86_400_000_000


def market_events(
    assets: np.ndarray,
    fields: np.ndarray,
    days: np.ndarray,
    values: np.ndarray,
    available_us: np.ndarray,
) -> list[MarketData]:
    """One event per (asset, day, availability) of long-format observations (``days``
    since 1970-01-01, ``available_us`` microseconds since then, UTC); NaN values and group
    fields are left out."""
    frame = pd.DataFrame(
        {
            "asset": assets.astype(str),
            "field": fields.astype(str),
            "day": days,
            "value": values,
            "at": available_us,
        }
    )
    frame = frame[np.isfinite(frame["value"]) & ~frame["field"].str.startswith(GROUP_PREFIX)]
    events = []
    for (asset, day, at), rows in frame.groupby(["asset", "day", "at"], sort=True):
        when = datetime.fromtimestamp(int(at) / 1e6, tz=UTC)
        on = (np.datetime64(int(day), "D")).astype(object)
        events.append(
            MarketData(
                event_id=f"market:{asset}:{on.isoformat()}:{when.isoformat()}",
                asset=asset,
                date=on,
                fields=dict(zip(rows["field"], rows["value"].astype(float), strict=True)),
                available_at=when,
            )
        )
    return events


def observation_events(observations: MarketObservations) -> list[MarketData]:
    """The events of a loaded market file."""
    n = len(observations)
    names = list(observations.fields)
    return market_events(
        np.tile(observations.assets, len(names)),
        np.repeat(np.array(names, dtype=object), n),
        np.tile(observations.dates.astype("datetime64[D]").astype(np.int64), len(names)),
        np.concatenate([observations.fields[name] for name in names]) if names else np.empty(0),
        np.tile(observations.available_at.astype("datetime64[us]").astype(np.int64), len(names)),
    )


def stored_history(conn: psycopg.Connection, *, since: datetime, until: datetime) -> list[Timed]:
    """Every stored release and market observation known at ``since <= t < until``."""
    from storage.macro import releases_until
    from storage.market_reads import read_observations

    releases = releases_until(conn, until=until)
    stored = read_observations(conn, as_of=until)
    known = (stored.available_us >= _us(since)) & (stored.available_us < _us(until))
    stored = stored.take(known)
    market = market_events(
        stored.assets, stored.fields, stored.days, stored.values, stored.available_us
    )
    return select_events([*release_events(releases), *market], since=since, until=until)


def file_history(
    *,
    panel: Path | None,
    releases: Path | None,
    release_time: str,
    now: datetime,
    since: datetime,
    until: datetime,
) -> list[Timed]:
    """The events of a panel file and/or a release file (read as ``data load`` reads
    them, every check included) known at ``since <= t < until``."""
    from alphafactory.data.market_files import read_market_file
    from alphafactory.data.release_files import read_release_file

    events: list[Timed] = []
    if panel is not None:
        events += observation_events(read_market_file(panel, now=now))
    if releases is not None:
        table = read_release_file(releases, release_time=release_time, now=now)
        events += release_events(table)
    return select_events(events, since=since, until=until)


def _us(moment: datetime) -> int:
    return int(pd.Timestamp(moment).tz_convert("UTC").value // 1000)
