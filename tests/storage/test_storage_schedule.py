"""The scheduler on the real Postgres: its state lives in core.schedule_ticks, its requests
leave through the outbox in the same transaction, and two schedulers never double a tick."""

from __future__ import annotations

import json
import threading
from datetime import UTC, date, datetime

import psycopg
import pytest

from alphafactory.events import GenerationRequest, decode
from alphafactory.retry import Backoff
from alphafactory.strategy import Strategy
from consumers.failures import Resilience
from producers.scheduler import enqueue_due, run_scheduler
from storage.db import open_pool
from storage.schedule import last_ticks

pytestmark = pytest.mark.stack


def utc(*args: int) -> datetime:
    return datetime(*args, tzinfo=UTC)


@pytest.fixture
def monthly(unique) -> Strategy:
    return Strategy.model_validate({"id": unique("monthly"), "triggers": {"schedule": "monthly"}})


def outbox_requests(conn, strategy_id: str) -> list[GenerationRequest]:
    rows = conn.execute(
        "SELECT topic, key, payload FROM core.outbox WHERE key = %s ORDER BY id", (strategy_id,)
    ).fetchall()
    assert {(topic, key) for topic, key, _ in rows} <= {(GenerationRequest.topic, strategy_id)}
    return [GenerationRequest.model_validate_json(json.dumps(payload)) for _, _, payload in rows]


def test_each_tick_is_enqueued_once_with_its_state(app_conn, monthly, unique):
    idle = Strategy.model_validate({"id": unique("unscheduled")})
    inactive = monthly.model_copy(update={"id": unique("inactive"), "active": False})
    strategies = [monthly, idle, inactive]
    counts = [
        enqueue_due(app_conn, strategies, now=now)
        for now in (utc(2024, 6, 10), utc(2024, 6, 20), utc(2024, 7, 1))
    ]
    assert counts == [1, 0, 1]
    requests = outbox_requests(app_conn, monthly.id)
    assert [r.as_of for r in requests] == [date(2024, 5, 31), date(2024, 6, 28)]
    assert all(decode(GenerationRequest, r.to_json()) == r for r in requests)
    ticks = last_ticks(app_conn)
    assert ticks[monthly.id] == utc(2024, 6, 28, 21)
    assert idle.id not in ticks and inactive.id not in ticks


def test_a_late_scheduler_catches_up_on_every_missed_tick(app_conn, monthly):
    enqueue_due(app_conn, [monthly], now=utc(2024, 2, 10))
    assert enqueue_due(app_conn, [monthly], now=utc(2024, 6, 10)) == 4  # Feb..May
    as_of = [r.as_of.month for r in outbox_requests(app_conn, monthly.id)]
    assert as_of == [1, 2, 3, 4, 5]


def test_concurrent_schedulers_enqueue_a_tick_once(connect_as, monthly):
    barrier = threading.Barrier(4)
    counts: list[int] = []

    def scheduler() -> None:
        conn = connect_as("app", autocommit=True)
        barrier.wait()
        counts.append(enqueue_due(conn, [monthly], now=utc(2024, 6, 10)))

    threads = [threading.Thread(target=scheduler) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)
    assert sorted(counts) == [0, 0, 0, 1]
    reader = connect_as("app", autocommit=True)
    assert len(outbox_requests(reader, monthly.id)) == 1


def test_a_pass_that_fails_midway_enqueues_nothing_and_keeps_the_state(
    app_conn, monthly, monkeypatch
):
    enqueue_due(app_conn, [monthly], now=utc(2024, 4, 10))

    def crash(*args, **kwargs):
        raise RuntimeError("scheduler died after enqueueing, before recording the tick")

    monkeypatch.setattr("producers.scheduler.record_last_tick", crash)
    with pytest.raises(RuntimeError, match="scheduler died"):
        enqueue_due(app_conn, [monthly], now=utc(2024, 6, 10))
    assert len(outbox_requests(app_conn, monthly.id)) == 1  # the requests rolled back too
    monkeypatch.undo()
    assert enqueue_due(app_conn, [monthly], now=utc(2024, 6, 10)) == 2
    assert len(outbox_requests(app_conn, monthly.id)) == 3


def test_run_scheduler_enqueues_until_stopped_and_waits_out_an_outage(
    app_conn, db_settings, monthly
):
    stop = threading.Event()
    calls = []

    def now() -> datetime:
        calls.append(1)
        if len(calls) == 2:
            stop.set()
        return utc(2024, 6, 10) if len(calls) == 1 else utc(2024, 7, 10)

    outage = {"left": 3}

    def postgres_restarting(one_pass, stop_event):
        def flaky():
            if outage["left"]:
                outage["left"] -= 1
                raise psycopg.OperationalError("the database system is starting up")
            return one_pass()

        resilience = Resilience("scheduler test", backoff=Backoff(0.001, 0.002))
        return resilience.call(flaky, stop_event)

    with open_pool(db_settings.dsn("app"), min_size=1, max_size=1) as pool:
        enqueued = run_scheduler(
            pool,
            [monthly],
            now=now,
            stop_event=stop,
            poll_s=0.01,
            wait_out_outages=postgres_restarting,
        )
    assert enqueued == 2 and len(calls) == 2 and outage["left"] == 0
    assert [r.as_of for r in outbox_requests(app_conn, monthly.id)] == [
        date(2024, 5, 31),
        date(2024, 6, 28),
    ]
