"""The request scheduler's pure part: monthly ticks and deterministic requests (its
Postgres state and outbox: tests/storage/test_storage_schedule.py)."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta, timezone

import pytest

from alphafactory.clock import last_business_day
from alphafactory.events import GenerationRequest, decode
from alphafactory.strategy import Strategy
from producers.scheduler import due_ticks, schedule_requests


def utc(*args: int) -> datetime:
    return datetime(*args, tzinfo=UTC)


def tick(year: int, month: int, day: int) -> datetime:
    return utc(year, month, day, 21)


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
