"""The reconciler on the real Postgres: each kind of unfinished work a lost log, a lost
queue or a crash leaves behind is found and re-driven once, then left alone."""

from __future__ import annotations

import json
import threading
import uuid
from datetime import UTC, datetime, timedelta

import pandas as pd
import pytest

from alphafactory.events import GenerationRequest, MacroRelease, decode, request_id_for
from consumers.evaluation import EvaluationContext, evaluate_chunk
from consumers.generation import GenerationContext, handle_request
from consumers.reconciler import Reconciler, ReconcilerRules
from consumers.release_handler import CONSUMER
from storage.db import open_pool
from storage.deliveries import start_delivery
from storage.ledger import mark_processed
from storage.macro import record_macro_observation
from storage.outbox import OutboxEvent, enqueue
from storage.progress import trigger_status
from storage.reconcile import (
    database_now,
    reconciler_actions,
    releases_without_request,
    stalled_requests,
    unallocated_requests,
)
from storage.requests import RequestRecord, register_request, set_candidates

NOW_RULES = ReconcilerRules(grace=timedelta(0), stall=timedelta(0), redrive_every=timedelta(1))


class Calls:
    def __init__(self) -> None:
        self.dispatched: list[tuple[str, list[str]]] = []
        self.relayed = 0

    def dispatch(self, request_id, hashes, chunk_size) -> int:
        self.dispatched.append((request_id, list(hashes)))
        return 1

    def relay(self) -> int:
        self.relayed += 1
        return 0


@pytest.fixture
def pool(pipeline_db):
    with open_pool(pipeline_db.dsn("app"), min_size=1, max_size=2) as opened:
        yield opened


@pytest.fixture
def reconciler(pool, strategy):
    calls = Calls()
    reconciler = Reconciler(pool, {strategy.id: strategy}, calls.dispatch, calls.relay, NOW_RULES)
    reconciler.calls = calls
    return reconciler


def when(market, row: int) -> datetime:
    day = pd.Timestamp(market.panel.dates[row]) + pd.Timedelta(days=10, hours=14)
    return day.tz_localize(UTC).to_pydatetime()


def release_request(strategy, market, trigger: str) -> GenerationRequest:
    """The request a release of row 100's decision date triggers for ``strategy``."""
    return GenerationRequest(
        request_id=request_id_for(strategy.id, trigger),
        strategy_id=strategy.id,
        as_of=when(market, 100).date(),
        decision_time=when(market, 100),
        trigger_event_id=trigger,
        trigger="release",
        candidates=strategy.generation.candidates,
        requested_at=datetime.now(UTC),
    )


def outbox_requests(conn, strategy_id: str, since_id: int) -> list[GenerationRequest]:
    rows = conn.execute(
        "SELECT payload FROM core.outbox WHERE topic = %s AND key = %s AND id > %s ORDER BY id",
        (GenerationRequest.topic, strategy_id, since_id),
    ).fetchall()
    return [decode(GenerationRequest, json.dumps(payload).encode()) for (payload,) in rows]


def last_outbox_id(conn) -> int:
    return conn.execute("SELECT coalesce(max(id), 0) FROM core.outbox").fetchone()[0]


def handled_release(conn, market, strategy, event_id: str) -> MacroRelease:
    """A release of the strategy's trigger series the release handler processed, whose
    request never reached the generation service (yet)."""
    release = MacroRelease(
        event_id=event_id,
        series_id=strategy.triggers.series[0],
        period=pd.Timestamp(market.panel.dates[100]).date(),
        value=1.5,
        released_at=when(market, 100),
    )
    with conn.transaction():
        record_macro_observation(conn, **release.model_dump(exclude={"schema_version"}))
        mark_processed(conn, consumer=CONSUMER, event_id=release.event_id)
    return release


def test_a_release_whose_request_was_lost_gets_it_again_once(
    conn, market, strategy, reconciler, unique_trigger
):
    release = handled_release(conn, market, strategy, unique_trigger)
    start = last_outbox_id(conn)
    first, second = reconciler.reconcile(), reconciler.reconcile()
    assert first["lost_requests"] >= 1 and second["lost_requests"] == 0
    requests = outbox_requests(conn, strategy.id, start)
    (request,) = [r for r in requests if r.trigger_event_id == unique_trigger]
    assert request.request_id == request_id_for(strategy.id, unique_trigger)
    assert request.decision_time == release.released_at


def test_a_release_queued_behind_the_generation_backlog_is_lost_only_once_passed(
    conn, market, strategy, unique_trigger
):
    started = database_now(conn)
    queued = handled_release(conn, market, strategy, unique_trigger)

    def register(requested_at: datetime) -> None:
        trigger = f"backlog-{uuid.uuid4().hex[:10]}"
        request = release_request(strategy, market, trigger)
        register_request(
            conn, RequestRecord.of(request.model_copy(update={"requested_at": requested_at}))
        )

    def lost(registered_since: datetime) -> bool:
        now = database_now(conn)
        found = releases_without_request(
            conn,
            strategy_id=strategy.id,
            series_ids=strategy.triggers.series,
            processed_after=started - timedelta(minutes=1),
            processed_before=now + timedelta(minutes=1),
            registered_since=registered_since,
            redriven_since=now,
        )
        return queued.event_id in {release.event_id for release in found}

    # the generation service is registering requests made before the release: still queued
    register(requested_at=started - timedelta(seconds=30))
    assert not lost(registered_since=started)
    # ... unless it has registered nothing lately (it is down, or the queue is empty)
    assert lost(registered_since=database_now(conn) + timedelta(seconds=1))
    # it registered a request made after the release: it passed it, the request was lost
    register(requested_at=database_now(conn) + timedelta(seconds=1))
    assert lost(registered_since=started)


def test_requests_without_candidates_tasks_or_allocation_are_re_driven(
    conn, market, strategy, generator, reconciler, unique_trigger
):
    policy, vocab = generator
    lost: list = []  # the Celery queue is lost: nothing dispatched ever runs
    strategies = {strategy.id: strategy}
    generation = GenerationContext(
        strategies,
        policy,
        vocab,
        1.0,
        lambda request_id, hashes, size: lost.append(hashes) or 1,
        reconciler.allocation,
        threading.Event(),
    )
    request = release_request(strategy, market, unique_trigger)
    handle_request(conn, generation, request)
    done = reconciler.reconcile()
    assert done["stalled"] >= 1 and reconciler.reconcile()["stalled"] == 0
    (hashes,) = [h for rid, h in reconciler.calls.dispatched if rid == request.request_id]
    assert sorted(hashes) == sorted(h for chunk in lost for h in chunk)
    evaluate_chunk(conn, EvaluationContext(strategies), request.request_id, hashes)
    # every result was lost on its way to the allocator: the reconciler allocates
    assert trigger_status(conn, strategy.id, unique_trigger).allocation_id is None
    assert reconciler.reconcile()["unallocated"] >= 1
    assert trigger_status(conn, strategy.id, unique_trigger).allocation_id is not None
    assert reconciler.reconcile()["unallocated"] == 0
    actions = reconciler_actions(conn, since=request.requested_at)
    kinds = {action for action, subject, *_ in actions if subject == request.request_id}
    assert {"stalled", "unallocated"} <= kinds


def test_a_request_completed_within_the_grace_period_is_left_to_the_allocator(
    conn, market, strategy, generator, reconciler, unique_trigger
):
    policy, vocab = generator
    strategies = {strategy.id: strategy}
    generation = GenerationContext(
        strategies, policy, vocab, 1.0, lambda *_: 1, reconciler.allocation, threading.Event()
    )
    request = release_request(strategy, market, unique_trigger)
    handle_request(conn, generation, request)
    # generated long ago, its evaluation outlasted the grace period, then finished just now
    conn.execute(
        "UPDATE core.generation_requests SET generated_at = now() - interval '2 hours' "
        "WHERE request_id = %s",
        (request.request_id,),
    )
    pending = [
        h
        for (h,) in conn.execute(
            "SELECT formula_hash FROM core.request_candidates WHERE request_id = %s",
            (request.request_id,),
        )
    ]
    evaluate_chunk(conn, EvaluationContext(strategies), request.request_id, pending)
    an_hour_ago = database_now(conn) - timedelta(hours=1)
    # its result is on its way to the allocator: not lost yet
    assert request.request_id not in unallocated_requests(conn, complete_before=an_hour_ago)
    conn.execute(
        "UPDATE core.request_candidates SET evaluated_at = now() - interval '90 minutes' "
        "WHERE request_id = %s",
        (request.request_id,),
    )
    # complete for longer than the grace period without an allocation: lost
    assert request.request_id in unallocated_requests(conn, complete_before=an_hour_ago)


def test_a_request_with_no_new_candidates_and_no_allocation_is_unallocated(
    conn, market, strategy, unique_trigger
):
    """Every formula was evaluated at an earlier decision: the request has no candidates,
    so its completion is its generation."""
    request = release_request(strategy, market, unique_trigger)
    register_request(conn, RequestRecord.of(request))
    set_candidates(conn, request.request_id, [])
    just_now = database_now(conn) - timedelta(minutes=1)
    assert request.request_id not in unallocated_requests(conn, complete_before=just_now)
    conn.execute(
        "UPDATE core.generation_requests SET generated_at = now() - interval '2 hours' "
        "WHERE request_id = %s",
        (request.request_id,),
    )
    assert request.request_id in unallocated_requests(conn, complete_before=just_now)


def test_a_request_queued_behind_older_work_is_waiting_not_stalled(
    conn, market, strategy, generator, reconciler
):
    policy, vocab = generator
    strategies = {strategy.id: strategy}
    generation = GenerationContext(
        strategies, policy, vocab, 1.0, lambda *_: 1, reconciler.allocation, threading.Event()
    )
    ids = []
    for hours_ago in (3, 2, 1):  # oldest, middle, youngest: each with every candidate pending
        trigger = f"queued-{uuid.uuid4().hex[:10]}"
        request = release_request(strategy, market, trigger)
        handle_request(conn, generation, request)
        conn.execute(
            "UPDATE core.generation_requests SET generated_at = now() - %s WHERE request_id = %s",
            (timedelta(hours=hours_ago), request.request_id),
        )
        ids.append(request.request_id)
    oldest, middle, youngest = ids

    def stalled() -> set[str]:
        idle = datetime.now(UTC) - timedelta(minutes=30)
        return set(stalled_requests(conn, idle_since=idle, redriven_since=datetime.now(UTC)))

    start_delivery(conn, task_id=f"task-{uuid.uuid4().hex}", request_id=oldest)
    # the workers are on the oldest request's tasks: the two after it are still queued
    assert not stalled() & {oldest, middle, youngest}
    conn.execute(
        "UPDATE core.task_deliveries SET last_at = now() - interval '1 hour' WHERE request_id = %s",
        (oldest,),
    )
    start_delivery(conn, task_id=f"task-{uuid.uuid4().hex}", request_id=youngest)
    # the workers reached the youngest request's tasks: the two before it were lost
    assert stalled() & {oldest, middle, youngest} == {oldest, middle}


def test_a_registered_request_that_never_got_candidates_is_requested_again(
    conn, market, strategy, reconciler, unique_trigger
):
    decided = when(market, 100)
    record = RequestRecord(
        request_id_for(strategy.id, unique_trigger),
        strategy.id,
        decided.date(),
        decided,
        unique_trigger,
        "release",
        datetime.now(UTC),
    )
    register_request(conn, record)  # the generator died here, its Kafka record lost too
    start = last_outbox_id(conn)
    assert reconciler.reconcile()["ungenerated"] >= 1
    assert reconciler.reconcile()["ungenerated"] == 0
    (again,) = [
        r for r in outbox_requests(conn, strategy.id, start) if r.trigger_event_id == unique_trigger
    ]
    assert again.request_id == record.request_id and again.decision_time == decided


def test_stale_unsent_outbox_rows_are_relayed(conn, reconciler, unique_trigger):
    enqueue(conn, event=OutboxEvent(f"t.{unique_trigger}", "k", {"n": 1}))
    reconciler.reconcile()
    assert reconciler.calls.relayed >= 1
