"""The outbox relay: publishes the events committed to ``core.outbox``, then marks them sent.

One batch (:func:`relay_once`) is one Postgres transaction: claim the oldest unsent rows
(``FOR UPDATE SKIP LOCKED``, so concurrent relays take disjoint batches), publish them and
wait for the broker's acknowledgements, mark them sent, commit. Delivery is at-least-once:

* a publish that fails rolls the transaction back, so every row of the batch stays unsent
  and is published again by the next attempt, including any the broker had already
  acknowledged;
* a crash after the acknowledgements and before the commit republishes the batch too.

Consumers absorb both through their event ids (``request_id``, ``event_id``...).
Per-key order holds with one relay; with several, two batches may interleave.

:func:`run_relay` is the relay loop: batches back to back while there is a backlog, an
``idle_s`` wait on the stop event when idle (so SIGTERM stops it at once), an outage of
the broker or of Postgres waited out, a row the broker refuses (too large) set aside in
``core.dead_letters`` so it cannot stop the others, and the published rows older than the
retention setting deleted once a minute, so the outbox stays small.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from datetime import UTC, datetime, timedelta

import psycopg
from psycopg import pq
from psycopg_pool import ConnectionPool

from alphafactory import telemetry
from consumers.dead_letters import MAX_DEAD_LETTER_VALUE_BYTES
from consumers.failures import Resilience, Stopped, is_transient
from messaging.errors import PublishError
from messaging.publisher import KafkaPublisher, OutgoingRecord
from storage.dead_letters import record_dead_letter
from storage.outbox import OutboxMessage, claim_unsent, mark_sent, prune_sent

logger = logging.getLogger(__name__)

BATCH_SIZE = 100
PRUNE_EVERY_S = 60.0


def outgoing(message: OutboxMessage) -> OutgoingRecord:
    """The Kafka record of an outbox row: its topic, key and payload as compact JSON."""
    # A keyless row gets its outbox id as key (as dead letters get their coordinates):
    # the publisher wants a key, and a per-row key spreads such rows like a null key would.
    key = message.key if message.key is not None else f"outbox:{message.id}"
    value = json.dumps(message.payload, separators=(",", ":"), allow_nan=False)
    return OutgoingRecord(message.topic, key=key, value=value.encode("utf-8"))


def relay_once(conn: psycopg.Connection, publisher: KafkaPublisher, limit: int = BATCH_SIZE) -> int:
    """Publish up to ``limit`` unsent outbox rows and mark them sent; returns how many.

    Raises ``PublishError`` when the broker was unreachable; the rows are then still
    unsent. A row the broker refuses is set aside in ``core.dead_letters`` and marked sent.
    ``conn`` must be idle (autocommit, or between transactions).
    """
    if limit < 1:
        raise ValueError(f"limit must be >= 1, got {limit}")
    status = conn.info.transaction_status
    if status != pq.TransactionStatus.IDLE:
        # Inside an open transaction, conn.transaction() is a savepoint: nothing would commit
        # and the row locks would be held until the caller's transaction ends.
        raise RuntimeError(f"relay_once needs an idle connection, this one is {status.name}")
    with conn.transaction():
        messages = claim_unsent(conn, limit=limit)
        if not messages:
            return 0
        try:
            publisher.publish_many([outgoing(m) for m in messages])
        except PublishError as error:
            if is_transient(error):
                raise  # the broker is away: every row stays unsent, the batch comes back
            _set_aside_refused(conn, publisher, messages)
        mark_sent(conn, ids=[m.id for m in messages])
    for message in messages:
        telemetry.OUTBOX_RELAYED.labels(message.topic).inc()
    logger.debug(
        "relayed %d outbox message(s), ids %d..%d", len(messages), messages[0].id, messages[-1].id
    )
    return len(messages)


def _set_aside_refused(conn, publisher: KafkaPublisher, messages: list[OutboxMessage]) -> None:
    """The broker refused a record of the batch (too large, say): publish the rows one by
    one and keep each refused one in ``core.dead_letters`` instead, so one bad row cannot
    stop the outbox. An outage on the way raises and the whole batch stays unsent."""
    for message in messages:
        try:
            publisher.publish_many([outgoing(message)])
        except PublishError as error:
            if is_transient(error):
                raise
            record_dead_letter(
                conn,
                topic=f"outbox:{message.topic}",
                partition=None,
                offset=message.id,
                key=message.key,
                payload=json.dumps(message.payload)[:MAX_DEAD_LETTER_VALUE_BYTES],
                error=f"{type(error).__name__}: {error}",
            )
            telemetry.DEAD_LETTERS.labels(f"outbox:{message.topic}", type(error).__name__).inc()
            logger.error(
                "outbox row %d refused by the broker, dead-lettered: %s", message.id, error
            )


def run_relay(
    pool: ConnectionPool,
    publisher: KafkaPublisher,
    *,
    stop_event: threading.Event,
    idle_s: float,
    retention: timedelta | None,
    limit: int = BATCH_SIZE,
    prune_every_s: float = PRUNE_EVERY_S,
) -> int:
    """Relay until ``stop_event`` is set; returns how many messages were published.

    An outage of the broker or of Postgres is waited out (``consumers.failures``: backoff,
    one log line per outage); the rows wait in the outbox. Every ``prune_every_s`` the rows
    published more than ``retention`` ago are deleted (None keeps them).
    """
    resilience = Resilience("outbox relay", logger=logger)
    published, next_prune = 0, 0.0
    logger.info("outbox relay started (batches of %d)", limit)
    while not stop_event.is_set():
        prune = retention is not None and time.monotonic() >= next_prune
        try:
            count = resilience.call(
                lambda p=prune: _relay_pass(pool, publisher, limit, retention if p else None),
                stop_event,
            )
        except Stopped:
            break
        if prune:
            next_prune = time.monotonic() + prune_every_s
        published += count
        if count < limit:  # drained: nothing left worth an immediate new query
            stop_event.wait(idle_s)
    logger.info("outbox relay stopped after publishing %d message(s)", published)
    return published


def _relay_pass(pool, publisher, limit: int, retention: timedelta | None) -> int:
    with pool.connection() as conn:
        if retention is not None:
            pruned = prune_sent(conn, sent_before=datetime.now(UTC) - retention)
            logger.log(logging.INFO if pruned else logging.DEBUG, "pruned %d sent row(s)", pruned)
        return relay_once(conn, publisher, limit)
