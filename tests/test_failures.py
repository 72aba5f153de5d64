"""The one failure classification, and a consume loop that waits out outages, retries
poison a bounded number of times, then dead-letters it (scripted consumer, no broker)."""

from __future__ import annotations

import threading

import kombu.exceptions
import psycopg
import pytest
import redis.exceptions
from kafka import TopicPartition
from kafka.consumer.fetcher import ConsumerRecord
from kafka.errors import KafkaTimeoutError, MessageSizeTooLargeError, NodeNotReadyError
from psycopg_pool import PoolTimeout

from alphafactory.decision import DecisionError
from alphafactory.events import EventError
from alphafactory.formula import FormulaError
from alphafactory.retry import Backoff
from alphafactory.settings import KafkaSettings
from consumers.failures import Failure, Resilience, Stopped, UnknownStrategy, classify
from consumers.loop import ConsumerLoop
from consumers.market_data import NoMarketData
from inference.triton_client import TritonUnavailable
from messaging.errors import BrokerUnavailableError, PublishError
from storage.errors import ConflictError, InvalidRecordError, StorageConnectionError

TRANSIENT = [
    psycopg.OperationalError("server closed the connection unexpectedly"),
    psycopg.errors.AdminShutdown("terminating connection due to administrator command"),
    psycopg.InterfaceError("the connection is closed"),
    PoolTimeout("couldn't get a connection after 30 sec"),
    StorageConnectionError("cannot connect to postgresql://..."),
    BrokerUnavailableError("no Kafka broker answered"),
    NodeNotReadyError(1),
    TritonUnavailable("Triton at 127.0.0.1:18001 is not ready"),
    redis.exceptions.ConnectionError("Error 111 connecting to 127.0.0.1:16379"),
    kombu.exceptions.OperationalError("[Errno 111] Connection refused"),
    ConnectionRefusedError(111, "Connection refused"),
]
POISON = [
    EventError("not JSON"),
    FormulaError("unknown operator"),
    DecisionError("fewer than 2 market dates were published"),
    NoMarketData("no market observations were available"),
    ConflictError("event_id reused"),
    InvalidRecordError("NUL in text"),
    UnknownStrategy("no such strategy"),
    psycopg.DataError("invalid byte sequence"),
    KeyError("a bug: an unknown error is poison, never retried forever"),
]


@pytest.mark.parametrize("error", TRANSIENT, ids=lambda e: type(e).__name__)
def test_infrastructure_failures_are_transient(error):
    assert classify(error) is Failure.TRANSIENT


@pytest.mark.parametrize("error", POISON, ids=lambda e: type(e).__name__)
def test_bad_records_and_bugs_are_poison(error):
    assert classify(error) is Failure.POISON


def _raised_from(error: Exception, cause: Exception) -> Exception:
    try:
        raise error from cause
    except Exception as raised:
        return raised


def test_the_explicit_cause_decides_a_publish_error():
    outage = _raised_from(PublishError("not acknowledged"), KafkaTimeoutError("30 s"))
    too_large = _raised_from(PublishError("refused"), MessageSizeTooLargeError("1.2 MB"))
    assert classify(outage) is Failure.TRANSIENT
    assert classify(too_large) is Failure.POISON


def test_an_implicit_context_does_not_make_poison_transient():
    try:
        try:
            raise TritonUnavailable("down")
        except TritonUnavailable:
            raise FormulaError("bad formula while falling back") from None
    except FormulaError as error:
        assert classify(error) is Failure.POISON


TOPIC = "fake.topic"
PARTITION = TopicPartition(TOPIC, 0)


def _record(offset: int) -> ConsumerRecord:
    return ConsumerRecord(TOPIC, 0, 0, offset, 0, 0, b"k", b"v", [], None, 1, 1, 0)


class OneBatchConsumer:
    def __init__(self, records: list[ConsumerRecord]) -> None:
        self.batches, self.committed = [{PARTITION: records}], []

    def __call__(self, **options):
        return self

    def subscribe(self, topics):
        pass

    def assignment(self):
        return {PARTITION}

    def poll(self, timeout_ms, max_records):
        return self.batches.pop(0) if self.batches else {}

    def commit(self, offsets):
        self.committed.append({tp: meta.offset for tp, meta in offsets.items()})

    def close(self, autocommit):
        pass


def _loop(consumer, handler, dead: list, **options) -> ConsumerLoop:
    fast = Resilience("test", poison_attempts=3, backoff=Backoff(0.001, 0.005))
    return ConsumerLoop(
        KafkaSettings(),
        group_id="g",
        topics=[TOPIC],
        handler=handler,
        on_error=lambda record, error: dead.append((record.offset, error)),
        resilience=fast,
        consumer_factory=consumer,
        **options,
    )


def test_an_outage_is_waited_out_and_the_record_handled_once_it_is_over():
    calls = {0: 0}
    handled = []

    def handler(record):
        calls[record.offset] = calls.get(record.offset, 0) + 1
        if record.offset == 0 and calls[0] <= 20:  # a long outage: 20 failed attempts
            raise psycopg.OperationalError("the database system is starting up")
        handled.append(record.offset)

    consumer, dead = OneBatchConsumer([_record(0), _record(1)]), []
    stats = _loop(consumer, handler, dead, max_records=2).run()
    assert handled == [0, 1] and dead == [] and calls[0] == 21
    assert stats.handled == 2 and consumer.committed == [{PARTITION: 2}]


def test_poison_gets_its_attempts_then_the_dead_letters_and_the_loop_goes_on():
    attempts = []

    def handler(record):
        attempts.append(record.offset)
        if record.offset == 0:
            raise DecisionError("released before any market data")

    consumer, dead = OneBatchConsumer([_record(0), _record(1)]), []
    stats = _loop(consumer, handler, dead, max_records=2).run()
    assert attempts == [0, 0, 0, 1]
    assert [(offset, type(e)) for offset, e in dead] == [(0, DecisionError)]
    assert stats.failed == 1 and stats.handled == 1 and consumer.committed == [{PARTITION: 2}]


def test_a_stop_during_an_outage_hands_the_record_back_uncommitted():
    stop = threading.Event()

    def handler(record):
        stop.set()  # SIGTERM arrives while Postgres is down
        raise psycopg.OperationalError("connection refused")

    consumer, dead = OneBatchConsumer([_record(0)]), []
    stats = _loop(consumer, handler, dead, stop_event=stop).run()
    assert dead == [] and stats.processed == 0 and consumer.committed == []


def test_resilience_raises_stopped_from_the_last_failure():
    stop = threading.Event()
    stop.set()

    def down():
        raise TritonUnavailable("down")

    with pytest.raises(Stopped) as raised:
        Resilience("test").call(down, stop)
    assert isinstance(raised.value.__cause__, TritonUnavailable)
