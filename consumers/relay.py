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

:func:`run_relay` is the relay process: batches back to back while there is a backlog, a
``poll_interval_s`` wait on the stop event when idle (so SIGTERM stops it at once), and a
growing wait after a failed publish (the broker may be down).
"""

from __future__ import annotations

import json
import logging
import threading

import psycopg
from psycopg import pq

from alphafactory.settings import Settings
from producers.errors import PublishError
from producers.publisher import KafkaPublisher, OutgoingRecord
from storage.db import connect
from storage.outbox import OutboxMessage, claim_unsent, mark_sent

logger = logging.getLogger(__name__)

BATCH_SIZE = 100
_MAX_BACKOFF_S = 30.0


def outgoing(message: OutboxMessage) -> OutgoingRecord:
    """The Kafka record of an outbox row: its topic, key and payload as compact JSON."""
    # A keyless row gets its outbox id as key (as dead letters get their coordinates):
    # the publisher wants a key, and a per-row key spreads such rows like a null key would.
    key = message.key if message.key is not None else f"outbox:{message.id}"
    value = json.dumps(message.payload, separators=(",", ":"), allow_nan=False)
    return OutgoingRecord(message.topic, key=key, value=value.encode("utf-8"))


def relay_once(conn: psycopg.Connection, publisher: KafkaPublisher, limit: int = BATCH_SIZE) -> int:
    """Publish up to ``limit`` unsent outbox rows and mark them sent; returns how many.

    Raises ``PublishError`` when the broker did not acknowledge the batch; the rows are then
    still unsent. ``conn`` must be idle (autocommit, or between transactions).
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
        publisher.publish_many([outgoing(m) for m in messages])
        mark_sent(conn, ids=[m.id for m in messages])
    logger.debug(
        "relayed %d outbox message(s), ids %d..%d", len(messages), messages[0].id, messages[-1].id
    )
    return len(messages)


def run_relay(settings: Settings, stop_event: threading.Event, *, limit: int = BATCH_SIZE) -> int:
    """Relay until ``stop_event`` is set; returns how many messages were published.

    A failed publish is logged and retried with a growing pause (up to 30 s); a Postgres
    error ends the process (its supervisor restarts it; unsent rows wait in the outbox).
    """
    idle_s = settings.pipeline.poll_interval_s
    published = 0
    with (
        connect(settings.postgres.dsn("app"), autocommit=True) as conn,
        KafkaPublisher.open(settings.kafka) as publisher,
    ):
        logger.info("outbox relay started (batches of %d)", limit)
        backoff_s = idle_s
        while not stop_event.is_set():
            try:
                count = relay_once(conn, publisher, limit)
            except PublishError as error:
                logger.warning(
                    "outbox relay: publish failed, retrying in %.1f s: %s", backoff_s, error
                )
                stop_event.wait(backoff_s)
                backoff_s = min(backoff_s * 2, _MAX_BACKOFF_S)
                continue
            backoff_s = idle_s
            published += count
            if count < limit:  # drained: nothing left worth an immediate new query
                stop_event.wait(idle_s)
    logger.info("outbox relay stopped after publishing %d message(s)", published)
    return published
