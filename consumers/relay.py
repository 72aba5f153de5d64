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
``idle_s`` wait on the stop event when idle (so SIGTERM stops it at once), jittered
backoff after a failed publish (the broker may be down), and the published rows older
than the retention setting deleted once a minute, so the outbox stays small.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from datetime import UTC, datetime, timedelta

import psycopg
from psycopg import pq

from alphafactory.retry import Backoff, RetryStopped, retry
from messaging.errors import PublishError
from messaging.publisher import KafkaPublisher, OutgoingRecord
from storage.outbox import OutboxMessage, claim_unsent, mark_sent, prune_sent

logger = logging.getLogger(__name__)

BATCH_SIZE = 100
PRUNE_EVERY_S = 60.0
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


def run_relay(
    conn: psycopg.Connection,
    publisher: KafkaPublisher,
    *,
    stop_event: threading.Event,
    idle_s: float,
    retention: timedelta | None,
    limit: int = BATCH_SIZE,
    prune_every_s: float = PRUNE_EVERY_S,
) -> int:
    """Relay until ``stop_event`` is set; returns how many messages were published.

    A failed publish is retried for as long as it takes, with jittered backoff from
    ``idle_s`` up to 30 s (the broker may be down; the rows wait in the outbox). A Postgres
    error ends the loop (its supervisor restarts the process). Every ``prune_every_s``
    the rows published more than ``retention`` ago are deleted (None keeps them).
    """
    backoff = Backoff(first_s=idle_s, max_s=max(idle_s, _MAX_BACKOFF_S))
    published, next_prune = 0, 0.0
    logger.info("outbox relay started (batches of %d)", limit)
    while not stop_event.is_set():
        if retention is not None and time.monotonic() >= next_prune:
            pruned = prune_sent(conn, sent_before=datetime.now(UTC) - retention)
            logger.log(logging.INFO if pruned else logging.DEBUG, "pruned %d sent row(s)", pruned)
            next_prune = time.monotonic() + prune_every_s
        try:
            count = retry(
                lambda: relay_once(conn, publisher, limit),
                retry_on=PublishError,
                backoff=backoff,
                sleep=stop_event.wait,
                on_retry=_log_failed_publish,
            )
        except RetryStopped:
            break
        published += count
        if count < limit:  # drained: nothing left worth an immediate new query
            stop_event.wait(idle_s)
    logger.info("outbox relay stopped after publishing %d message(s)", published)
    return published


def _log_failed_publish(error: BaseException, failures: int, delay: float) -> None:
    logger.warning(
        "outbox relay: publish failed (%d in a row), retrying in %.1f s: %s", failures, delay, error
    )
