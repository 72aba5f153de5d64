"""Market-data trigger state (``core.market_periods``): which periods of a strategy have
begun reporting, and which are decided.

A period is an observation date. It opens with its first observation (``first_seen_at``:
the earliest availability seen) and closes once: when every asset of the universe has
reported (``complete``, at the latest availability among them) or when the strategy's
timeout has passed since it opened (``timeout``). Closing is an UPDATE of an open row, so
two handlers, or one redelivered batch, close a period once. ``opened_at`` is the wall-clock
time it opened: a period whose last asset never reports, and after which no data comes to
move the data's clock, is closed by the scheduler's sweep (:func:`stale`) once its timeout
has passed in real time.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import date, datetime

import psycopg

_REPORTED = """
SELECT asset, max(available_at) FROM (
    SELECT asset, available_at FROM core.market_events
    WHERE date = %(period)s AND available_at <= %(by)s
      AND (%(assets)s::text[] IS NULL OR asset = ANY(%(assets)s::text[]))
    UNION ALL
    SELECT asset, available_at FROM core.market_observations
    WHERE date = %(period)s AND available_at <= %(by)s
      AND (%(assets)s::text[] IS NULL OR asset = ANY(%(assets)s::text[]))
    UNION ALL
    SELECT b.asset, o.available_at
    FROM core.market_blocks AS b,
         unnest(b.dates, b.available_at) AS o(date, available_at)
    WHERE b.first_date <= %(period)s AND b.last_date >= %(period)s
      AND (%(assets)s::text[] IS NULL OR b.asset = ANY(%(assets)s::text[]))
      AND o.date = %(period)s AND o.available_at <= %(by)s
) AS seen
GROUP BY asset
"""

_PREVIOUS_DATE = """
SELECT max(d) FROM (
    SELECT max(date) AS d FROM core.market_events WHERE date < %(period)s
    UNION ALL
    SELECT max(date) FROM core.market_observations WHERE date < %(period)s
    UNION ALL
    SELECT max(last_date) FROM core.market_blocks WHERE last_date < %(period)s
) AS earlier
"""


def open_period(
    conn: psycopg.Connection, *, strategy_id: str, period: date, first_seen_at: datetime
) -> None:
    """Record that ``period`` has begun reporting (an earlier availability wins)."""
    conn.execute(
        """
        INSERT INTO core.market_periods (strategy_id, period, first_seen_at)
        VALUES (%s, %s, %s)
        ON CONFLICT (strategy_id, period) DO UPDATE
        SET first_seen_at = least(core.market_periods.first_seen_at, excluded.first_seen_at)
        WHERE core.market_periods.closed_at IS NULL
        """,
        (strategy_id, period, first_seen_at),
    )


def reported(
    conn: psycopg.Connection, *, period: date, assets: Sequence[str] | None, by: datetime
) -> dict[str, datetime]:
    """Each asset (of ``assets``; None: any) with an observation dated ``period`` available
    by ``by``, with the latest such availability."""
    rows = conn.execute(
        _REPORTED, {"period": period, "by": by, "assets": None if assets is None else list(assets)}
    ).fetchall()
    return dict(rows)


def expected_assets(conn: psycopg.Connection, *, period: date, by: datetime) -> list[str]:
    """The universe of a strategy over every loaded asset: those that reported on the
    latest date before ``period``."""
    previous = conn.execute(_PREVIOUS_DATE, {"period": period}).fetchone()[0]
    if previous is None:
        return []
    return sorted(reported(conn, period=previous, assets=None, by=by))


def timed_out(
    conn: psycopg.Connection, *, strategy_id: str, timeout_s: float, by: datetime
) -> list[tuple[date, datetime]]:
    """Open periods of ``strategy_id`` whose timeout fell by ``by`` on the data's clock:
    (period, deadline)."""
    return _past_timeout(conn, strategy_id, timeout_s, since="first_seen_at", by=by)


def stale(
    conn: psycopg.Connection, *, strategy_id: str, timeout_s: float, now: datetime
) -> list[tuple[date, datetime]]:
    """Open periods of ``strategy_id`` opened (by the wall clock) ``timeout_s`` or more
    before ``now``: (period, deadline on the data's clock). No later data closed them."""
    return _past_timeout(conn, strategy_id, timeout_s, since="opened_at", by=now)


def _past_timeout(conn, strategy_id: str, timeout_s: float, *, since: str, by: datetime):
    column = {"first_seen_at": "first_seen_at", "opened_at": "opened_at"}[since]
    rows = conn.execute(
        f"""
        SELECT period, first_seen_at + make_interval(secs => %(timeout)s)
        FROM core.market_periods
        WHERE strategy_id = %(strategy)s AND closed_at IS NULL
          AND {column} + make_interval(secs => %(timeout)s) <= %(by)s
        ORDER BY period
        """,
        {"strategy": strategy_id, "timeout": timeout_s, "by": by},
    ).fetchall()
    return [(period, deadline) for period, deadline in rows]


def close_period(
    conn: psycopg.Connection, *, strategy_id: str, period: date, at: datetime, by: str
) -> bool:
    """Close an open period at ``at`` (``by``: complete or timeout); False if it was closed."""
    cur = conn.execute(
        """
        UPDATE core.market_periods SET closed_at = %s, closed_by = %s
        WHERE strategy_id = %s AND period = %s AND closed_at IS NULL
        """,
        (at, by, strategy_id, period),
    )
    return cur.rowcount == 1
