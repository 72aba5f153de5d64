"""KafkaPublisher against a real tansu broker."""

from __future__ import annotations

import pytest
from kafka.errors import KafkaError

from alphafactory.settings import KafkaSettings
from messaging.admin import ensure_topics
from messaging.errors import BrokerUnavailableError, PublishError
from messaging.publisher import KafkaPublisher, OutgoingRecord


def test_publish_returns_the_acknowledged_position(kafka_settings, unique, read_topic):
    topic = unique("pub-one")
    ensure_topics(kafka_settings, [topic], partitions=1)

    with KafkaPublisher.open(kafka_settings) as publisher:
        first = publisher.publish(topic, key="k", value=b"a", headers={"h": b"1"})
        second = publisher.publish(topic, key=b"k", value=b"b")

    assert (first.topic, first.partition, first.offset) == (topic, 0, 0)
    assert second.offset == 1
    records = read_topic(topic, expect=2)
    assert [(r.key, r.value, r.headers) for r in records] == [
        (b"k", b"a", [("h", b"1")]),
        (b"k", b"b", []),
    ]


def test_publish_failure_raises_publish_error_naming_topic_and_key(kafka_settings, unique):
    topic = unique("pub-too-big")
    ensure_topics(kafka_settings, [topic], partitions=1)

    with KafkaPublisher.open(kafka_settings, max_request_size=1000) as publisher:
        with pytest.raises(PublishError) as caught:
            publisher.publish(topic, key="series-1", value=b"x" * 5000)
        ok = publisher.publish(topic, key="series-2", value=b"small")

    assert caught.value.topic == topic and caught.value.key == "series-1"
    assert repr(topic) in str(caught.value) and "'series-1'" in str(caught.value)
    assert isinstance(caught.value.__cause__, KafkaError)
    assert ok.offset == 0


def test_publish_many_reports_the_first_failed_record(kafka_settings, unique):
    topic = unique("pub-many-fail")
    ensure_topics(kafka_settings, [topic], partitions=1)
    batch = [OutgoingRecord(topic, f"k{i}", b"x" * (5000 if i == 1 else 10)) for i in range(3)]

    with (
        KafkaPublisher.open(kafka_settings, max_request_size=1000) as publisher,
        pytest.raises(PublishError) as caught,
    ):
        publisher.publish_many(batch)

    assert caught.value.key == "k1"
    assert str(caught.value).startswith("1 of 2 records not published")


def test_publish_rejects_values_that_are_not_bytes(kafka_settings, unique):
    with (
        KafkaPublisher.open(kafka_settings) as publisher,
        pytest.raises(TypeError, match="value must be bytes"),
    ):
        publisher.publish(unique("pub-type"), key="k", value="text")  # type: ignore[arg-type]


def test_open_raises_broker_unavailable_for_a_closed_port(closed_port):
    settings = KafkaSettings(bootstrap=f"127.0.0.1:{closed_port}", request_timeout_ms=1000)

    with pytest.raises(BrokerUnavailableError, match=f"127.0.0.1:{closed_port}"):
        KafkaPublisher.open(settings)
