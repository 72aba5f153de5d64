"""The market-data handler on the real stack: market.data events stored point-in-time in
batches, redeliveries absorbed, revisions kept beside the first vintage, a period decided
once when the universe has reported (or on its timeout), malformed events dead-lettered
with their reason while the rest of their batch is applied.

Runs on a private database, so no relay of another test publishes what is enqueued here.
"""

from __future__ import annotations

import json
import uuid
from datetime import UTC, date, datetime, timedelta

import psycopg
import pytest

from alphafactory.events import GenerationRequest, decode
from alphafactory.strategy import Strategy
from consumers.dead_letters import HEADER_ERROR, HEADER_OFFSET
from consumers.market_data_handler import (
    handle_market_data,
    market_data_loop,
    sweep_stale_periods,
)
from messaging.admin import ensure_topics
from messaging.publisher import KafkaPublisher, OutgoingRecord
from storage.db import open_pool
from storage.errors import InvalidRecordError
from storage.market import market_as_of

NOW = datetime(2024, 6, 1, 12, 0, tzinfo=UTC)


@pytest.fixture(scope="module")
def db(private_database):
    return private_database()


@pytest.fixture
def conn(db):
    with psycopg.connect(db.dsn("app"), autocommit=True) as connection:
        yield connection


@pytest.fixture
def assets() -> list[str]:
    tag = uuid.uuid4().hex[:6]
    return [f"mkt_{tag}_{k}" for k in range(3)]


def strategy_on(assets, *, timeout_s: float = 3600.0) -> Strategy:
    return Strategy.model_validate(
        {
            "id": f"daily-{uuid.uuid4().hex[:8]}",
            "universe": {"data": "store", "assets": list(assets)},
            "formulas": {"root_kinds": ["panel"]},
            "triggers": {"market": "period_close", "market_timeout_s": timeout_s},
            "generation": {"candidates": 9},
        }
    )


def event(asset: str, day: str, at: datetime, event_id: str | None = None, **fields) -> bytes:
    return json.dumps(
        {
            "event_id": event_id or f"{asset}:{day}:{at.isoformat()}",
            "asset": asset,
            "date": day,
            "fields": fields or {"close": 10.0, "returns": 0.01},
            "available_at": at.isoformat(),
            "schema_version": 1,
        }
    ).encode()


def closes(conn, asset: str, as_of: datetime) -> list[float]:
    found = market_as_of(conn, as_of=as_of, assets=[asset], fields=["close"])
    return found["value"].tolist()


def requests_of(conn, strategy: Strategy) -> list[GenerationRequest]:
    rows = conn.execute(
        "SELECT payload FROM core.outbox WHERE topic = %s AND key = %s ORDER BY id",
        (GenerationRequest.topic, strategy.id),
    ).fetchall()
    return [decode(GenerationRequest, json.dumps(p).encode()) for (p,) in rows]


CLOSE = datetime(2024, 5, 14, 20, 15, tzinfo=UTC)  # 16:15 in New York


def test_a_batch_is_stored_once_and_a_revision_kept_beside_the_first(conn, assets):
    a = assets[0]
    batch = [event(a, "2024-05-14", CLOSE, close=10.0), event(a, "2024-05-13", CLOSE, close=9.0)]
    outcome = handle_market_data(conn, batch, [], now=NOW)
    assert (outcome.events, outcome.observations) == (2, 2)
    again = handle_market_data(conn, batch, [], now=NOW)  # a redelivery
    assert (again.events, again.observations) == (0, 0)
    revised_at = CLOSE + timedelta(days=1)
    handle_market_data(conn, [event(a, "2024-05-14", revised_at, close=10.5)], [], now=NOW)
    assert closes(conn, a, CLOSE) == [9.0, 10.0]
    assert closes(conn, a, revised_at) == [9.0, 10.5]


def test_the_same_vintage_with_another_value_is_refused(conn, assets):
    a = assets[0]
    handle_market_data(conn, [event(a, "2024-05-14", CLOSE, "first", close=10.0)], [], now=NOW)
    with pytest.raises(InvalidRecordError, match=r"stored with value 10.0, not 11.0"):
        handle_market_data(conn, [event(a, "2024-05-14", CLOSE, "other", close=11.0)], [], now=NOW)
    assert closes(conn, a, CLOSE) == [10.0]


def test_a_period_is_decided_once_when_every_asset_of_the_universe_reported(conn, assets):
    strategy = strategy_on(assets)
    arrivals = [CLOSE + timedelta(minutes=k) for k in range(3)]
    first = [event(x, "2024-05-14", at) for x, at in zip(assets[:2], arrivals, strict=False)]
    assert handle_market_data(conn, first, [strategy], now=NOW).requests == ()
    last = event(assets[2], "2024-05-14", arrivals[2])
    (request,) = handle_market_data(conn, [last], [strategy], now=NOW).requests
    assert request.trigger == "market" and request.trigger_event_id == "market:2024-05-14"
    assert request.decision_time == arrivals[2]  # when the period became complete
    assert request.as_of == date(2024, 5, 14) and request.candidates == 9
    # a late revision of the closed period decides nothing more
    late = event(assets[0], "2024-05-14", arrivals[2] + timedelta(hours=1), close=10.1)
    assert handle_market_data(conn, [late], [strategy], now=NOW).requests == ()
    assert [r.request_id for r in requests_of(conn, strategy)] == [request.request_id]


def test_a_period_missing_an_asset_is_decided_at_its_timeout_by_the_data_clock(conn, assets):
    strategy = strategy_on(assets, timeout_s=1800)
    partial = [event(x, "2024-05-14", CLOSE) for x in assets[:2]]
    assert handle_market_data(conn, partial, [strategy], now=NOW).requests == ()
    # the next day's first report is hours after the deadline: the open period times out
    next_day = event(assets[0], "2024-05-15", CLOSE + timedelta(days=1))
    (request,) = handle_market_data(conn, [next_day], [strategy], now=NOW).requests
    assert request.trigger_event_id == "market:2024-05-14"
    assert request.decision_time == CLOSE + timedelta(seconds=1800)


def test_a_period_no_later_data_closes_is_swept_by_the_wall_clock(conn, assets):
    strategy = strategy_on(assets, timeout_s=1800)
    partial = [event(x, "2024-05-16", CLOSE + timedelta(days=2)) for x in assets[:2]]
    assert handle_market_data(conn, partial, [strategy], now=NOW).requests == ()
    opened = conn.execute(
        "SELECT opened_at FROM core.market_periods WHERE strategy_id = %s AND period = %s",
        (strategy.id, date(2024, 5, 16)),
    ).fetchone()[0]
    # before the timeout has passed in real time: nothing; after it: one request, once
    assert sweep_stale_periods(conn, [strategy], now=opened + timedelta(seconds=1799)) == 0
    later = opened + timedelta(seconds=1800)
    assert sweep_stale_periods(conn, [strategy], now=later) == 1
    assert sweep_stale_periods(conn, [strategy], now=later) == 0
    (payload,) = conn.execute(
        "SELECT payload FROM core.outbox WHERE payload->>'trigger_event_id' = %s",
        ("market:2024-05-16",),
    ).fetchone()
    # decided at the deadline on the data's clock, as the handler would have
    assert datetime.fromisoformat(payload["decision_time"]) == (
        CLOSE + timedelta(days=2, seconds=1800)
    )


def test_malformed_events_are_dead_lettered_and_the_rest_of_their_batch_applied(
    kafka_settings, db, conn, assets, unique, read_topic
):
    topic, dead, group = unique("market"), unique("dead"), unique("market-data")
    ensure_topics(kafka_settings, [topic, dead], partitions=1)
    strategy = strategy_on(assets)
    a = assets[0]
    good = [event(x, "2024-05-14", CLOSE) for x in assets]
    bad = {
        b"{not json": "not UTF-8 JSON",
        event(a, "2024-05-15", CLOSE): "before the observation's date",
        event(a, "2024-05-14", CLOSE, "nan", close=float("nan")): "NaN",
        event(a, "2024-05-14", NOW + timedelta(days=3)): "in the future",
        json.dumps({"event_id": "x", "asset": a, "date": "2024-05-14"}).encode(): "fields",
    }
    values = [good[0], *bad, good[1], good[2]]
    with KafkaPublisher.open(kafka_settings) as publisher:
        publisher.publish_many([OutgoingRecord(topic, a, v) for v in values])
        pool = open_pool(db.dsn("app"), min_size=1, max_size=2, name="market-data-test")
        try:
            stats = market_data_loop(
                kafka_settings,
                pool=pool,
                publisher=publisher,
                strategies=[strategy],
                topic=topic,
                group_id=group,
                dead_letter_topic=dead,
                max_records=len(values),
                clock=lambda: NOW,
            ).run()
        finally:
            pool.close()
    assert (stats.handled, stats.failed) == (3, len(bad))
    letters = read_topic(dead, expect=len(bad))
    reasons = {int(dict(x.headers)[HEADER_OFFSET]): dict(x.headers)[HEADER_ERROR] for x in letters}
    for offset, reason in enumerate(bad.values(), start=1):
        assert reason.encode() in reasons[offset], reasons[offset]
    stored = conn.execute(
        "SELECT count(*) FROM core.dead_letters WHERE topic = %s", (topic,)
    ).fetchone()[0]
    assert stored == len(bad)
    for asset in assets:
        assert closes(conn, asset, CLOSE) == [10.0]
    assert [r.trigger_event_id for r in requests_of(conn, strategy)] == ["market:2024-05-14"]
