"""The reconciler: finds in Postgres what was started and never finished, and re-drives it.

Postgres is the system of record and Kafka and Redis are transport: a broker restart loses
its in-memory log (unconsumed releases, requests the relay had marked sent, results), a
Redis restart loses queued tasks, and a crash can fall between two steps. Each pass looks
for, and re-drives, in this order:

1. releases the release handler processed whose strategies have no generation request
   (the request was lost in transport: the generation service has registered a request
   of the strategy requested later, or none for the stall deadline): the same request
   goes into the outbox again;
2. registered requests that never got their candidates: the request again, to the outbox;
3. requests whose candidates stay pending with no task activity past a deadline: their
   pending candidates to the Celery workers again;
4. complete requests with neither an allocation nor a recorded failure: allocated here
   (in decision order: one waiting for an open request of its strategy decided earlier
   is allocated once that one is);
5. outbox rows unsent past a deadline: relayed here (the relay is down or stuck).

Every re-drive is idempotent downstream (the same request id, trigger, formula hashes), so
finding something twice, or racing the service that was only slow, doubles nothing. Each
action is recorded in ``core.reconciler_actions``.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from psycopg_pool import ConnectionPool

from alphafactory import telemetry
from alphafactory.events import GenerationRequest, MacroRelease
from alphafactory.strategy import Strategy
from consumers.allocation import AllocationContext, allocate_request
from consumers.failures import Resilience, Stopped, is_transient
from consumers.release_handler import release_request
from storage.outbox import OutboxEvent, enqueue
from storage.reconcile import (
    database_now,
    record_action,
    releases_without_request,
    requests_not_generated,
    stale_unsent,
    stalled_requests,
    unallocated_requests,
)
from storage.requests import RequestRecord, load_request, pending_candidates, record_failure

log = logging.getLogger(__name__)
Dispatch = Callable[[str, list[str], int], int]  # (request id, hashes, chunk size) -> tasks
Relay = Callable[[], int]  # publishes unsent outbox rows; returns how many


@dataclass(frozen=True)
class ReconcilerRules:
    grace: timedelta = timedelta(minutes=2)  # how long a step may take before it is re-driven
    stall: timedelta = timedelta(minutes=10)  # pending candidates with no task activity
    lookback: timedelta = timedelta(hours=72)  # releases older than this are left alone
    redrive_every: timedelta = timedelta(minutes=10)  # one subject re-driven at most this often


@dataclass
class Reconciler:
    pool: ConnectionPool
    strategies: dict[str, Strategy]
    dispatch: Dispatch
    relay: Relay
    rules: ReconcilerRules = ReconcilerRules()
    allocation: AllocationContext = field(init=False)

    def __post_init__(self) -> None:
        self.allocation = AllocationContext(self.strategies)

    def reconcile(self) -> dict[str, int]:
        """One pass (module doc); returns how many things of each kind were re-driven."""
        with self.pool.connection() as conn:
            now = database_now(conn)
            done = {
                "lost_requests": self._lost_requests(conn, now),
                "ungenerated": self._ungenerated(conn, now),
                "stalled": self._stalled(conn, now),
                "unallocated": self._unallocated(conn, now),
            }
            stale = stale_unsent(conn, created_before=now - self.rules.grace)
        done["unsent"] = self._relay_stale(stale)
        if any(done.values()):
            log.warning("reconciler re-drove %s", {k: v for k, v in done.items() if v})
        return done

    def _lost_requests(self, conn, now: datetime) -> int:
        count = 0
        for strategy in self.strategies.values():
            if not strategy.active or not strategy.triggers.series:
                continue
            lost = releases_without_request(
                conn,
                strategy_id=strategy.id,
                series_ids=strategy.triggers.series,
                processed_after=now - self.rules.lookback,
                processed_before=now - self.rules.grace,
                # one generation service serves every strategy: it may work on the
                # others' requests for longer than the grace period (the stall deadline)
                registered_since=now - self.rules.stall,
                redriven_since=now - self.rules.redrive_every,
            )
            for observation in lost:
                release = MacroRelease(**observation.__dict__)
                request = release_request(strategy, release, now=now)
                self._enqueue(conn, request, "lost_request", f"{strategy.id}:{release.event_id}")
                count += 1
        return count

    def _ungenerated(self, conn, now: datetime) -> int:
        stuck = requests_not_generated(
            conn,
            registered_before=now - self.rules.grace,
            redriven_since=now - self.rules.redrive_every,
        )
        for record in stuck:
            request = record.event(candidates=self._candidates(record))
            self._enqueue(conn, request, "ungenerated", record.request_id)
        return len(stuck)

    def _candidates(self, record: RequestRecord) -> int:
        strategy = self.strategies.get(record.strategy_id)
        return strategy.generation.candidates if strategy else 1

    def _stalled(self, conn, now: datetime) -> int:
        stalled = stalled_requests(
            conn, idle_since=now - self.rules.stall, redriven_since=now - self.rules.redrive_every
        )
        for request_id in stalled:
            pending = pending_candidates(conn, request_id)
            chunk = self._chunk_size(conn, request_id)
            tasks = self.dispatch(request_id, pending, chunk)
            record_action(
                conn, action="stalled", subject=request_id, detail=f"{len(pending)} in {tasks}"
            )
        return len(stalled)

    def _chunk_size(self, conn, request_id: str) -> int:
        request = load_request(conn, request_id)
        strategy = self.strategies.get(request.strategy_id) if request else None
        return strategy.generation.chunk_size if strategy else 50

    def _unallocated(self, conn, now: datetime) -> int:
        waiting = unallocated_requests(conn, complete_before=now - self.rules.grace)
        for request_id in waiting:
            try:
                allocation_id = allocate_request(conn, self.allocation, request_id)
            except Exception as error:
                if is_transient(error):
                    raise
                record_failure(conn, request_id, f"{type(error).__name__}: {error}")
                allocation_id = None
            detail = allocation_id or "failed, waiting for an earlier decision, or not ours"
            record_action(conn, action="unallocated", subject=request_id, detail=detail)
        return len(waiting)

    def _relay_stale(self, stale: int) -> int:
        if not stale:
            return 0
        log.warning("%d outbox row(s) unsent past %s: relaying them here", stale, self.rules.grace)
        relayed = self.relay()
        with self.pool.connection() as conn:
            record_action(conn, action="unsent", subject="outbox", detail=f"{relayed} relayed")
        return relayed

    def _enqueue(self, conn, request: GenerationRequest, action: str, subject: str) -> None:
        with conn.transaction():
            enqueue(conn, event=OutboxEvent.of(request))
            record_action(conn, action=action, subject=subject, detail=request.request_id)


def run_reconciler(
    reconciler: Reconciler,
    *,
    stop_event: threading.Event,
    every_s: float,
    resilience: Resilience | None = None,
    sample: Callable[[], None] | None = None,
) -> int:
    """A pass every ``every_s`` seconds until ``stop_event``; outages waited out; after
    each pass ``sample`` (the pipeline's gauges, ``consumers.pipeline_sampler``). Returns
    how many things it re-drove."""
    resilience = resilience or Resilience("reconciler", logger=log)
    total = 0
    while not stop_event.is_set():
        try:
            done = resilience.call(reconciler.reconcile, stop_event)
        except Stopped:
            break
        except Exception:  # a bug or bad row in one pass must not end the safety net
            log.exception("reconciler pass failed; the next one runs in %.0f s", every_s)
        else:
            total += sum(done.values())
            for action, count in done.items():
                telemetry.RECONCILER_ACTIONS.labels(action).inc(count)
        if sample is not None:
            try:
                sample()
            except Exception as error:  # the gauges wait for the next pass
                log.warning("pipeline state not sampled: %s", error)
        stop_event.wait(every_s)
    return total
