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

The request is as of the release time's New York calendar date and may only use data
released by ``released_at``. Releases are append-only: an older vintage arriving after a
newer one is stored next to it (as-of reads pick by ``released_at``) and gets its own
request; nothing is overwritten.

Errors: a record that can never be applied (``EventError``: not a valid event;
``ConflictError``; ``InvalidRecordError``) raises, and :class:`PoisonOnly` hands it to the
dead-letter policy, which writes it with its coordinates and the loop commits past it. Any
other error (Postgres down, a broken connection) stops the loop without committing, so the
record is delivered again after a restart instead of being dead-lettered while valid.
"""

from __future__ import annotations

import json
import logging
import threading
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from zoneinfo import ZoneInfo

import psycopg
from kafka.consumer.fetcher import ConsumerRecord
from psycopg import pq

from alphafactory.events import EventError, GenerationRequest, MacroRelease, decode, request_id_for
from alphafactory.settings import KafkaSettings, Settings
from alphafactory.strategy import Strategy, active_strategies
from alphafactory.topics import DEAD_LETTERS, GENERATION_REQUESTS, MACRO_RELEASES
from consumers.dead_letters import DeadLetterPolicy, KafkaDeadLetterSink, PoisonOnly
from consumers.loop import ConsumerLoop, LoopStats, coordinates
from producers.admin import ensure_topics
from producers.publisher import KafkaPublisher
from storage.db import connect
from storage.errors import ConflictError, InvalidRecordError
from storage.ledger import mark_processed
from storage.macro import record_macro_observation
from storage.outbox import OutboxEvent, enqueue

logger = logging.getLogger(__name__)

GROUP_ID = "alphafactory-release-handler"
CONSUMER = "release-handler"  # the processed-events ledger's name for this consumer
NEW_YORK = ZoneInfo("America/New_York")  # US releases: the decision's calendar date there
POISON: tuple[type[Exception], ...] = (EventError, ConflictError, InvalidRecordError)


def release_request(
    strategy: Strategy, release: MacroRelease, *, now: datetime
) -> GenerationRequest:
    """The generation request ``release`` triggers for ``strategy``, made at ``now``."""
    return GenerationRequest(
        request_id=request_id_for(strategy.id, release.event_id),
        strategy_id=strategy.id,
        as_of=release.released_at.astimezone(NEW_YORK).date(),
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
) -> list[GenerationRequest]:
    """Apply one ``macro.releases`` message; returns the requests enqueued (none for a
    release already processed). Raises one of :data:`POISON` for a message that can never
    be applied; the transaction is committed when it returns.
    """
    if now.tzinfo is None or now.utcoffset() is None:
        raise ValueError(f"now must carry a time zone, got naive {now!r}")
    release = decode(MacroRelease, record_value)
    _require_idle(conn)
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
                payload = json.loads(request.to_json())
                enqueue(conn, event=OutboxEvent(request.topic, request.key(), payload))
    except psycopg.DataError as error:
        # Deterministic for this content (e.g. a NUL character in a text field): poison,
        # not an outage, so it must go to the dead letters rather than stop the consumer.
        raise InvalidRecordError(
            f"release {release.event_id!r} cannot be stored: {error}"
        ) from error
    return requests


def _require_idle(conn: psycopg.Connection) -> None:
    """``conn.transaction()`` is only the outermost (committing) transaction on an idle
    connection; inside an open one it would be a savepoint, committed by nobody."""
    status = conn.info.transaction_status
    if status != pq.TransactionStatus.IDLE:
        raise RuntimeError(
            f"the release handler needs an idle connection, this one is {status.name}; "
            "use an autocommit connection, or commit or roll back first"
        )


class ReleaseHandler:
    """``ConsumerLoop`` handler: :func:`handle_release` on one connection per process."""

    def __init__(
        self,
        conn: psycopg.Connection,
        strategies: Sequence[Strategy],
        *,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self._conn = conn
        self._strategies = tuple(strategies)
        self._clock = clock

    def __call__(self, record: ConsumerRecord) -> None:
        requests = handle_release(self._conn, record.value, self._strategies, now=self._clock())
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
    conn: psycopg.Connection,
    publisher: KafkaPublisher,
    strategies: Sequence[Strategy],
    topic: str = MACRO_RELEASES,
    group_id: str = GROUP_ID,
    dead_letter_topic: str = DEAD_LETTERS,
    **loop_options,
) -> ConsumerLoop:
    """The release handler's consume loop; ``loop_options`` go to :class:`ConsumerLoop`
    (``stop_event``, ``max_records``, ``idle_timeout_s``...)."""
    sink = KafkaDeadLetterSink(publisher, topic=dead_letter_topic)
    return ConsumerLoop(
        kafka,
        group_id=group_id,
        topics=[topic],
        handler=ReleaseHandler(conn, strategies),
        on_error=PoisonOnly(DeadLetterPolicy(sink, group_id=group_id), POISON),
        **loop_options,
    )


def run_release_handler(settings: Settings, stop_event: threading.Event) -> LoopStats:
    """The release-handler process: consume until ``stop_event`` is set."""
    strategies = active_strategies(settings.pipeline.strategies_dir)
    logger.info(
        "release handler: %d active strategies, triggered by %s",
        len(strategies),
        sorted({series for s in strategies for series in s.triggers.series}),
    )
    ensure_topics(settings.kafka, [MACRO_RELEASES, GENERATION_REQUESTS, DEAD_LETTERS])
    with (
        connect(settings.postgres.dsn("app"), autocommit=True) as conn,
        KafkaPublisher.open(settings.kafka) as publisher,
    ):
        loop = release_loop(
            settings.kafka,
            conn=conn,
            publisher=publisher,
            strategies=strategies,
            stop_event=stop_event,
        )
        return loop.run()
