"""The release handler on the real stack: releases stored point-in-time, one generation
request per triggered strategy in the outbox, duplicates absorbed, poison dead-lettered.

Runs on a private database (``private_database``), so no relay of another test publishes
the requests enqueued here. Strategy files are written to a temporary directory.
"""

from __future__ import annotations

import hashlib
import json
import uuid
from datetime import UTC, date, datetime, timedelta

import psycopg
import pytest

from alphafactory.events import GenerationRequest, decode, request_id_for
from alphafactory.strategy import active_strategies
from consumers.dead_letters import (
    HEADER_ERROR,
    HEADER_ERROR_TYPE,
    HEADER_GROUP,
    HEADER_LENGTH,
    HEADER_OFFSET,
    HEADER_PARTITION,
    HEADER_SHA256,
    HEADER_TOPIC,
)
from consumers.release_handler import CONSUMER, handle_release, release_loop
from messaging.admin import ensure_topics
from messaging.publisher import KafkaPublisher, OutgoingRecord
from storage.db import open_pool
from storage.errors import ConflictError
from storage.ledger import is_processed
from storage.macro import macro_as_of, macro_vintage_history

NOW = datetime(2024, 6, 1, 12, 0, tzinfo=UTC)
GENERATION_TOPIC = GenerationRequest.topic


@pytest.fixture(scope="module")
def db(private_database):
    return private_database()


@pytest.fixture
def conn(db):
    with psycopg.connect(db.dsn("app"), autocommit=True) as connection:
        yield connection


@pytest.fixture
def pool(db):
    opened = open_pool(db.dsn("app"), min_size=1, max_size=1, name="release-handler-test")
    yield opened
    opened.close()


@pytest.fixture
def series(unique) -> dict[str, str]:
    """Series ids unique to the test (the module shares one database)."""
    return {name: unique(name) for name in ("cpi", "payrolls", "gdp")}


@pytest.fixture
def strategies(tmp_path, series):
    """Two active strategies triggered by cpi, one by gdp only, one inactive one by cpi."""
    token = uuid.uuid4().hex[:8]
    files = {
        "a": (True, [series["cpi"], series["payrolls"]], 7),
        "b": (True, [series["cpi"]], 11),
        "c": (True, [series["gdp"]], 5),
        "d": (False, [series["cpi"]], 3),
    }
    for name, (active, triggers, candidates) in files.items():
        (tmp_path / f"{name}.toml").write_text(
            f'id = "{name}-{token}"\nactive = {str(active).lower()}\n'
            '[universe]\ndata = "store"\n'
            f"[generation]\ncandidates = {candidates}\n"
            f"[triggers]\nseries = {json.dumps(triggers)}\n"
        )
    loaded = active_strategies(tmp_path)
    assert [s.id for s in loaded] == [f"a-{token}", f"b-{token}", f"c-{token}"]
    return loaded


def release(series_id: str, *, period="2024-04-01", value=3.2, released_at, event_id) -> bytes:
    return json.dumps(
        {
            "event_id": event_id,
            "series_id": series_id,
            "period": period,
            "value": value,
            "released_at": released_at.isoformat(),
            "schema_version": 1,
        }
    ).encode()


def outbox_requests(conn, strategies) -> list[tuple[str, GenerationRequest]]:
    """(key, request) of every generation request enqueued for ``strategies``, in order."""
    rows = conn.execute(
        "SELECT key, payload FROM core.outbox WHERE topic = %s AND key = ANY(%s) ORDER BY id",
        (GENERATION_TOPIC, [s.id for s in strategies]),
    ).fetchall()
    return [(key, decode(GenerationRequest, json.dumps(payload).encode())) for key, payload in rows]


def test_a_release_through_kafka_is_stored_with_one_request_per_triggered_strategy(
    kafka_settings, db, conn, pool, strategies, series, unique, committed_offset
):
    topic, dead, group = unique("releases"), unique("dead"), unique("release-handler")
    ensure_topics(kafka_settings, [topic, dead], partitions=1)
    # 02:30 UTC is still the previous evening in New York: the request is as of May 14.
    released_at = datetime(2024, 5, 15, 2, 30, tzinfo=UTC)
    event_id = unique("ev")
    before = datetime.now(UTC)
    with KafkaPublisher.open(kafka_settings) as publisher:
        value = release(series["cpi"], released_at=released_at, event_id=event_id)
        publisher.publish(topic, key=series["cpi"], value=value)
        stats = release_loop(
            kafka_settings,
            pool=pool,
            publisher=publisher,
            strategies=strategies,
            topic=topic,
            group_id=group,
            dead_letter_topic=dead,
            max_records=1,
        ).run()

    assert (stats.handled, stats.failed) == (1, 0)
    assert committed_offset(group, topic, 0) == 1
    stored = macro_vintage_history(conn, series_id=series["cpi"])
    assert stored[["period", "value", "event_id"]].values.tolist() == [
        [datetime(2024, 4, 1), 3.2, event_id]
    ]
    assert stored["released_at"].iloc[0] == released_at
    assert is_processed(conn, consumer=CONSUMER, event_id=event_id)
    requests = outbox_requests(conn, strategies)
    a, b, _ = strategies
    assert [key for key, _ in requests] == [a.id, b.id]  # not c (gdp), not the inactive d
    for (_, request), strategy, candidates in zip(requests, (a, b), (7, 11), strict=True):
        assert request.request_id == request_id_for(strategy.id, event_id)
        assert request.strategy_id == strategy.id
        assert request.trigger == "release" and request.trigger_event_id == event_id
        assert request.as_of == date(2024, 5, 14)
        assert request.decision_time == released_at
        assert request.candidates == candidates
        assert before <= request.requested_at <= datetime.now(UTC)


def test_the_same_release_twice_gives_one_observation_and_one_request(conn, strategies, series):
    event_id = f"ev-{uuid.uuid4().hex}"
    value = release(series["payrolls"], released_at=NOW - timedelta(days=3), event_id=event_id)

    first = handle_release(conn, value, strategies, now=NOW)
    again = handle_release(conn, value, strategies, now=NOW + timedelta(hours=1))

    assert [r.strategy_id for r in first] == [strategies[0].id]
    assert again == []
    assert len(macro_vintage_history(conn, series_id=series["payrolls"])) == 1
    requests = outbox_requests(conn, strategies)
    assert [r for _, r in requests] == first
    assert requests[0][1].requested_at == NOW


def test_a_reused_event_id_with_other_content_conflicts_and_changes_nothing(
    conn, strategies, series
):
    event_id = f"ev-{uuid.uuid4().hex}"
    released_at = NOW - timedelta(days=3)
    handle_release(
        conn,
        release(series["cpi"], released_at=released_at, event_id=event_id),
        strategies,
        now=NOW,
    )
    changed = release(series["cpi"], value=9.9, released_at=released_at, event_id=event_id)

    with pytest.raises(ConflictError, match="already stored"):
        handle_release(conn, changed, strategies, now=NOW)

    assert macro_vintage_history(conn, series_id=series["cpi"])["value"].tolist() == [3.2]
    assert len(outbox_requests(conn, strategies)) == 2


def test_releases_out_of_order_are_both_stored_and_each_gets_its_request(conn, strategies, series):
    first_at = datetime(2024, 2, 15, 13, 30, tzinfo=UTC)
    revised_at = datetime(2024, 3, 14, 12, 30, tzinfo=UTC)
    gdp = series["gdp"]
    first = release(gdp, period="2024-01-01", value=1.0, released_at=first_at, event_id=f"{gdp}:1")
    revision = release(
        gdp, period="2024-01-01", value=1.5, released_at=revised_at, event_id=f"{gdp}:2"
    )

    # the revision arrives first (a replay out of order, or a late feed)
    late = handle_release(conn, revision, strategies, now=NOW)
    early = handle_release(conn, first, strategies, now=NOW + timedelta(seconds=1))

    history = macro_vintage_history(conn, series_id=gdp)
    assert history["value"].tolist() == [1.0, 1.5]  # append-only: nothing overwritten

    def value_at(when: datetime) -> list[float]:
        return macro_as_of(conn, series_ids=[gdp], as_of=when)["value"].tolist()

    assert value_at(first_at - timedelta(microseconds=1)) == []
    assert value_at(first_at) == [1.0]
    assert value_at(revised_at - timedelta(microseconds=1)) == [1.0]
    assert value_at(revised_at) == [1.5]
    c = strategies[2]
    assert [r.strategy_id for r in late + early] == [c.id, c.id]
    assert [r.decision_time for r in late + early] == [revised_at, first_at]
    assert [r.as_of for r in late + early] == [date(2024, 3, 14), date(2024, 2, 15)]
    assert late[0].request_id != early[0].request_id
    assert [r for _, r in outbox_requests(conn, strategies)] == late + early


def test_a_connection_inside_a_transaction_is_refused(db, strategies, series):
    value = release(series["cpi"], released_at=NOW, event_id=f"ev-{uuid.uuid4().hex}")
    with psycopg.connect(db.dsn("app")) as conn:  # not autocommit
        conn.execute("SELECT 1")  # opens a transaction nobody would commit
        with pytest.raises(RuntimeError, match="idle connection, this one is INTRANS"):
            handle_release(conn, value, strategies, now=NOW)


def _malformed(
    series_id: str, reused_event_id: str, at: datetime
) -> list[tuple[bytes | None, str]]:
    """Twenty-one messages the handler can never apply, each with the reason it must give."""
    good = json.loads(release(series_id, released_at=at, event_id="x"))

    def variant(**changes) -> bytes:
        fields = {**good, "event_id": f"bad-{uuid.uuid4().hex}", **changes}
        return json.dumps({k: v for k, v in fields.items() if v is not ...}).encode()

    raw = variant().decode()
    return [
        (b"{not json", "not UTF-8 JSON"),
        (b"\xff\xfe{}", "not UTF-8 JSON"),
        (b"[1, 2]", "expected a JSON object, got list"),
        (b"null", "expected a JSON object, got NoneType"),
        (variant(value=...), "value: Field required"),
        (variant(event_id=...), "event_id: Field required"),
        (variant(released_at=...), "released_at: Field required"),
        (raw.replace('"value": 3.2', '"value": NaN').encode(), "NaN is not a number"),
        (raw.replace('"value": 3.2', '"value": Infinity').encode(), "Infinity is not a number"),
        (raw.replace('"value": 3.2', '"value": -Infinity').encode(), "Infinity is not a number"),
        (variant(schema_version=2), "schema_version 2 is unknown"),
        (variant(schema_version="1"), "schema_version '1' is unknown"),
        (variant(note="x" * (1 << 20)), "more than the 1,048,576 allowed"),
        (variant(released_at="2024-05-10T12:30:00"), "must carry a time zone"),
        (variant(period="2024-13-01"), "period:"),
        (variant(value="3.2"), "value: Input should be a valid number"),
        (variant(event_id=""), "event_id: String should have at least 1 character"),
        (variant(series_id="   "), "series_id must be a non-empty string"),
        (variant(series_id="cpi\u0000"), "cannot be stored"),
        (variant(event_id=reused_event_id, value=4.0), "already stored"),
        (variant(released_at="2099-01-01T13:30:00+00:00"), "is in the future"),
    ]


def test_malformed_messages_are_dead_lettered_and_valid_ones_applied(
    kafka_settings, conn, pool, strategies, series, unique, committed_offset, read_topic
):
    topic, dead, group = unique("releases"), unique("dead"), unique("release-handler")
    ensure_topics(kafka_settings, [topic, dead], partitions=3)
    cpi = series["cpi"]
    valid = [
        release(
            cpi,
            period=f"2024-0{m}-01",
            value=float(m),
            event_id=f"{cpi}:{m}",
            released_at=datetime(2024, m + 1, 12, 12, 30, tzinfo=UTC),
        )
        for m in range(1, 7)
    ]
    malformed = _malformed(cpi, f"{cpi}:1", NOW)
    records = [OutgoingRecord(topic, cpi, v) for v in valid[:3]]
    # keyed apart, except the reused event id: on cpi's partition, after the release it reuses
    keys = [f"bad-{i}" for i in range(19)] + [cpi] + ["bad-future"]
    records += [OutgoingRecord(topic, k, v) for k, (v, _) in zip(keys, malformed, strict=True)]
    # a redelivered valid release
    records += [OutgoingRecord(topic, cpi, valid[0])] + [
        OutgoingRecord(topic, cpi, v) for v in valid[3:]
    ]
    # a feed that sends records over 1 MiB; the handler's own producer keeps the default
    # limit, so the dead-letter copy of such a record must be cut to fit
    with KafkaPublisher.open(kafka_settings, max_request_size=4 << 20) as feed:
        sent = feed.publish_many(records)
    with KafkaPublisher.open(kafka_settings) as publisher:
        stats = release_loop(
            kafka_settings,
            pool=pool,
            publisher=publisher,
            strategies=strategies,
            topic=topic,
            group_id=group,
            dead_letter_topic=dead,
            max_records=len(records),
        ).run()

    assert (stats.handled, stats.failed) == (7, 21)
    expected = {
        (meta.partition, meta.offset): reason
        for meta, (_, reason) in zip(sent[3:24], malformed, strict=True)
    }
    letters = read_topic(dead, expect=21)
    assert len(letters) == 21
    for letter in letters:
        headers = dict(letter.headers)
        where = (int(headers[HEADER_PARTITION]), int(headers[HEADER_OFFSET]))
        assert headers[HEADER_TOPIC] == topic.encode()
        assert headers[HEADER_GROUP] == group.encode()
        assert expected[where] in headers[HEADER_ERROR].decode(), headers[HEADER_ERROR]
        assert headers[HEADER_ERROR_TYPE].decode().rsplit(".", 1)[1] in {
            "EventError",
            "FutureEventError",
            "ConflictError",
            "InvalidRecordError",
        }
    assert sorted(int(dict(x.headers)[HEADER_OFFSET]) for x in letters) == sorted(
        offset for _, offset in expected
    )
    (large,) = [x for x in letters if b"more than the 1,048,576" in dict(x.headers)[HEADER_ERROR]]
    headers = dict(large.headers)
    original = malformed[12][0]
    assert len(large.value) < 1 << 20 and original.startswith(large.value)
    assert int(headers[HEADER_LENGTH]) == len(original)
    assert headers[HEADER_SHA256].decode() == hashlib.sha256(original).hexdigest()
    assert macro_vintage_history(conn, series_id=cpi)["value"].tolist() == [1.0, 2, 3, 4, 5, 6]
    requests = [r for _, r in outbox_requests(conn, strategies)]
    assert len(requests) == 12  # six releases, two strategies, none for the redelivery
    assert len({r.request_id for r in requests}) == 12
    per_partition: dict[int, int] = {}
    for meta in sent:
        per_partition[meta.partition] = max(per_partition.get(meta.partition, 0), meta.offset + 1)
    for partition, end in per_partition.items():
        assert committed_offset(group, topic, partition) == end
