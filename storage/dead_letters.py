"""Dead letters: records a consumer gave up on, kept with the error for inspection/replay."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

import psycopg

from storage.db import require_text


@dataclass(frozen=True)
class DeadLetter:
    id: int
    topic: str
    partition: int | None
    offset: int | None
    key: bytes | None
    payload: bytes
    error: str
    created_at: datetime


def _as_bytes(value: bytes | str | None) -> bytes | None:
    return value.encode() if isinstance(value, str) else value


def record_dead_letter(
    conn: psycopg.Connection,
    *,
    topic: str,
    partition: int | None,
    offset: int | None,
    key: bytes | str | None,
    payload: bytes | str,
    error: str,
) -> int | None:
    """Store a failed record; returns its id, or None if this (topic, partition, offset)
    was already dead-lettered (a redelivery after a crash)."""
    row = conn.execute(
        """
        INSERT INTO core.dead_letters (topic, partition, "offset", key, payload, error)
        VALUES (%s, %s, %s, %s, %s, %s)
        ON CONFLICT ON CONSTRAINT dead_letters_record_key DO NOTHING
        RETURNING id
        """,
        (
            require_text(topic, "topic"),
            partition,
            offset,
            _as_bytes(key),
            _as_bytes(payload),
            error,
        ),
    ).fetchone()
    return None if row is None else row[0]


def list_dead_letters(
    conn: psycopg.Connection, *, topic: str | None = None, limit: int = 100
) -> list[DeadLetter]:
    """The newest dead letters first, optionally of one topic."""
    rows = conn.execute(
        """
        SELECT id, topic, partition, "offset", key, payload, error, created_at
        FROM core.dead_letters
        WHERE %(topic)s::text IS NULL OR topic = %(topic)s::text
        ORDER BY id DESC
        LIMIT %(limit)s
        """,
        {"topic": topic, "limit": limit},
    ).fetchall()
    return [DeadLetter(*row) for row in rows]


def load_dead_letter(conn: psycopg.Connection, dead_letter_id: int) -> DeadLetter | None:
    row = conn.execute(
        'SELECT id, topic, partition, "offset", key, payload, error, created_at '
        "FROM core.dead_letters WHERE id = %s",
        (dead_letter_id,),
    ).fetchone()
    return DeadLetter(*row) if row else None


def delete_dead_letter(conn: psycopg.Connection, *, dead_letter_id: int) -> bool:
    """Remove a dead letter once it is replayed or dismissed; False if it was gone."""
    cur = conn.execute("DELETE FROM core.dead_letters WHERE id = %s", (dead_letter_id,))
    return cur.rowcount == 1
