"""Event models: round trips, and every kind of bad message named (alphafactory.events)."""

from __future__ import annotations

import json
from datetime import UTC, date, datetime

import pytest

from alphafactory import topics
from alphafactory.events import (
    EVENTS,
    MAX_EVENT_BYTES,
    BacktestResults,
    EventError,
    FormulaResult,
    GenerationRequest,
    MacroRelease,
    Rebalance,
    decode,
)

NOW = datetime(2024, 5, 10, 12, 30, tzinfo=UTC)
RELEASE = {
    "event_id": "e-1",
    "series_id": "us_core_cpi",
    "period": "2024-04-30",
    "value": 3.1,
    "released_at": "2024-05-10T08:30:00-04:00",
    "schema_version": 1,
}


def raw(**changes) -> bytes:
    data = {**RELEASE, **changes}
    return json.dumps({k: v for k, v in data.items() if v is not ...}).encode()


def test_the_contract_release_decodes_with_its_types():
    event = decode(MacroRelease, raw())
    assert event.period == date(2024, 4, 30) and event.value == 3.1
    assert event.released_at == datetime(2024, 5, 10, 12, 30, tzinfo=UTC)
    assert event.key() == "us_core_cpi" and event.topic == topics.MACRO_RELEASES
    assert decode(MacroRelease, event.to_json()) == event
    assert decode(MacroRelease, raw(value=3)).value == 3.0  # a JSON integer is a number
    assert decode(MacroRelease, raw(extra_field="ignored")) == event


@pytest.mark.parametrize(
    "message, reason",
    [
        (b"{not json", "not UTF-8 JSON"),
        (b"\xff\xfe", "not UTF-8 JSON"),
        (b"[1, 2]", "expected a JSON object, got list"),
        (None, "empty message"),
        (raw(series_id=...), "series_id: Field required"),
        (raw(value="3.1"), "value: Input should be a valid number (got '3.1')"),
        (raw(value=True), "value: Input should be a valid number"),
        (raw(period="2024-13-01"), "period: Input should be a valid date"),
        (raw(released_at="2024-05-10T08:30:00"), "timestamp must carry a time zone"),
        (raw(event_id=""), "event_id: String should have at least 1 character"),
        (raw(schema_version=2), "schema_version 2 is unknown; expected 1"),
        (raw().replace(b"3.1", b"NaN"), "NaN is not a number JSON allows"),
        (raw().replace(b"3.1", b"Infinity"), "Infinity is not a number JSON allows"),
        (raw().replace(b"3.1", b"1e999"), "value: Input should be a finite number"),
    ],
)
def test_bad_messages_are_rejected_with_the_reason(message, reason):
    with pytest.raises(EventError, match="MacroRelease on 'macro.releases'") as info:
        decode(MacroRelease, message)
    assert reason in str(info.value)


def test_an_oversized_message_is_rejected_before_parsing():
    with pytest.raises(EventError, match=f"more than the {MAX_EVENT_BYTES:,} allowed"):
        decode(MacroRelease, b" " * (MAX_EVENT_BYTES + 1))


def test_every_internal_event_round_trips_and_is_frozen():
    events = [
        GenerationRequest(
            request_id="r1",
            strategy_id="s",
            as_of=date(2024, 4, 30),
            decision_time=NOW,
            trigger_event_id="e-1",
            trigger="release",
            candidates=100,
            requested_at=NOW,
        ),
        BacktestResults(
            request_id="r1",
            strategy_id="s",
            as_of=date(2024, 4, 30),
            evaluated_at=NOW,
            results=[
                FormulaResult(
                    formula_hash="h",
                    formula="rank(us_core_cpi)",
                    qualified=True,
                    metrics={"ic": 0.05, "hac_tstat": None},
                )
            ],
        ),
        Rebalance(
            allocation_id="a1",
            strategy_id="s",
            as_of=date(2024, 4, 30),
            trigger_event_id="e-1",
            weights={"A": 0.6, "B": 0.4},
            n_alphas=3,
            created_at=NOW,
        ),
    ]
    for event in events:
        assert EVENTS[event.topic] is type(event)
        assert decode(type(event), event.to_json()) == event
        assert event.key() == "s"
        with pytest.raises(Exception, match="frozen"):
            event.strategy_id = "other"  # type: ignore[misc]
    assert set(EVENTS) == set(topics.ALL_TOPICS) - {topics.DEAD_LETTERS}


def test_an_internal_event_with_a_bad_value_names_it():
    message = json.dumps(
        {
            "request_id": "r1",
            "strategy_id": "s",
            "as_of": "2024-04-30",
            "decision_time": NOW.isoformat(),
            "trigger_event_id": "e",
            "trigger": "earthquake",
            "candidates": 0,
            "requested_at": NOW.isoformat(),
        }
    ).encode()
    with pytest.raises(EventError) as info:
        decode(GenerationRequest, message)
    assert "trigger: Input should be 'release', 'schedule', 'manual' or 'market'" in str(info.value)
    assert "candidates: Input should be greater than or equal to 1 (got 0)" in str(info.value)


def _results(n: int, formula_chars: int) -> list[FormulaResult]:
    return [
        FormulaResult(
            formula_hash=f"{k:064x}",
            formula="x" * formula_chars,
            qualified=k % 2 == 0,
            metrics={"ic": k / 100, "hac_tstat": None},
        )
        for k in range(n)
    ]


CHUNK = {"request_id": "r1", "strategy_id": "s", "as_of": date(2024, 4, 30), "evaluated_at": NOW}


def test_a_chunk_is_announced_in_one_event():
    results = _results(100, 40)
    (event,) = BacktestResults.of_chunk(results, **CHUNK)
    assert event.results == results and event.request_id == "r1"
    assert decode(BacktestResults, event.to_json()) == event


def test_a_chunk_too_large_for_one_message_is_split_in_order_under_the_limit():
    results = _results(300, 9_000)  # 2.7 MB of formulas: more than a message holds
    events = BacktestResults.of_chunk(results, **CHUNK)
    assert len(events) > 1
    assert [r for e in events for r in e.results] == results
    for event in events:
        assert len(event.to_json()) <= MAX_EVENT_BYTES
        assert decode(BacktestResults, event.to_json()) == event


def test_a_per_formula_result_of_the_first_schema_is_refused_by_its_version():
    v1 = {**CHUNK, "as_of": "2024-04-30", "evaluated_at": NOW.isoformat(), "formula_hash": "h"}
    with pytest.raises(EventError, match="schema_version 1 is unknown; expected 2"):
        decode(BacktestResults, json.dumps({**v1, "schema_version": 1}).encode())
