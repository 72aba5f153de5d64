"""Processed-events ledger: the idempotency record of each consumer.

Call :func:`mark_processed` first in the transaction that applies an event's effects. A
concurrent duplicate then waits on the ledger row and, once the first commits, gets False
and skips; if the first rolls back, its ledger row goes with it and the duplicate proceeds.
"""

from __future__ import annotations

import psycopg

from storage.db import require_text


def mark_processed(conn: psycopg.Connection, *, consumer: str, event_id: str) -> bool:
    """Record that ``consumer`` processed ``event_id``; False if it already had.

    Runs in the caller's transaction: the record commits or rolls back with the effects.
    """
    cur = conn.execute(
        """
        INSERT INTO core.processed_events (consumer, event_id) VALUES (%s, %s)
        ON CONFLICT (consumer, event_id) DO NOTHING
        """,
        (require_text(consumer, "consumer"), require_text(event_id, "event_id")),
    )
    return cur.rowcount == 1


def mark_processed_many(
    conn: psycopg.Connection, *, consumer: str, event_ids: list[str]
) -> set[str]:
    """:func:`mark_processed` for a batch: the ids of ``event_ids`` not processed before."""
    rows = conn.execute(
        """
        INSERT INTO core.processed_events (consumer, event_id)
        SELECT %s, unnest(%s::text[])
        ON CONFLICT (consumer, event_id) DO NOTHING
        RETURNING event_id
        """,
        (require_text(consumer, "consumer"), list(dict.fromkeys(event_ids))),
    ).fetchall()
    return {event_id for (event_id,) in rows}


def is_processed(conn: psycopg.Connection, *, consumer: str, event_id: str) -> bool:
    row = conn.execute(
        "SELECT 1 FROM core.processed_events WHERE consumer = %s AND event_id = %s",
        (consumer, event_id),
    ).fetchone()
    return row is not None


def count_processed(conn: psycopg.Connection, *, consumer: str, event_ids: list[str]) -> int:
    """How many of ``event_ids`` ``consumer`` has processed."""
    row = conn.execute(
        "SELECT count(*) FROM core.processed_events WHERE consumer = %s AND event_id = ANY(%s)",
        (consumer, list(event_ids)),
    ).fetchone()
    return int(row[0])
