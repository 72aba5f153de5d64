"""The scheduler's state: the last tick enqueued per strategy (migration 0003).

Read and written inside the transaction that enqueues the tick's requests, under a
transaction-scoped advisory lock per strategy, so two schedulers (a restarted one beside a
stuck one, or one per machine) never enqueue a tick twice and never skip one.
"""

from __future__ import annotations

from datetime import datetime

import psycopg

from storage.db import require_aware, require_text


def lock_last_tick(conn: psycopg.Connection, *, strategy_id: str) -> datetime | None:
    """Hold the strategy's scheduler lock until the caller's transaction ends; return the
    last tick enqueued for it (None: never scheduled)."""
    conn.execute(
        "SELECT pg_advisory_xact_lock(hashtextextended(%s, 0))",
        (f"schedule:{require_text(strategy_id, 'strategy_id')}",),
    )
    row = conn.execute(
        "SELECT last_tick FROM core.schedule_ticks WHERE strategy_id = %s", (strategy_id,)
    ).fetchone()
    return None if row is None else row[0]


def record_last_tick(conn: psycopg.Connection, *, strategy_id: str, tick: datetime) -> None:
    conn.execute(
        """
        INSERT INTO core.schedule_ticks (strategy_id, last_tick) VALUES (%s, %s)
        ON CONFLICT (strategy_id) DO UPDATE
            SET last_tick = EXCLUDED.last_tick, updated_at = now()
        """,
        (require_text(strategy_id, "strategy_id"), require_aware(tick, "tick")),
    )


def last_ticks(conn: psycopg.Connection) -> dict[str, datetime]:
    """Every strategy's last enqueued tick (for operators and tests)."""
    rows = conn.execute("SELECT strategy_id, last_tick FROM core.schedule_ticks").fetchall()
    return dict(rows)
