"""The outbox relay on the real stack: rows published to their topics with their keys and
marked sent, concurrent relays publish each row once, a failed publish leaves rows unsent.

Each test gets its own database (``private_database``): a relay claims every unsent row of
its database, so a shared one would publish other tests' rows.
"""

from __future__ import annotations

import json
import threading
import time
from datetime import timedelta

import psycopg
import pytest
from kafka.errors import KafkaTimeoutError

from consumers.relay import relay_once, run_relay
from messaging.admin import ensure_topics
from messaging.errors import PublishError
from messaging.publisher import KafkaPublisher
from storage.db import open_pool
from storage.outbox import OutboxEvent, enqueue


@pytest.fixture
def db(private_database):
    return private_database()


@pytest.fixture
def connect(db):
    opened: list[psycopg.Connection] = []

    def make() -> psycopg.Connection:
        conn = psycopg.connect(db.dsn("app"), autocommit=True)
        opened.append(conn)
        return conn

    yield make
    for conn in opened:
        conn.close()


@pytest.fixture
def pool(db):
    opened = open_pool(db.dsn("app"), min_size=1, max_size=1, name="relay-test")
    yield opened
    opened.close()


@pytest.fixture
def publisher(kafka_settings):
    with KafkaPublisher.open(kafka_settings) as opened:
        yield opened


def fill(conn, topic: str, count: int, *, start: int = 0) -> list[int]:
    """``count`` outbox rows on ``topic``, payload ``{"seq": i}``, keys k0..k4."""
    events = [OutboxEvent(topic, f"k{i % 5}", {"seq": i}) for i in range(start, start + count)]
    return [enqueue(conn, event=event) for event in events]


def unsent(conn) -> list[int]:
    return [r[0] for r in conn.execute("SELECT id FROM core.outbox WHERE sent_at IS NULL")]


def seqs(records) -> list[int]:
    return sorted(json.loads(r.value)["seq"] for r in records)


def test_rows_are_published_to_their_topics_with_their_keys_and_marked_sent(
    kafka_settings, connect, publisher, unique, read_topic
):
    conn = connect()
    first, second = unique("relay-a"), unique("relay-b")
    ensure_topics(kafka_settings, [first, second], partitions=2)
    payload = {"request_id": "r1", "nested": {"x": [1, 2.5, None]}, "text": "é"}
    ids = [
        enqueue(conn, event=OutboxEvent(first, "strategy-1", payload)),
        enqueue(conn, event=OutboxEvent(second, "strategy-2", {"n": 2})),
        enqueue(conn, event=OutboxEvent(first, None, {"n": 3})),
    ]

    assert relay_once(conn, publisher, 10) == 3
    assert relay_once(conn, publisher, 10) == 0

    on_first = read_topic(first, expect=2)
    on_second = read_topic(second, expect=1)
    assert sorted((r.key, json.loads(r.value)) for r in on_first) == [
        (f"outbox:{ids[2]}".encode(), {"n": 3}),
        (b"strategy-1", payload),
    ]
    assert [(r.key, json.loads(r.value)) for r in on_second] == [(b"strategy-2", {"n": 2})]
    assert unsent(conn) == []
    sent = conn.execute("SELECT count(*) FROM core.outbox WHERE sent_at IS NOT NULL").fetchone()
    assert sent == (3,)


def test_a_batch_is_at_most_limit_rows_oldest_first(kafka_settings, connect, publisher, unique):
    conn = connect()
    topic = unique("relay-limit")
    ensure_topics(kafka_settings, [topic], partitions=1)
    ids = fill(conn, topic, 5)

    assert relay_once(conn, publisher, 3) == 3
    assert unsent(conn) == ids[3:]
    with pytest.raises(ValueError, match="limit must be >= 1"):
        relay_once(conn, publisher, 0)


class HeldPublisher:
    """Wraps a publisher; ``publish_many`` signals it holds its claimed rows, then waits."""

    def __init__(self, publisher: KafkaPublisher) -> None:
        self._publisher = publisher
        self.claimed = threading.Event()
        self.release = threading.Event()

    def publish_many(self, records):
        self.claimed.set()
        assert self.release.wait(30), "the test never released the held relay"
        return self._publisher.publish_many(records)


def test_a_relay_skips_the_rows_another_relay_holds(
    kafka_settings, connect, publisher, unique, read_topic
):
    topic = unique("relay-skip")
    ensure_topics(kafka_settings, [topic], partitions=3)
    fill(connect(), topic, 20)
    held = HeldPublisher(publisher)
    counts: dict[str, int] = {}
    holder_conn, other_conn = connect(), connect()
    holder = threading.Thread(target=lambda: counts.update(held=relay_once(holder_conn, held, 5)))
    holder.start()
    try:
        assert held.claimed.wait(10)
        # the first relay holds its five locked rows: the second takes the other fifteen
        counts["other"] = relay_once(other_conn, publisher, 100)
        counts["other_again"] = relay_once(other_conn, publisher, 100)
    finally:
        held.release.set()
        holder.join(30)

    assert counts == {"held": 5, "other": 15, "other_again": 0}
    assert seqs(read_topic(topic, expect=21, timeout_s=3)) == list(range(20))
    assert unsent(connect()) == []


def test_two_relays_running_together_publish_each_row_once(
    kafka_settings, connect, unique, read_topic
):
    topic = unique("relay-race")
    ensure_topics(kafka_settings, [topic], partitions=3)
    fill(connect(), topic, 300)
    totals: list[int] = []
    start = threading.Barrier(2)

    def relay() -> None:
        conn = connect()
        with KafkaPublisher.open(kafka_settings) as own:
            start.wait()
            total = 0
            while count := relay_once(conn, own, 7):
                total += count
            totals.append(total)

    threads = [threading.Thread(target=relay) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)

    assert sum(totals) == 300 and len(totals) == 2
    assert seqs(read_topic(topic, expect=301, timeout_s=3)) == list(range(300))
    assert unsent(connect()) == []


class UnreachableBroker:
    """A publisher whose broker is away: every batch times out."""

    def publish_many(self, records):
        try:
            raise KafkaTimeoutError("Failed to update metadata after 30.0 secs")
        except KafkaTimeoutError as error:
            raise PublishError(f"{len(records)} records not published: {error}") from error


def test_an_unreachable_broker_leaves_the_rows_unsent_until_a_retry_succeeds(
    kafka_settings, connect, publisher, unique, read_topic
):
    conn = connect()
    topic = unique("relay-fail")
    ensure_topics(kafka_settings, [topic], partitions=1)
    ids = fill(conn, topic, 3)
    with pytest.raises(PublishError, match="3 records not published"):
        relay_once(conn, UnreachableBroker(), 10)
    assert unsent(conn) == ids
    assert relay_once(conn, publisher, 10) == 3
    assert unsent(conn) == []
    assert seqs(read_topic(topic, expect=3, timeout_s=3)) == [0, 1, 2]


def test_a_row_the_broker_refuses_is_set_aside_and_the_others_published(
    kafka_settings, connect, unique, read_topic
):
    conn = connect()
    topic = unique("relay-refused")
    ensure_topics(kafka_settings, [topic], partitions=1)
    ids = [
        enqueue(conn, event=OutboxEvent(topic, "k", {"seq": 0})),
        enqueue(conn, event=OutboxEvent(topic, "k", {"seq": 1, "pad": "x" * 5000})),
        enqueue(conn, event=OutboxEvent(topic, "k", {"seq": 2})),
    ]
    with KafkaPublisher.open(kafka_settings, max_request_size=1000) as small:
        assert relay_once(conn, small, 10) == 3
    assert unsent(conn) == []
    # at-least-once: the row acknowledged before the refusal is published again
    assert seqs(read_topic(topic, expect=4, timeout_s=3)) == [0, 0, 2]
    (letter,) = conn.execute(
        'SELECT "offset", error FROM core.dead_letters WHERE topic = %s', (f"outbox:{topic}",)
    ).fetchall()
    assert letter[0] == ids[1] and "MessageSizeTooLarge" in letter[1]


def test_run_relay_drains_the_outbox_and_stops_at_once_on_the_stop_event(
    connect, pool, publisher, unique, read_topic, kafka_settings
):
    topic = unique("relay-run")
    ensure_topics(kafka_settings, [topic], partitions=1)
    conn = connect()
    fill(conn, topic, 250)  # more than one batch
    stop = threading.Event()
    result: list[int] = []

    def relay() -> None:
        result.append(run_relay(pool, publisher, stop_event=stop, idle_s=30, retention=None))

    thread = threading.Thread(target=relay)
    thread.start()
    try:
        published = read_topic(topic, expect=250, timeout_s=30)
        deadline = time.monotonic() + 10
        while unsent(conn) and time.monotonic() < deadline:
            time.sleep(0.05)
    finally:
        stop.set()
        started = time.monotonic()
        thread.join(10)

    # the relay was waiting out a 30 s idle interval: the stop event cut it short
    assert time.monotonic() - started < 5
    assert result == [250]
    assert seqs(published) == list(range(250))
    assert unsent(conn) == []


def test_run_relay_prunes_rows_sent_before_the_retention(
    connect, pool, publisher, unique, read_topic, kafka_settings
):
    topic = unique("relay-prune")
    ensure_topics(kafka_settings, [topic], partitions=1)
    conn = connect()
    old, recent = fill(conn, topic, 2), fill(conn, topic, 2, start=2)
    conn.execute(
        "UPDATE core.outbox SET sent_at = now() - interval '3 days' WHERE id = ANY(%s)", (old,)
    )
    conn.execute(
        "UPDATE core.outbox SET sent_at = now() - interval '1 hour' WHERE id = ANY(%s)",
        (recent[:1],),
    )
    unpublished = recent[1:]
    stop = threading.Event()
    thread = threading.Thread(
        target=lambda: run_relay(
            pool, publisher, stop_event=stop, idle_s=0.05, retention=timedelta(days=1)
        )
    )
    thread.start()
    try:
        read_topic(topic, expect=1, timeout_s=20)
    finally:
        stop.set()
        thread.join(10)
    left = [r[0] for r in conn.execute("SELECT id FROM core.outbox ORDER BY id")]
    # older than a day: gone; sent an hour ago, and the one the relay just sent: kept
    assert left == recent and unsent(conn) == []
    assert unpublished[0] in left
