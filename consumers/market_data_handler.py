"""The market-data handler: ``market.data`` in, point-in-time rows and market-triggered
generation requests out.

A polled batch is handled in ONE Postgres transaction (:func:`handle_market_data`):

1. every event is decoded and checked (a valid ``MarketData``, not available in the
   future); one bad message fails the batch, and the loop then handles its records one by
   one, so the bad one alone is dead-lettered with its reason;
2. ``mark_processed`` for each ``event_id``: a redelivered event stores nothing again;
3. the new events are stored, one row each with its fields (``storage.market_events``): a
   second observation with a later ``available_at`` is a revision, stored beside the first;
   the same (asset, date, field, available_at) with another value is refused (poison);
4. for each strategy with ``triggers.market = "period_close"``, the periods (observation
   dates) its universe reported in are opened, and a period is decided once, when every
   asset of the universe has reported (at the latest of their availability times) or when
   data available ``market_timeout_s`` after the period's first observation arrives: a
   ``GenerationRequest`` (trigger ``market``) goes to the outbox in the same transaction.

Batching is what makes the handler fast: one transaction, one ledger insert and one row
insert per poll instead of per event (``benchmarks/DATA.md``).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta

import psycopg
from kafka.consumer.fetcher import ConsumerRecord
from psycopg_pool import ConnectionPool

from alphafactory.clock import decision_date
from alphafactory.events import (
    DEFAULT_MAX_SKEW,
    GenerationRequest,
    MarketData,
    decode,
    refuse_future,
    request_id_for,
)
from alphafactory.settings import KafkaSettings
from alphafactory.strategy import Strategy
from alphafactory.topics import DEAD_LETTERS, MARKET_DATA, MARKET_DATA_GROUP
from consumers.dead_letters import dead_lettering_loop
from consumers.loop import ConsumerLoop, coordinates
from messaging.publisher import KafkaPublisher
from storage import market_periods
from storage.db import require_idle
from storage.errors import InvalidRecordError
from storage.ledger import mark_processed_many
from storage.market_events import record_events
from storage.outbox import OutboxEvent, enqueue

logger = logging.getLogger(__name__)

GROUP_ID = MARKET_DATA_GROUP
CONSUMER = "market-data"  # the processed-events ledger's name for this consumer


@dataclass(frozen=True)
class MarketDataOutcome:
    events: int  # new events applied
    observations: int  # new observations stored
    requests: tuple[GenerationRequest, ...]


def market_request(
    strategy: Strategy, period: date, decision_time: datetime, *, now: datetime
) -> GenerationRequest:
    """The request a closed market period makes for ``strategy``."""
    trigger_event_id = f"market:{period.isoformat()}"
    return GenerationRequest(
        request_id=request_id_for(strategy.id, trigger_event_id),
        strategy_id=strategy.id,
        as_of=decision_date(decision_time),
        decision_time=decision_time,
        trigger_event_id=trigger_event_id,
        trigger="market",
        candidates=strategy.generation.candidates,
        requested_at=now,
    )


def handle_market_data(
    conn: psycopg.Connection,
    values: Sequence[bytes | None],
    strategies: Sequence[Strategy],
    *,
    now: datetime,
    max_skew: timedelta = DEFAULT_MAX_SKEW,
) -> MarketDataOutcome:
    """Apply a batch of ``market.data`` messages in one transaction (committed when it
    returns); raises for a message that can never be applied."""
    events = [_decode(value, now=now, max_skew=max_skew) for value in values]
    require_idle(conn, "the market-data handler")
    try:
        with conn.transaction():
            fresh = mark_processed_many(
                conn, consumer=CONSUMER, event_ids=[e.event_id for e in events]
            )
            new = list({e.event_id: e for e in reversed(events) if e.event_id in fresh}.values())
            stored = record_events(conn, events=new)
            requests = [
                request
                for strategy in strategies
                if strategy.active and strategy.triggers.market and new
                for request in _decide(conn, strategy, new, events, now=now)
            ]
            for request in requests:
                enqueue(conn, event=OutboxEvent.of(request))
    except psycopg.DataError as error:
        raise InvalidRecordError(f"market data cannot be stored: {error}") from error
    return MarketDataOutcome(len(new), stored, tuple(requests))


def _decode(value: bytes | None, *, now: datetime, max_skew: timedelta) -> MarketData:
    event = decode(MarketData, value)
    what = f"market data {event.event_id!r} has available_at"
    refuse_future(event.available_at, now=now, max_skew=max_skew, what=what)
    return event


def _decide(
    conn: psycopg.Connection,
    strategy: Strategy,
    new: Sequence[MarketData],
    batch: Sequence[MarketData],
    *,
    now: datetime,
) -> list[GenerationRequest]:
    """The periods of ``strategy`` this batch closes, as requests, in period order."""
    universe = set(strategy.universe.assets)
    first_seen: dict[date, datetime] = {}
    for event in new:
        if not universe or event.asset in universe:
            seen = first_seen.get(event.date)
            first_seen[event.date] = min(seen, event.available_at) if seen else event.available_at
    for period, at in sorted(first_seen.items()):
        market_periods.open_period(conn, strategy_id=strategy.id, period=period, first_seen_at=at)
    clock = max(e.available_at for e in batch)  # the data's clock: replays keep their time
    closed: dict[date, datetime] = {}
    for period in sorted(first_seen):
        expected = sorted(universe) or market_periods.expected_assets(conn, period=period, by=clock)
        seen = market_periods.reported(conn, period=period, assets=expected, by=clock)
        if expected and set(expected) <= set(seen):
            at = max(seen.values())
            if market_periods.close_period(
                conn, strategy_id=strategy.id, period=period, at=at, by="complete"
            ):
                closed[period] = at
    timeout = strategy.triggers.market_timeout_s
    for period, deadline in market_periods.timed_out(
        conn, strategy_id=strategy.id, timeout_s=timeout, by=clock
    ):
        if market_periods.close_period(
            conn, strategy_id=strategy.id, period=period, at=deadline, by="timeout"
        ):
            closed[period] = deadline
    return [market_request(strategy, p, at, now=now) for p, at in sorted(closed.items())]


def sweep_stale_periods(
    conn: psycopg.Connection, strategies: Sequence[Strategy], *, now: datetime
) -> int:
    """Close the market periods whose timeout has passed by the wall clock with nothing
    arriving to close them (a feed that stopped, an asset that never reports): each is
    decided at its deadline on the data's clock, as the handler would have. One
    transaction per strategy; returns the requests enqueued. ``conn`` must be idle."""
    enqueued = 0
    for strategy in strategies:
        if not strategy.active or not strategy.triggers.market:
            continue
        timeout = strategy.triggers.market_timeout_s
        with conn.transaction():
            stale = market_periods.stale(conn, strategy_id=strategy.id, timeout_s=timeout, now=now)
            for period, deadline in stale:
                if market_periods.close_period(
                    conn, strategy_id=strategy.id, period=period, at=deadline, by="timeout"
                ):
                    enqueue(
                        conn,
                        event=OutboxEvent.of(market_request(strategy, period, deadline, now=now)),
                    )
                    enqueued += 1
                    logger.info("%s: period %s timed out with no later data", strategy.id, period)
    return enqueued


class MarketDataHandler:
    """``ConsumerLoop`` handler of ``market.data``: whole batches, and single records when
    a batch fails (to isolate poison)."""

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

    def handle_batch(self, records: Sequence[ConsumerRecord]) -> None:
        with self._pool.connection() as conn:
            outcome = handle_market_data(
                conn,
                [r.value for r in records],
                self._strategies,
                now=self._clock(),
                max_skew=self._max_skew,
            )
        if outcome.requests:
            logger.info(
                "%s..%d: %d generation request(s) for %s",
                coordinates(records[0]),
                records[-1].offset,
                len(outcome.requests),
                ", ".join(f"{r.strategy_id} ({r.trigger_event_id})" for r in outcome.requests),
            )

    def __call__(self, record: ConsumerRecord) -> None:
        self.handle_batch([record])


def market_data_loop(
    kafka: KafkaSettings,
    *,
    pool: ConnectionPool,
    publisher: KafkaPublisher,
    strategies: Sequence[Strategy],
    topic: str = MARKET_DATA,
    group_id: str = GROUP_ID,
    dead_letter_topic: str = DEAD_LETTERS,
    max_skew: timedelta = DEFAULT_MAX_SKEW,
    batch_size: int = 500,
    clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    **loop_options,
) -> ConsumerLoop:
    """The market-data handler's consume loop, a batch per poll."""
    handler = MarketDataHandler(pool, strategies, clock=clock, max_skew=max_skew)
    return dead_lettering_loop(
        kafka,
        publisher=publisher,
        pool=pool,
        group_id=group_id,
        topics=[topic],
        handler=handler,
        batch_handler=handler.handle_batch,
        dead_letter_topic=dead_letter_topic,
        batch_size=batch_size,
        **loop_options,
    )
