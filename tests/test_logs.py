"""JSON logs carry the ids of the work in hand: a record's coordinates from the consume
loop, the event and request ids from decoding its event, a task's request."""

from __future__ import annotations

import io
import json
import logging

import pytest

from alphafactory import log_context
from alphafactory.events import EventError, GenerationRequest, MacroRelease, decode
from app.logs import configure_logging

RELEASE = {
    "event_id": "ev-1",
    "series_id": "S1",
    "period": "2024-01-01",
    "value": 1.5,
    "released_at": "2024-02-01T12:30:00+00:00",
    "schema_version": 1,
}


@pytest.fixture
def json_lines(monkeypatch):
    """Root logging in JSON to a buffer; the test session's logging restored after."""
    root = logging.getLogger()
    saved = root.handlers[:], root.level
    buffer = io.StringIO()
    monkeypatch.setattr("sys.stderr", buffer)
    configure_logging("INFO", "json", service="release-handler")
    yield lambda: [json.loads(line) for line in buffer.getvalue().splitlines()]
    root.handlers[:] = saved[0]
    root.setLevel(saved[1])


def test_every_json_line_names_the_record_event_and_request(json_lines):
    log = logging.getLogger("alphafactory.test")
    log.info("outside any record")
    with log_context.bound(record="macro.releases[0]@7"):
        decode(MacroRelease, json.dumps(RELEASE).encode())
        log.info("stored")
    request = {
        "request_id": "req-9",
        "strategy_id": "s",
        "as_of": "2024-02-01",
        "decision_time": "2024-02-01T12:30:00+00:00",
        "trigger_event_id": "ev-1",
        "trigger": "release",
        "candidates": 10,
        "requested_at": "2024-02-01T12:31:00+00:00",
        "schema_version": 1,
    }
    with log_context.bound(record="alpha.generation.requests[2]@3"):
        decode(GenerationRequest, json.dumps(request).encode())
        log.warning("generating")
    outside, stored, generating = json_lines()
    assert outside["event_id"] is None and outside["request_id"] is None
    assert outside["service"] == "release-handler" and outside["level"] == "INFO"
    assert (stored["event_id"], stored["record"], stored["message"]) == (
        "ev-1",
        "macro.releases[0]@7",
        "stored",
    )
    assert (generating["request_id"], generating["event_id"]) == ("req-9", "ev-1")


def test_an_invalid_event_is_still_named_and_a_batch_takes_no_ones_ids(json_lines):
    log = logging.getLogger("alphafactory.test")
    with log_context.bound(record="macro.releases[0]@8"):
        with pytest.raises(EventError):
            decode(MacroRelease, json.dumps({**RELEASE, "value": "high"}).encode())
        log.warning("dead-lettered")
    with log_context.bound(record="alpha.backtest.results[0]@1..9", batch=True):
        decode(MacroRelease, json.dumps(RELEASE).encode())
        log.info("a batch")
    invalid, batch = json_lines()
    assert invalid["event_id"] == "ev-1"
    assert batch["event_id"] is None and batch["record"] == "alpha.backtest.results[0]@1..9"


def test_decoding_outside_a_scope_keeps_nothing():
    decode(MacroRelease, json.dumps(RELEASE).encode())
    assert log_context.current() == {}


def test_an_unknown_log_format_is_refused_by_the_settings():
    from alphafactory.settings import SettingsError, load_settings

    with pytest.raises(SettingsError, match="LOG_FORMAT"):
        load_settings(log_format="xml")
