"""ConsumerLoop's Kafka-error branches, driven by a scripted consumer (no broker needed).

Retriable vs fatal poll/commit errors and a commit lost to a rebalance are hard to provoke
on demand with a real broker; the loop only touches the consumer through poll, commit,
assignment, subscribe and close, which the fake below scripts.
"""

from __future__ import annotations

import os
import signal
import threading

import pytest
from kafka import TopicPartition
from kafka.consumer.fetcher import ConsumerRecord
from kafka.errors import (
    CommitFailedError,
    KafkaTimeoutError,
    NodeNotReadyError,
    TopicAuthorizationFailedError,
)

from alphafactory.settings import KafkaSettings
from consumers.loop import ConsumerLoop, LoopStats, stop_on_signals
from messaging.errors import ConsumeError

TOPIC = "fake.topic"
PARTITION = TopicPartition(TOPIC, 0)


def _record(offset: int) -> ConsumerRecord:
    return ConsumerRecord(TOPIC, 0, 0, offset, 0, 0, b"k", f"v{offset}".encode(), [], None, 1, 2, 0)


class ScriptedConsumer:
    """Plays back poll and commit outcomes: an exception to raise, or a result."""

    def __init__(self, polls: list, commits: list | None = None) -> None:
        self.polls = list(polls)
        self.commits = list(commits or [])
        self.committed: list[dict] = []
        self.closed_with: bool | None = None
        self.options: dict = {}

    def __call__(self, **options):  # stands in for the KafkaConsumer class
        self.options = options
        return self

    def subscribe(self, topics):
        self.topics = topics

    def assignment(self):
        return {PARTITION}

    def poll(self, timeout_ms, max_records):
        outcome = self.polls.pop(0) if self.polls else {}
        if isinstance(outcome, Exception):
            raise outcome
        return outcome

    def commit(self, offsets):
        outcome = self.commits.pop(0) if self.commits else None
        if isinstance(outcome, Exception):
            raise outcome
        self.committed.append({tp: meta.offset for tp, meta in offsets.items()})

    def close(self, autocommit):
        self.closed_with = autocommit


def _run(consumer: ScriptedConsumer, **options) -> tuple[LoopStats, list]:
    handled: list = []
    loop = ConsumerLoop(
        KafkaSettings(),
        group_id="g",
        topics=[TOPIC],
        handler=handled.append,
        consumer_factory=consumer,
        retry_timeout_s=2.0,
        **options,
    )
    return loop.run(), handled


def test_consumer_is_configured_for_manual_commits_from_earliest():
    consumer = ScriptedConsumer(polls=[{PARTITION: [_record(0)]}])
    _run(consumer, max_records=1)
    assert consumer.options["enable_auto_commit"] is False
    assert consumer.options["auto_offset_reset"] == "earliest"
    assert consumer.options["session_timeout_ms"] == KafkaSettings().session_timeout_ms
    assert consumer.closed_with is False


def test_retriable_poll_errors_are_retried():
    consumer = ScriptedConsumer(
        polls=[
            KafkaTimeoutError("slow"),
            NodeNotReadyError(1),
            {PARTITION: [_record(0), _record(1)]},
        ]
    )
    stats, handled = _run(consumer, max_records=2)
    assert [r.offset for r in handled] == [0, 1]
    assert consumer.committed == [{PARTITION: 2}]
    assert stats.commits == 1


def test_fatal_poll_error_raises_consume_error_and_closes():
    consumer = ScriptedConsumer(polls=[TopicAuthorizationFailedError()])
    with pytest.raises(ConsumeError, match="poll failed for consumer group 'g'") as caught:
        _run(consumer)
    assert isinstance(caught.value.__cause__, TopicAuthorizationFailedError)
    assert consumer.closed_with is False


def test_retriable_commit_errors_are_retried_then_give_up():
    consumer = ScriptedConsumer(
        polls=[{PARTITION: [_record(0)]}], commits=[KafkaTimeoutError("slow")] * 2
    )
    stats, _ = _run(consumer, max_records=1)
    assert consumer.committed == [{PARTITION: 1}] and stats.commits == 1

    stuck = ScriptedConsumer(
        polls=[{PARTITION: [_record(0)]}], commits=[KafkaTimeoutError("slow")] * 100
    )
    with pytest.raises(ConsumeError, match="commit kept failing"):
        ConsumerLoop(
            KafkaSettings(),
            group_id="g",
            topics=[TOPIC],
            handler=lambda r: None,
            consumer_factory=stuck,
            retry_timeout_s=0.3,
            max_records=1,
        ).run()


def test_commit_lost_to_a_rebalance_is_logged_and_the_loop_goes_on(caplog):
    consumer = ScriptedConsumer(
        polls=[{PARTITION: [_record(0)]}, {PARTITION: [_record(1)]}], commits=[CommitFailedError()]
    )
    stats, handled = _run(consumer, max_records=2)
    assert len(handled) == 2
    assert (stats.lost_commits, stats.commits) == (1, 1)
    assert consumer.committed == [{PARTITION: 2}]
    assert "rejected after a rebalance" in caplog.text


def test_idle_timeout_stops_a_loop_with_nothing_to_read():
    stats, handled = _run(ScriptedConsumer(polls=[]), idle_timeout_s=0.2, poll_timeout_s=0.05)
    assert handled == [] and stats == LoopStats()


def test_stop_event_set_by_another_thread_ends_the_loop_after_the_record_in_hand():
    consumer = ScriptedConsumer(polls=[{PARTITION: [_record(0), _record(1), _record(2)]}])
    handled: list = []
    loop = ConsumerLoop(
        KafkaSettings(),
        group_id="g",
        topics=[TOPIC],
        handler=lambda r: (handled.append(r), loop.stop()),
        consumer_factory=consumer,
    )
    loop.run()
    assert [r.offset for r in handled] == [0]
    assert consumer.committed == [{PARTITION: 1}]


def test_topics_must_be_a_sequence_not_a_single_string():
    with pytest.raises(ValueError, match="non-empty sequence"):
        ConsumerLoop(KafkaSettings(), group_id="g", topics=TOPIC, handler=print)


def test_stop_on_signals_sets_the_event_on_sigterm():
    stop = threading.Event()
    previous = stop_on_signals(stop, signals=(signal.SIGTERM,))
    try:
        os.kill(os.getpid(), signal.SIGTERM)
        assert stop.wait(2)
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)
