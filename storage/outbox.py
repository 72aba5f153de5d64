"""Transactional outbox: events written in the same transaction as the rows they announce.

A relay publishes them after commit, so no event announces a rolled-back allocation and
none is lost if the process dies between the commit and the publish. The relay loop::

    with conn.transaction():
        messages = claim_unsent(conn, limit=100)
        for m in messages: producer.send(m.topic, key=m.key, value=m.payload)
        producer.flush()
        mark_sent(conn, ids=[m.id for m in messages])

A crash after the flush and before the commit publishes again (at-least-once), which the
consumers absorb through their event ids. Several relays can run: SKIP LOCKED hands each a
different batch, at the price of per-key ordering across relays.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import psycopg
from psycopg import pq

from alphafactory.events import Event
from storage.db import require_text
from storage.errors import InvalidRecordError, StorageError


@dataclass(frozen=True)
class OutboxEvent:
    """An event to publish once the current transaction commits."""

    topic: str
    key: str | None
    payload: Mapping[str, Any]

    @classmethod
    def of(cls, event: Event) -> OutboxEvent:
        """The outbox row of a declared event (``alphafactory.events``): its topic, its
        key and its JSON, exactly as a consumer will decode it. Every event the services
        emit goes through here."""
        return cls(topic=event.topic, key=event.key(), payload=json.loads(event.to_json()))


@dataclass(frozen=True)
class OutboxMessage:
    id: int
    topic: str
    key: str | None
    payload: dict[str, Any]
    created_at: datetime


def enqueue(conn: psycopg.Connection, *, event: OutboxEvent) -> int:
    """Add ``event`` to the outbox in the caller's transaction; returns its id."""
    row = conn.execute(_INSERT + " RETURNING id", _row(event)).fetchone()
    return row[0]


def enqueue_many(conn: psycopg.Connection, events: Sequence[OutboxEvent]) -> None:
    """Add ``events`` to the outbox in the caller's transaction, in order, in one statement;
    every payload is checked before any row is sent."""
    if not events:
        return
    rows = [
        {"n": n, "t": require_text(e.topic, "topic"), "k": e.key, "p": dict(e.payload)}
        for n, e in enumerate(events)
    ]
    try:
        document = json.dumps(rows, allow_nan=False)
    except (TypeError, ValueError):
        for event in events:
            _row(event)  # raises, naming the event's topic and the cause
        raise
    conn.execute(_INSERT_MANY, (document,))


_INSERT = "INSERT INTO core.outbox (topic, key, payload) VALUES (%s, %s, %s::jsonb)"
# a batch is one statement over one JSON document (cheaper on both sides than a statement
# per row or Postgres arrays); the ids follow the events' order (the relay publishes by id)
_INSERT_MANY = """
    INSERT INTO core.outbox (topic, key, payload)
    SELECT t, k, p FROM json_to_recordset(%s::json) AS rows (n int, t text, k text, p jsonb)
    ORDER BY n
"""


def _row(event: OutboxEvent) -> tuple:
    try:
        payload = json.dumps(dict(event.payload), allow_nan=False)
    except (TypeError, ValueError) as e:
        raise InvalidRecordError(
            f"payload of the {event.topic!r} event is not JSON-serialisable: {e}"
        ) from e
    return require_text(event.topic, "topic"), event.key, payload


def claim_unsent(
    conn: psycopg.Connection, *, limit: int = 100, topic: str | None = None
) -> list[OutboxMessage]:
    """Lock and return up to ``limit`` unsent messages, oldest first, skipping rows another
    relay holds. The locks last until the caller's transaction ends, so call it inside one."""
    if conn.autocommit and conn.info.transaction_status == pq.TransactionStatus.IDLE:
        raise StorageError(
            "claim_unsent needs an open transaction (use `with conn.transaction():`); "
            "in autocommit mode the row locks would be released at once"
        )
    rows = conn.execute(
        """
        SELECT id, topic, key, payload, created_at FROM core.outbox
        WHERE sent_at IS NULL AND (%(topic)s::text IS NULL OR topic = %(topic)s::text)
        ORDER BY id
        LIMIT %(limit)s
        FOR UPDATE SKIP LOCKED
        """,
        {"topic": topic, "limit": limit},
    ).fetchall()
    return [OutboxMessage(*row) for row in rows]


def mark_sent(conn: psycopg.Connection, *, ids: Sequence[int]) -> int:
    """Stamp the messages as published; returns how many were still unsent."""
    cur = conn.execute(
        "UPDATE core.outbox SET sent_at = now() WHERE id = ANY(%s) AND sent_at IS NULL",
        (list(ids),),
    )
    return cur.rowcount


def prune_sent(conn: psycopg.Connection, *, sent_before: datetime) -> int:
    """Delete messages published before ``sent_before``; returns how many."""
    cur = conn.execute("DELETE FROM core.outbox WHERE sent_at < %s", (sent_before,))
    return cur.rowcount
