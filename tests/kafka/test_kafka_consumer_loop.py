"""ConsumerLoop against a real tansu broker: delivery, commits, restarts and errors.

Each ConsumerLoop.run() joins its group, which tansu holds for session_timeout/2 (3 s with
the default settings): these tests start as few loops as they can.
"""

from __future__ import annotations

import threading
from collections import defaultdict

import pytest

from alphafactory.topics import DEAD_LETTERS
from consumers.dead_letters import (
    HEADER_ERROR,
    HEADER_ERROR_TYPE,
    HEADER_GROUP,
    HEADER_OFFSET,
    HEADER_PARTITION,
    HEADER_TOPIC,
    DeadLetterPolicy,
    KafkaDeadLetterSink,
)
from consumers.loop import ConsumerLoop
from messaging.admin import ensure_topics
from messaging.publisher import KafkaPublisher, OutgoingRecord


def _publish(settings, topic: str, values: range, *, keys: int = 5) -> None:
    records = [
        OutgoingRecord(
            topic,
            key=f"series-{i % keys}",
            value=f"v{i}".encode(),
            headers={"seq": str(i).encode(), "source": b"test"},
        )
        for i in values
    ]
    with KafkaPublisher.open(settings) as publisher:
        publisher.publish_many(records)


def _values(records) -> list[bytes]:
    return [r.value for r in records]


def test_published_records_are_all_consumed_in_partition_order(
    kafka_settings, unique, committed_offset
):
    topic, group = unique("loop-roundtrip"), unique("group")
    ensure_topics(kafka_settings, [topic], partitions=3)
    _publish(kafka_settings, topic, range(30))

    received = []
    stats = ConsumerLoop(
        kafka_settings, group_id=group, topics=[topic], handler=received.append, max_records=30
    ).run()

    assert stats.handled == 30 and stats.failed == 0 and stats.commits >= 1
    by_seq = {int(dict(r.headers)["seq"]): r for r in received}
    assert sorted(by_seq) == list(range(30))
    for seq, record in by_seq.items():
        assert record.key == f"series-{seq % 5}".encode()
        assert record.value == f"v{seq}".encode()
        assert dict(record.headers) == {"seq": str(seq).encode(), "source": b"test"}
    by_partition = defaultdict(list)
    for record in received:
        by_partition[record.partition].append(record)
    for partition, records in by_partition.items():
        offsets = [r.offset for r in records]
        assert offsets == list(range(len(records)))
        seqs = [int(dict(r.headers)["seq"]) for r in records]
        assert seqs == sorted(seqs)
        assert committed_offset(group, topic, partition) == len(records)
    keys_to_partitions = {(r.key, r.partition) for r in received}
    assert len(keys_to_partitions) == 5  # one partition per key


def test_restarted_loop_resumes_after_its_last_commit(kafka_settings, unique):
    topic, group = unique("loop-restart"), unique("group")
    ensure_topics(kafka_settings, [topic], partitions=3)
    _publish(kafka_settings, topic, range(10))

    stop = threading.Event()
    first = []

    def stop_after_four(record) -> None:
        first.append(record)
        if len(first) == 4:
            stop.set()  # the loop commits these four, then exits

    ConsumerLoop(
        kafka_settings, group_id=group, topics=[topic], handler=stop_after_four, stop_event=stop
    ).run()
    _publish(kafka_settings, topic, range(10, 15))
    second = []
    ConsumerLoop(
        kafka_settings, group_id=group, topics=[topic], handler=second.append, idle_timeout_s=1.5
    ).run()

    assert len(first) == 4
    together = _values(first) + _values(second)
    assert len(together) == len(set(together)), "a record was delivered twice"
    assert sorted(together) == sorted(f"v{i}".encode() for i in range(15))


def test_handler_error_without_policy_leaves_the_record_uncommitted(
    kafka_settings, unique, committed_offset
):
    topic, group = unique("loop-crash"), unique("group")
    ensure_topics(kafka_settings, [topic], partitions=1)
    _publish(kafka_settings, topic, range(5))
    seen = []

    def fail_on_v2(record) -> None:
        if record.value == b"v2":
            raise ValueError("cannot parse v2")
        seen.append(record.value)

    with pytest.raises(ValueError, match="cannot parse v2") as caught:
        ConsumerLoop(kafka_settings, group_id=group, topics=[topic], handler=fail_on_v2).run()

    assert seen == [b"v0", b"v1"]
    assert f"{topic}[0]@2" in " ".join(caught.value.__notes__)
    assert committed_offset(group, topic, 0) == 2

    redelivered = []
    ConsumerLoop(
        kafka_settings, group_id=group, topics=[topic], handler=redelivered.append, max_records=3
    ).run()
    assert _values(redelivered) == [b"v2", b"v3", b"v4"]
    assert committed_offset(group, topic, 0) == 5


def test_dead_letter_policy_parks_the_bad_record_and_continues(
    kafka_settings, unique, committed_offset, read_topic
):
    topic, group = unique("loop-dlq"), unique("group")
    ensure_topics(kafka_settings, [topic], partitions=1)
    ensure_topics(kafka_settings, [DEAD_LETTERS])
    _publish(kafka_settings, topic, range(5))
    seen = []

    def fail_on_v2(record) -> None:
        if record.value == b"v2":
            raise ValueError("cannot parse v2")
        seen.append(record.value)

    with KafkaPublisher.open(kafka_settings) as publisher:
        policy = DeadLetterPolicy(KafkaDeadLetterSink(publisher), group_id=group)
        stats = ConsumerLoop(
            kafka_settings,
            group_id=group,
            topics=[topic],
            handler=fail_on_v2,
            on_error=policy,
            max_records=5,
        ).run()

    assert (stats.handled, stats.failed) == (4, 1)
    assert seen == [b"v0", b"v1", b"v3", b"v4"]
    assert committed_offset(group, topic, 0) == 5
    dead = read_topic(
        DEAD_LETTERS, expect=1, where=lambda r: dict(r.headers).get(HEADER_TOPIC) == topic.encode()
    )
    assert len(dead) == 1
    letter, headers = dead[0], dict(dead[0].headers)
    assert (letter.key, letter.value) == (b"series-2", b"v2")
    assert headers[HEADER_PARTITION] == b"0" and headers[HEADER_OFFSET] == b"2"
    assert headers[HEADER_ERROR_TYPE] == b"builtins.ValueError"
    assert b"cannot parse v2" in headers[HEADER_ERROR]
    assert headers[HEADER_GROUP] == group.encode()
    assert headers["seq"] == b"2"  # the record's own headers travel with it
