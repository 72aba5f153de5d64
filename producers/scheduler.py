"""Time-triggered generation requests: strategies whose ``triggers.schedule`` is set.

Pure part: :func:`due_ticks` lists the schedule's ticks in ``(last, now]``, and
:func:`schedule_requests` turns ticks into ``GenerationRequest`` events whose ids are derived
from the strategy and the tick alone. A restarted scheduler that republishes a tick therefore
sends the same ``request_id`` and ``trigger_event_id``, which consumers deduplicate.

I/O part: :func:`enqueue_due` puts what is due into the transactional outbox and records
the strategy's last tick in Postgres (``storage.schedule``) in the same transaction, so a
crash either enqueues a tick and records it, or does neither: no tick is skipped or
doubled, and a scheduler on another machine continues where this one stopped.
:func:`run_scheduler` polls.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterable, Sequence
from datetime import UTC, datetime

import psycopg
from psycopg_pool import ConnectionPool

from alphafactory.clock import decision_date, month_end_tick
from alphafactory.events import GenerationRequest, request_id_for
from alphafactory.strategy import Strategy
from storage.outbox import OutboxEvent, enqueue
from storage.schedule import lock_last_tick, record_last_tick

logger = logging.getLogger(__name__)

SCHEDULES = ("", "monthly")


# -- pure: ticks and requests ------------------------------------------------------------


def _require_aware(name: str, value: datetime) -> None:
    if value.tzinfo is None or value.utcoffset() is None:
        raise ValueError(f"{name}={value.isoformat()} has no time zone; pass an aware datetime")


def _previous_month(year: int, month: int) -> tuple[int, int]:
    return (year - 1, 12) if month == 1 else (year, month - 1)


def due_ticks(schedule: str, last: datetime | None, now: datetime) -> list[datetime]:
    """The schedule's ticks with ``last < tick <= now``, oldest first (UTC).

    ``"monthly"`` ticks at ``alphafactory.clock.month_end_tick`` (21:00 UTC on each month's
    last business day); ``""`` never ticks.
    With ``last=None`` (a strategy never scheduled) only the latest tick at or before ``now``
    is due: a new scheduler brings the strategy up to date instead of replaying history.
    """
    if schedule not in SCHEDULES:
        raise ValueError(f"schedule {schedule!r} is unknown; expected one of {SCHEDULES}")
    _require_aware("now", now)
    if last is not None:
        _require_aware("last", last)
    if not schedule:
        return []
    year, month = now.astimezone(UTC).year, now.astimezone(UTC).month
    ticks: list[datetime] = []
    # walk back month by month from now's month until a tick is not after ``last``
    while True:
        tick = month_end_tick(year, month)
        if tick <= now:
            if last is not None and tick <= last:
                break
            ticks.append(tick)
            if last is None:
                break
        year, month = _previous_month(year, month)
    return ticks[::-1]


def tick_event_id(strategy_id: str, tick: datetime) -> str:
    """The trigger id of one tick: the same strategy and tick always give the same id."""
    return f"schedule:{strategy_id}:{tick.astimezone(UTC).isoformat()}"


def schedule_requests(
    strategy: Strategy,
    ticks: Iterable[datetime],
    candidates: int | None = None,
    *,
    requested_at: datetime | None = None,
) -> list[GenerationRequest]:
    """One request per tick: as of the tick's date, using data released by the tick.

    ``candidates`` defaults to the strategy's ``generation.candidates``; ``requested_at``
    (when the request is made) defaults to now.
    """
    count = strategy.generation.candidates if candidates is None else candidates
    made_at = datetime.now(UTC) if requested_at is None else requested_at
    requests = []
    for tick in ticks:
        _require_aware("tick", tick)
        tick_utc = tick.astimezone(UTC)
        trigger_event_id = tick_event_id(strategy.id, tick_utc)
        requests.append(
            GenerationRequest(
                request_id=request_id_for(strategy.id, trigger_event_id),
                strategy_id=strategy.id,
                as_of=decision_date(tick_utc),
                decision_time=tick_utc,
                trigger_event_id=trigger_event_id,
                trigger="schedule",
                candidates=count,
                requested_at=made_at,
            )
        )
    return requests


# -- I/O: the outbox and the polling loop ----------------------------------------------------


def enqueue_due(conn: psycopg.Connection, strategies: Sequence[Strategy], *, now: datetime) -> int:
    """One scheduler pass: for each scheduled strategy, in ONE transaction, the due ticks'
    requests into the outbox (the relay publishes them) and the last tick recorded.
    Returns how many requests were enqueued. ``conn`` must be idle (autocommit)."""
    enqueued = 0
    for strategy in strategies:
        if not strategy.active or not strategy.triggers.schedule:
            continue
        with conn.transaction():
            last = lock_last_tick(conn, strategy_id=strategy.id)
            ticks = due_ticks(strategy.triggers.schedule, last, now)
            if not ticks:
                continue
            for request in schedule_requests(strategy, ticks, requested_at=now):
                enqueue(conn, event=OutboxEvent.of(request))
            record_last_tick(conn, strategy_id=strategy.id, tick=ticks[-1])
        enqueued += len(ticks)
        logger.info("scheduled %d request(s) for %s up to %s", len(ticks), strategy.id, ticks[-1])
    return enqueued


def run_scheduler(
    pool: ConnectionPool,
    strategies: Sequence[Strategy],
    *,
    stop_event: threading.Event,
    now: Callable[[], datetime] = lambda: datetime.now(UTC),
    poll_s: float = 60.0,
    wait_out_outages: Callable[[Callable[[], int], threading.Event], int] | None = None,
    sweeps: Sequence[Callable[..., int]] = (),
) -> int:
    """Enqueue due requests every ``poll_s`` seconds until ``stop_event`` is set; returns
    the number enqueued. ``wait_out_outages(pass, stop_event)`` runs each pass (the
    composition root gives ``consumers.failures.Resilience.call``: a Postgres restart is
    waited out; a tick not committed is enqueued by the next pass). Each of ``sweeps``
    (``sweep(conn, strategies, now=...) -> requests enqueued``, e.g. the market periods
    that timed out by the wall clock) runs in every pass too."""
    if poll_s <= 0:
        raise ValueError(f"poll_s must be positive, got {poll_s!r}")
    enqueued = 0

    def one_pass() -> int:
        with pool.connection() as conn:
            at = now()
            due = enqueue_due(conn, strategies, now=at)
            return due + sum(sweep(conn, strategies, now=at) for sweep in sweeps)

    while not stop_event.is_set():
        enqueued += wait_out_outages(one_pass, stop_event) if wait_out_outages else one_pass()
        stop_event.wait(poll_s)
    return enqueued
