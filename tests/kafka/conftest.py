"""Fixtures for the Kafka-edge tests, on the tansu broker of the session's local stack.

No ``__init__.py`` here on purpose: a package named ``kafka`` under ``tests/`` could shadow
kafka-python. Helpers are fixtures for the same reason (no importable test modules).
"""

from __future__ import annotations

import socket
import time
import uuid
from collections.abc import Callable

import pytest
from kafka import KafkaConsumer, TopicPartition

from alphafactory.settings import KafkaSettings, PostgresSettings
from messaging.client import bootstrap_servers
from storage.admin import prepare_database


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture(scope="session")
def kafka_settings(stack_settings) -> KafkaSettings:
    """The tansu broker of the session's local stack (tests/conftest.py)."""
    return stack_settings.kafka


@pytest.fixture
def unique() -> Callable[[str], str]:
    """Unique topic/group names, so tests sharing the session broker never collide."""
    return lambda prefix: f"test.{prefix}.{uuid.uuid4().hex[:10]}"


@pytest.fixture
def committed_offset(kafka_settings: KafkaSettings) -> Callable[[str, str, int], int | None]:
    """The offset a group committed for a partition (an OffsetFetch; no group join)."""

    def fetch(group_id: str, topic: str, partition: int) -> int | None:
        consumer = KafkaConsumer(
            bootstrap_servers=bootstrap_servers(kafka_settings),
            group_id=group_id,
            enable_auto_commit=False,
        )
        try:
            return consumer.committed(TopicPartition(topic, partition))
        finally:
            consumer.close(autocommit=False)

    return fetch


@pytest.fixture
def read_topic(kafka_settings: KafkaSettings) -> Callable[..., list]:
    """Records of a topic matching ``where``, from the beginning (manual assignment, no group)."""

    def read(
        topic: str,
        *,
        expect: int,
        where: Callable[[object], bool] = lambda r: True,
        timeout_s: float = 10.0,
    ) -> list:
        consumer = KafkaConsumer(
            bootstrap_servers=bootstrap_servers(kafka_settings),
            group_id=None,
            enable_auto_commit=False,
            auto_offset_reset="earliest",
        )
        try:
            partitions = consumer.partitions_for_topic(topic) or set()
            consumer.assign([TopicPartition(topic, p) for p in sorted(partitions)])
            records: list = []
            deadline = time.monotonic() + timeout_s
            while len(records) < expect and time.monotonic() < deadline:
                for batch in consumer.poll(timeout_ms=200).values():
                    records.extend(r for r in batch if where(r))
            return records
        finally:
            consumer.close(autocommit=False)

    return read


@pytest.fixture
def closed_port() -> int:
    """A loopback port with nothing listening on it."""
    return free_port()


@pytest.fixture(scope="session")
def private_database(stack_settings) -> Callable[[], PostgresSettings]:
    """Factory of new, migrated databases on the session's Postgres server.

    For tests that must see only their own rows: an outbox relay claims every unsent row
    of its database, whichever test enqueued it.
    """

    def make() -> PostgresSettings:
        settings = stack_settings.postgres.model_copy(
            update={"database": f"t_{uuid.uuid4().hex[:12]}"}
        )
        prepare_database(settings)
        return settings

    return make
