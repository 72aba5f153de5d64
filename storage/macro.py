"""Point-in-time macro observations: every release and revision is a row, never an update.

``released_at`` is the point-in-time key: a value exists for a reader at time ``t`` only if
it was released at or before ``t``, to the microsecond (a Saturday release is not visible
from Saturday 00:00, nor from its period's date). ``event_id`` is the idempotency key of the
``macro.releases`` event that carried it.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import date, datetime

import numpy as np
import pandas as pd
import psycopg

from storage.db import require_aware, require_date, require_finite, require_text
from storage.errors import ConflictError

AS_OF_COLUMNS = ["series_id", "period", "value", "released_at", "event_id"]
HISTORY_COLUMNS = [*AS_OF_COLUMNS, "ingested_at"]


@dataclass(frozen=True)
class MacroObservation:
    series_id: str
    period: date
    value: float
    released_at: datetime
    event_id: str

    def checked(self) -> MacroObservation:
        """The same observation with every field validated (errors name the bad value)."""
        return MacroObservation(
            series_id=require_text(self.series_id, "series_id"),
            period=require_date(self.period, "period"),
            value=require_finite(self.value, f"value of event {self.event_id!r}"),
            released_at=require_aware(self.released_at, "released_at"),
            event_id=require_text(self.event_id, "event_id"),
        )


_INSERT = """
INSERT INTO core.macro_observations (series_id, period, value, released_at, event_id)
VALUES (%s, %s, %s, %s, %s)
ON CONFLICT (event_id) DO NOTHING
"""


def record_macro_observation(
    conn: psycopg.Connection,
    *,
    series_id: str,
    period: date,
    value: float,
    released_at: datetime,
    event_id: str,
) -> bool:
    """Store one release; returns False if ``event_id`` was already stored.

    A redelivered event changes nothing. The same ``event_id`` with a different series,
    period, value or release time raises :class:`ConflictError`: the producer reused a key.
    """
    obs = MacroObservation(series_id, period, value, released_at, event_id).checked()
    cur = conn.execute(
        _INSERT, (obs.series_id, obs.period, obs.value, obs.released_at, obs.event_id)
    )
    if cur.rowcount == 1:
        return True
    _check_duplicate(conn, obs)
    return False


def record_macro_observations(
    conn: psycopg.Connection, *, observations: Iterable[MacroObservation]
) -> int:
    """Store many releases (a replay's seed); returns how many were new.

    Rows whose ``event_id`` is already stored are skipped without comparison.
    """
    rows = [o.checked() for o in observations]
    if not rows:
        return 0
    cur = conn.execute(
        """
        INSERT INTO core.macro_observations (series_id, period, value, released_at, event_id)
        SELECT * FROM unnest(%s::text[], %s::date[], %s::float8[], %s::timestamptz[], %s::text[])
        ON CONFLICT (event_id) DO NOTHING
        """,
        (
            [o.series_id for o in rows],
            [o.period for o in rows],
            [o.value for o in rows],
            [o.released_at for o in rows],
            [o.event_id for o in rows],
        ),
    )
    return cur.rowcount


def _check_duplicate(conn: psycopg.Connection, obs: MacroObservation) -> None:
    row = conn.execute(
        "SELECT series_id, period, value, released_at FROM core.macro_observations "
        "WHERE event_id = %s",
        (obs.event_id,),
    ).fetchone()
    stored = tuple(row) if row else None
    if stored != (obs.series_id, obs.period, obs.value, obs.released_at):
        raise ConflictError(
            f"event_id {obs.event_id!r} is already stored as {stored!r}, not "
            f"{(obs.series_id, obs.period, obs.value, obs.released_at)!r}; "
            f"a revision needs a new event_id"
        )


def macro_as_of(
    conn: psycopg.Connection,
    *,
    series_ids: Sequence[str],
    as_of: datetime,
    start: date | None = None,
    end: date | None = None,
) -> pd.DataFrame:
    """For each (series, period), the latest value released at or before ``as_of``.

    Long frame with columns ``series_id, period, value, released_at, event_id`` sorted by
    series and period; a period with no release yet has no row (never a zero). ``period``
    is datetime64, ``released_at`` is UTC. ``start``/``end`` bound the periods, inclusive.
    """
    as_of = require_aware(as_of, "as_of")
    rows = conn.execute(
        """
        SELECT DISTINCT ON (series_id, period)
               series_id, period, value, released_at, event_id
        FROM core.macro_observations
        WHERE series_id = ANY(%(series)s)
          AND released_at <= %(as_of)s
          AND (%(start)s::date IS NULL OR period >= %(start)s::date)
          AND (%(end)s::date IS NULL OR period <= %(end)s::date)
        ORDER BY series_id, period, released_at DESC, observation_id DESC
        """,
        {"series": list(series_ids), "as_of": as_of, "start": start, "end": end},
    ).fetchall()
    return _frame(rows, AS_OF_COLUMNS)


def releases_until(
    conn: psycopg.Connection,
    *,
    until: datetime,
    series_ids: Sequence[str] | None = None,
    stored_by: int | None = None,
    since: datetime | None = None,
) -> pd.DataFrame:
    """Every release (all vintages) made at or before ``until``, in release order: the
    input of the point-in-time alignment (``alphafactory.data.releases``). With
    ``stored_by`` (an observation id, see :func:`observation_id`), only the releases
    stored up to that one: what was known when it arrived.

    With ``since``, only what a reader at ``since`` or later can still see: per series,
    the releases of the newest period released by ``since`` and of later periods, every
    vintage. An older period's release is never the newest visible one from then on, so
    the alignment of dates from ``since`` on is the same, and a decision late in a long
    history reads its own window, not every release since the first."""
    rows = conn.execute(
        f"""
        WITH visible AS (
            SELECT series_id, period, value, released_at, event_id, observation_id
            FROM core.macro_observations
            WHERE released_at <= %(until)s
              AND (%(series)s::text[] IS NULL OR series_id = ANY(%(series)s::text[]))
              AND (%(stored_by)s::bigint IS NULL OR observation_id <= %(stored_by)s::bigint)
        ), newest_by_since AS (
            SELECT series_id, max(period) AS period FROM visible
            WHERE released_at <= %(since)s::timestamptz
            GROUP BY series_id
        )
        SELECT v.series_id, {_TYPED_COLUMNS}
        FROM visible v LEFT JOIN newest_by_since n ON n.series_id = v.series_id
        WHERE n.period IS NULL OR v.period >= n.period
        ORDER BY v.released_at, v.series_id, v.period, v.observation_id
        """,
        {
            "until": require_aware(until, "until"),
            "series": None if series_ids is None else list(series_ids),
            "stored_by": stored_by,
            "since": None if since is None else require_aware(since, "since"),
        },
    ).fetchall()
    return _typed_frame(rows)


def observation_id(conn: psycopg.Connection, event_id: str) -> int | None:
    """The id of a stored release (ids grow in the order releases are stored); None when
    no release has that event id (a scheduled trigger, say)."""
    row = conn.execute(
        "SELECT observation_id FROM core.macro_observations WHERE event_id = %s", (event_id,)
    ).fetchone()
    return row[0] if row else None


def last_periods(conn: psycopg.Connection, *, series_ids: Sequence[str]) -> dict[str, date]:
    """The newest period stored for each series (series with no release are absent)."""
    rows = conn.execute(
        "SELECT series_id, max(period) FROM core.macro_observations "
        "WHERE series_id = ANY(%s) GROUP BY series_id",
        (list(series_ids),),
    ).fetchall()
    return dict(rows)


# Median spacing of a series' periods, in days -> frequency; the same limits as
# alphafactory.metrics.factor.infer_periods_per_year, so both agree on a series.
_FREQUENCY_LIMITS = ((4.5, "D"), (11.0, "W"), (50.0, "M"), (135.0, "Q"), (float("inf"), "A"))


@dataclass(frozen=True)
class SeriesCoverage:
    """What is stored of one series: its newest period, how many periods, and the frequency
    inferred from their median spacing ("D", "W", "M", "Q", "A"; None under 2 periods);
    that spacing in days and when the series was last released."""

    series_id: str
    last_period: date | None
    periods: int
    frequency: str | None
    cadence_days: float | None = None
    last_released_at: datetime | None = None

    def stale(self, now: datetime, multiple: float) -> bool:
        """No release for more than ``multiple`` times the cadence by ``now``: a decision
        then reads the series as missing (``alphafactory.data.releases``)."""
        if self.cadence_days is None or self.last_released_at is None:
            return False
        return (now - self.last_released_at).total_seconds() > multiple * self.cadence_days * 86400


def series_coverage(
    conn: psycopg.Connection, *, series_ids: Sequence[str]
) -> dict[str, SeriesCoverage]:
    """:class:`SeriesCoverage` of each series, in the order given; a series with no release
    stored has ``last_period=None, periods=0, frequency=None``.

    Periods count once however many vintages they have; all releases are considered (this
    describes the store, not a point-in-time view).
    """
    rows = conn.execute(
        """
        WITH periods AS (
            SELECT series_id, period, max(released_at) AS released_at
            FROM core.macro_observations
            WHERE series_id = ANY(%s) GROUP BY series_id, period
        ), gaps AS (
            SELECT series_id, period, released_at,
                   period - lag(period) OVER (PARTITION BY series_id ORDER BY period) AS gap
            FROM periods
        )
        SELECT series_id, max(period), count(*),
               percentile_cont(0.5) WITHIN GROUP (ORDER BY gap),
               (array_agg(released_at ORDER BY period DESC))[1]  -- the newest period's
        FROM gaps GROUP BY series_id
        """,
        (list(series_ids),),
    ).fetchall()
    found = {
        series: SeriesCoverage(series, last, count, _frequency(gap), gap, released)
        for series, last, count, gap, released in rows
    }
    return {s: found.get(s, SeriesCoverage(s, None, 0, None)) for s in series_ids}


def _frequency(median_gap_days: float | None) -> str | None:
    if median_gap_days is None:  # a single period: no spacing to read
        return None
    return next(code for limit, code in _FREQUENCY_LIMITS if median_gap_days < limit)


def count_releases(conn: psycopg.Connection, *, event_ids: Sequence[str] | None = None) -> int:
    """How many releases are stored (of ``event_ids`` only, when given): what a replay
    waits on before it triggers a decision that must see them all."""
    row = conn.execute(
        """
        SELECT count(*) FROM core.macro_observations
        WHERE %(ids)s::text[] IS NULL OR event_id = ANY(%(ids)s::text[])
        """,
        {"ids": None if event_ids is None else list(event_ids)},
    ).fetchone()
    return int(row[0])


def macro_vintage_history(
    conn: psycopg.Connection, *, series_id: str, period: date | None = None
) -> pd.DataFrame:
    """Every release of a series (or of one period), oldest period and release first."""
    rows = conn.execute(
        """
        SELECT series_id, period, value, released_at, event_id, ingested_at
        FROM core.macro_observations
        WHERE series_id = %s AND (%s::date IS NULL OR period = %s::date)
        ORDER BY period, released_at, observation_id
        """,
        (series_id, period, period),
    ).fetchall()
    return _frame(rows, HISTORY_COLUMNS)


# period as days and released_at as microseconds since 1970 (UTC): pandas converts a
# column of date and zoned datetime objects far more slowly (half a decision panel's load)
_TYPED_COLUMNS = """v.period - DATE '1970-01-01', v.value,
        (extract(epoch FROM v.released_at) * 1000000)::int8, v.event_id"""


def _typed_frame(rows: list[tuple]) -> pd.DataFrame:
    """AS_OF_COLUMNS from rows selected with ``_TYPED_COLUMNS``, the dtypes ``_frame``
    gives."""
    series, days, values, released_us, events = zip(*rows, strict=True) if rows else [()] * 5
    return pd.DataFrame(
        {
            "series_id": np.array(series, dtype=object),
            "period": np.array(days, dtype="datetime64[D]").astype("datetime64[ns]"),
            "value": np.array(values, dtype=np.float64),
            "released_at": pd.to_datetime(
                np.array(released_us, dtype=np.int64), unit="us", utc=True
            ),
            "event_id": np.array(events, dtype=object),
        }
    )


def _frame(rows: list[tuple], columns: list[str]) -> pd.DataFrame:
    frame = pd.DataFrame(rows, columns=columns)
    frame["period"] = pd.to_datetime(frame["period"])
    frame["value"] = frame["value"].astype("float64")
    for column in ("released_at", "ingested_at"):
        if column in frame:
            frame[column] = pd.to_datetime(frame[column], utc=True)
    return frame


def stored_series(conn: psycopg.Connection) -> set[str]:
    """Every series id with a stored release."""
    rows = conn.execute("SELECT DISTINCT series_id FROM core.macro_observations").fetchall()
    return {series_id for (series_id,) in rows}
