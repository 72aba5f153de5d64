"""The release handler: ``macro.releases`` in, point-in-time rows and generation requests out.

For each record, in ONE Postgres transaction (:func:`handle_release`):

1. store the observation (``storage.macro.record_macro_observation``; a redelivered
   ``event_id`` changes nothing, a reused one with other content raises ``ConflictError``);
2. ``mark_processed(consumer="release-handler", event_id)``: if the ledger already has it,
   stop here, so a redelivery never asks for a second generation;
3. for each active strategy whose ``triggers.series`` names the series, put a
   ``GenerationRequest`` in the transactional outbox (``consumers.relay`` publishes it after
   the commit). Its ``request_id`` derives from (strategy, event_id), so even a request
   re-emitted by hand names the same request downstream.

The request is as of the release time's New York calendar date (``alphafactory.clock``)
and may only use data released by ``released_at``. Releases are append-only: an older
vintage arriving after a newer one is stored next to it (as-of reads pick by
``released_at``) and gets its own request; nothing is overwritten.

Errors (``consumers.failures``): a record that can never be applied (``EventError``: not
a valid event; ``ConflictError``; ``InvalidRecordError``) is poison: after a few attempts
the loop dead-letters it with its coordinates and commits past it. An outage (Postgres
restarting, a broken connection) is waited out and the same record handled again, so a
valid record is never dead-lettered.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from datetime import UTC, datetime, timedelta

import psycopg
from kafka.consumer.fetcher import ConsumerRecord
from psycopg_pool import ConnectionPool

from alphafactory.clock import decision_date
from alphafactory.events import (
    DEFAULT_MAX_SKEW,
    GenerationRequest,
    MacroRelease,
    decode,
    refuse_future,
    request_id_for,
)
from alphafactory.settings import KafkaSettings
from alphafactory.strategy import Strategy
from alphafactory.topics import DEAD_LETTERS, MACRO_RELEASES, RELEASE_HANDLER_GROUP
from consumers.dead_letters import dead_lettering_loop
from consumers.loop import ConsumerLoop, coordinates
from messaging.publisher import KafkaPublisher
from storage.db import require_idle
from storage.errors import InvalidRecordError
from storage.ledger import mark_processed
from storage.macro import record_macro_observation
from storage.outbox import OutboxEvent, enqueue

logger = logging.getLogger(__name__)

GROUP_ID = RELEASE_HANDLER_GROUP
CONSUMER = "release-handler"  # the processed-events ledger's name for this consumer


def release_request(
    strategy: Strategy, release: MacroRelease, *, now: datetime
) -> GenerationRequest:
    """The generation request ``release`` triggers for ``strategy``, made at ``now``."""
    return GenerationRequest(
        request_id=request_id_for(strategy.id, release.event_id),
        strategy_id=strategy.id,
        as_of=decision_date(release.released_at),
        decision_time=release.released_at,
        trigger_event_id=release.event_id,
        trigger="release",
        candidates=strategy.generation.candidates,
        requested_at=now,
    )


def handle_release(
    conn: psycopg.Connection,
    record_value: bytes | None,
    strategies: Sequence[Strategy],
    *,
    now: datetime,
    max_skew: timedelta = DEFAULT_MAX_SKEW,
) -> list[GenerationRequest]:
    """Apply one ``macro.releases`` message; returns the requests enqueued (none for a
    release already processed); raises for a message that can never be applied (poison:
    not a valid event, released after ``now + max_skew``, conflicting with what is
    stored). The transaction is committed when it returns.
    """
    if now.tzinfo is None or now.utcoffset() is None:
        raise ValueError(f"now must carry a time zone, got naive {now!r}")
    release = decode(MacroRelease, record_value)
    what = f"release {release.event_id!r} has released_at"
    refuse_future(release.released_at, now=now, max_skew=max_skew, what=what)
    require_idle(conn, "the release handler")
    triggered = [s for s in strategies if s.active and s.triggered_by(release.series_id)]
    requests = [release_request(s, release, now=now) for s in triggered]
    try:
        # Outermost transaction (the connection is idle): it commits when the block exits.
        with conn.transaction():
            record_macro_observation(
                conn,
                series_id=release.series_id,
                period=release.period,
                value=release.value,
                released_at=release.released_at,
                event_id=release.event_id,
            )
            if not mark_processed(conn, consumer=CONSUMER, event_id=release.event_id):
                return []
            for request in requests:
                enqueue(conn, event=OutboxEvent.of(request))
    except psycopg.DataError as error:
        # Deterministic for this content (e.g. a NUL character in a text field): poison,
        # not an outage, so it must go to the dead letters rather than stop the consumer.
        raise InvalidRecordError(
            f"release {release.event_id!r} cannot be stored: {error}"
        ) from error
    return requests


class ReleaseHandler:
    """``ConsumerLoop`` handler: :func:`handle_release` on a pooled connection (a broken
    one is replaced by the pool when Postgres comes back)."""

    def __init__(
        self,
        pool: ConnectionPool,
        strategies: Sequence[Strategy],
        *,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
        max_skew: timedelta = DEFAULT_MAX_SKEW,
    ) -> None:
        self._pool = pool
        self._strategies = tuple(strategies)
        self._clock = clock
        self._max_skew = max_skew

    def __call__(self, record: ConsumerRecord) -> None:
        with self._pool.connection() as conn:
            requests = handle_release(
                conn, record.value, self._strategies, now=self._clock(), max_skew=self._max_skew
            )
        if requests:
            logger.info(
                "%s: %d generation request(s) for %s",
                coordinates(record),
                len(requests),
                ", ".join(r.strategy_id for r in requests),
            )


def release_loop(
    kafka: KafkaSettings,
    *,
    pool: ConnectionPool,
    publisher: KafkaPublisher,
    strategies: Sequence[Strategy],
    topic: str = MACRO_RELEASES,
    group_id: str = GROUP_ID,
    dead_letter_topic: str = DEAD_LETTERS,
    max_skew: timedelta = DEFAULT_MAX_SKEW,
    **loop_options,
) -> ConsumerLoop:
    """The release handler's consume loop; ``loop_options`` go to :class:`ConsumerLoop`
    (``stop_event``, ``max_records``, ``idle_timeout_s``...)."""
    return dead_lettering_loop(
        kafka,
        publisher=publisher,
        pool=pool,
        group_id=group_id,
        topics=[topic],
        handler=ReleaseHandler(pool, strategies, max_skew=max_skew),
        dead_letter_topic=dead_letter_topic,
        **loop_options,
    )
