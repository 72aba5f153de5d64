"""The request scheduler: monthly ticks, deterministic requests, and its state file."""

from __future__ import annotations

import json
import threading
from datetime import UTC, date, datetime, timedelta, timezone

import pytest

from alphafactory.events import GenerationRequest, decode
from alphafactory.strategy import Strategy
from producers.errors import PublishError
from producers.scheduler import (
    due_ticks,
    last_business_day,
    load_state,
    publish_due,
    run_scheduler,
    save_state,
    schedule_requests,
)


def utc(*args: int) -> datetime:
    return datetime(*args, tzinfo=UTC)


def tick(year: int, month: int, day: int) -> datetime:
    return utc(year, month, day, 21)


class RecordingPublisher:
    """Stands in for KafkaPublisher: keeps what publish_many was given, or fails on demand."""

    def __init__(self, fail: bool = False) -> None:
        self.records: list = []
        self.fail = fail

    def publish_many(self, records):
        if self.fail:
            raise PublishError("broker refused", topic="t", key="k")
        self.records.extend(records)
        return []


@pytest.fixture
def monthly() -> Strategy:
    return Strategy.model_validate({"id": "monthly_test", "triggers": {"schedule": "monthly"}})


@pytest.mark.parametrize(
    "year, month, expected",
    [
        (2024, 5, date(2024, 5, 31)),  # a Friday
        (2024, 8, date(2024, 8, 30)),  # the 31st is a Saturday
        (2024, 3, date(2024, 3, 29)),  # the 31st is a Sunday
        (2024, 2, date(2024, 2, 29)),  # leap year, a Thursday
        (2023, 12, date(2023, 12, 29)),  # the 31st is a Sunday
    ],
)
def test_last_business_day_skips_weekends(year, month, expected):
    assert last_business_day(year, month) == expected


def test_ticks_across_month_and_year_ends_and_weekends():
    ticks = due_ticks("monthly", tick(2023, 11, 30), utc(2024, 4, 1))
    assert ticks == [tick(2023, 12, 29), tick(2024, 1, 31), tick(2024, 2, 29), tick(2024, 3, 29)]


def test_a_tick_is_due_at_21_utc_not_before():
    assert due_ticks("monthly", tick(2024, 4, 30), utc(2024, 5, 31, 20, 59)) == []
    assert due_ticks("monthly", tick(2024, 4, 30), tick(2024, 5, 31)) == [tick(2024, 5, 31)]


def test_now_in_another_zone_is_compared_as_an_instant():
    # 23:30 at +05:00 is 18:30 UTC: May's tick (21:00 UTC) has not come yet
    now = datetime(2024, 5, 31, 23, 30, tzinfo=timezone(timedelta(hours=5)))
    assert due_ticks("monthly", None, now) == [tick(2024, 4, 30)]


def test_a_new_strategy_gets_only_the_latest_tick():
    assert due_ticks("monthly", None, utc(2024, 6, 10)) == [tick(2024, 5, 31)]


def test_no_ticks_for_an_empty_schedule_or_a_clock_behind_the_state():
    assert due_ticks("", None, utc(2024, 6, 10)) == []
    assert due_ticks("monthly", tick(2024, 5, 31), utc(2024, 5, 1)) == []


@pytest.mark.parametrize(
    "schedule, last, now, message",
    [
        ("weekly", None, utc(2024, 1, 1), "schedule 'weekly' is unknown"),
        ("monthly", None, datetime(2024, 1, 1), "now=2024-01-01T00:00:00 has no time zone"),
        ("monthly", datetime(2023, 1, 1), utc(2024, 1, 1), "last=2023-01-01T00:00:00"),
    ],
)
def test_bad_arguments_are_named(schedule, last, now, message):
    with pytest.raises(ValueError, match=message):
        due_ticks(schedule, last, now)


def test_requests_are_deterministic_per_strategy_and_tick(monthly):
    first = schedule_requests(monthly, [tick(2024, 5, 31)], requested_at=utc(2024, 6, 1))
    again = schedule_requests(monthly, [tick(2024, 5, 31)], requested_at=utc(2024, 6, 2))
    (request,) = first
    assert request.trigger_event_id == "schedule:monthly_test:2024-05-31T21:00:00+00:00"
    assert request.request_id == again[0].request_id and len(request.request_id) == 32
    assert (request.as_of, request.decision_time) == (date(2024, 5, 31), tick(2024, 5, 31))
    assert (request.trigger, request.strategy_id, request.key()) == (
        "schedule",
        "monthly_test",
        "monthly_test",
    )
    assert request.candidates == monthly.generation.candidates
    assert decode(GenerationRequest, request.to_json()) == request


def test_request_ids_differ_between_strategies_and_ticks(monthly):
    other = monthly.model_copy(update={"id": "other"})
    ids = {
        r.request_id
        for strategy in (monthly, other)
        for r in schedule_requests(strategy, [tick(2024, 4, 30), tick(2024, 5, 31)])
    }
    assert len(ids) == 4


def test_candidates_override_the_strategy(monthly):
    (request,) = schedule_requests(monthly, [tick(2024, 5, 31)], 7)
    assert request.candidates == 7


def test_state_file_round_trip_is_atomic(tmp_path):
    path = tmp_path / "state" / "scheduler.json"
    assert load_state(path) == {}
    save_state(path, {"a": tick(2024, 5, 31)})
    save_state(path, {"a": tick(2024, 6, 28), "b": tick(2024, 5, 31)})
    assert load_state(path) == {"a": tick(2024, 6, 28), "b": tick(2024, 5, 31)}
    assert [p.name for p in path.parent.iterdir()] == ["scheduler.json"]  # no temp left over
    assert json.loads(path.read_text())["last_ticks"]["a"] == "2024-06-28T21:00:00+00:00"


def test_an_unreadable_state_file_is_named(tmp_path):
    path = tmp_path / "scheduler.json"
    path.write_text("{not json")
    with pytest.raises(ValueError, match="scheduler.json is unreadable"):
        load_state(path)


def test_publishing_twice_with_the_stored_state_sends_no_duplicates(monthly, tmp_path):
    state = tmp_path / "scheduler.json"
    idle = Strategy.model_validate({"id": "no_schedule"})
    inactive = monthly.model_copy(update={"id": "inactive", "active": False})
    publisher = RecordingPublisher()

    sent = [
        publish_due(publisher, [monthly, idle, inactive], state_path=state, now=n)
        for n in (utc(2024, 6, 10), utc(2024, 6, 20), utc(2024, 7, 1))
    ]

    assert sent == [1, 0, 1]
    requests = [decode(GenerationRequest, r.value) for r in publisher.records]
    assert [r.decision_time for r in requests] == [tick(2024, 5, 31), tick(2024, 6, 28)]
    assert {(r.topic, r.key) for r in publisher.records} == {
        (GenerationRequest.topic, "monthly_test")
    }
    assert load_state(state) == {"monthly_test": tick(2024, 6, 28)}


def test_a_failed_publish_does_not_advance_the_state(monthly, tmp_path):
    state = tmp_path / "scheduler.json"
    save_state(state, {"monthly_test": tick(2024, 4, 30)})
    with pytest.raises(PublishError):
        publish_due(RecordingPublisher(fail=True), [monthly], state_path=state, now=utc(2024, 6, 1))
    assert load_state(state) == {"monthly_test": tick(2024, 4, 30)}


def test_run_scheduler_publishes_until_stopped(monthly, tmp_path):
    stop = threading.Event()
    calls = []

    def now() -> datetime:
        calls.append(1)
        if len(calls) == 2:
            stop.set()
        return utc(2024, 6, 10) if len(calls) == 1 else utc(2024, 7, 10)

    publisher = RecordingPublisher()
    published = run_scheduler(
        publisher, [monthly], state_path=tmp_path / "s.json", now=now, stop_event=stop, poll_s=0.01
    )
    assert published == 2 and len(calls) == 2
    assert [decode(GenerationRequest, r.value).as_of for r in publisher.records] == [
        date(2024, 5, 31),
        date(2024, 6, 28),
    ]
