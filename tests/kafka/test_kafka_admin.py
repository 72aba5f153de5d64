"""ensure_topics and wait_for_broker against a real tansu broker."""

from __future__ import annotations

import time

import pytest
from kafka import KafkaAdminClient

from alphafactory.settings import KafkaSettings
from messaging.admin import ensure_topics, wait_for_broker
from messaging.client import bootstrap_servers
from messaging.errors import BrokerUnavailableError, KafkaEdgeError


def _partition_counts(settings: KafkaSettings, topics: list[str]) -> dict[str, int]:
    with KafkaAdminClient(bootstrap_servers=bootstrap_servers(settings)) as admin:
        return {t["name"]: len(t["partitions"]) for t in admin.describe_topics(topics)}


def test_ensure_topics_creates_missing_topics_and_is_idempotent(kafka_settings, unique):
    first, second = unique("admin-a"), unique("admin-b")

    assert ensure_topics(kafka_settings, [first], partitions=2) == [first]
    assert sorted(ensure_topics(kafka_settings, [first, second], partitions=2)) == [second]
    assert ensure_topics(kafka_settings, [first, second, first], partitions=2) == []

    assert _partition_counts(kafka_settings, [first, second]) == {first: 2, second: 2}


def test_ensure_topics_rejects_impossible_partition_counts(kafka_settings, unique):
    with pytest.raises(ValueError, match="partitions and replication must be >= 1"):
        ensure_topics(kafka_settings, [unique("admin-bad")], partitions=0)


def test_wait_for_broker_returns_when_the_broker_answers(kafka_settings):
    wait_for_broker(kafka_settings, timeout_s=5)


def test_wait_for_broker_raises_a_clear_error_when_nothing_listens(closed_port):
    settings = KafkaSettings(bootstrap=f"127.0.0.1:{closed_port}")
    started = time.monotonic()

    with pytest.raises(BrokerUnavailableError) as caught:
        wait_for_broker(settings, timeout_s=1.0)

    assert time.monotonic() - started < 5
    message = str(caught.value)
    assert f"127.0.0.1:{closed_port}" in message
    assert "within 1 s" in message and "alphafactory stack up" in message
    assert isinstance(caught.value, KafkaEdgeError)
    assert caught.value.__cause__ is not None


def test_ensure_topics_raises_broker_unavailable_for_a_closed_port(closed_port):
    settings = KafkaSettings(bootstrap=f"127.0.0.1:{closed_port}")

    with pytest.raises(BrokerUnavailableError, match=f"127.0.0.1:{closed_port}"):
        ensure_topics(settings, ["never.created"], timeout_s=0.5)


def test_consumer_lag_counts_what_a_group_has_not_committed(kafka_settings, unique):
    from kafka import KafkaConsumer, TopicPartition
    from kafka.structs import OffsetAndMetadata

    from messaging.admin import consumer_lag
    from messaging.publisher import KafkaPublisher

    topic, group, idle = unique("lag"), unique("lag-group"), unique("lag-idle")
    ensure_topics(kafka_settings, [topic], partitions=1)
    with KafkaPublisher.open(kafka_settings) as publisher:
        for k in range(5):
            publisher.publish(topic, key="k", value=f"{k}".encode())
    consumer = KafkaConsumer(
        bootstrap_servers=bootstrap_servers(kafka_settings),
        group_id=group,
        enable_auto_commit=False,
    )
    try:
        consumer.commit({TopicPartition(topic, 0): OffsetAndMetadata(2, "", -1)})
    finally:
        consumer.close(autocommit=False)
    assert consumer_lag(kafka_settings, {group: topic, idle: topic}) == {group: 3, idle: None}


def test_consumer_lag_names_the_broker_that_does_not_answer(closed_port):
    from messaging.admin import consumer_lag

    silent = KafkaSettings(bootstrap=f"127.0.0.1:{closed_port}", request_timeout_ms=1000)
    with pytest.raises(BrokerUnavailableError, match=f"127.0.0.1:{closed_port}"):
        consumer_lag(silent, {"g": "t"}, timeout_s=1)
