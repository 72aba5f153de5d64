"""Errors of the Kafka edges (producers, admin helpers and the consume loop).

Hierarchy::

    KafkaEdgeError                 root: catch this to handle any Kafka-edge failure
    ├── BrokerUnavailableError     no broker answered metadata at the bootstrap address
    ├── TopicSetupError            the broker refused to create a topic
    ├── PublishError               a record was not acknowledged (names topic and key)
    └── ConsumeError               consumers.loop: poll/commit failed fatally or kept failing

Every error chains the kafka-python exception that caused it (``raise ... from error``).
Invalid arguments (an illegal topic name, a value that is not bytes) raise ``ValueError`` or
``TypeError`` at once instead: they are bugs, not broker conditions.
"""

from __future__ import annotations

from kafka.errors import (
    CorruptRecordError,
    InvalidRecordError,
    InvalidTimestampError,
    InvalidTopicError,
    MessageSizeTooLargeError,
    RecordListTooLargeError,
    UnsupportedForMessageFormatError,
)

# What the broker refuses because of the record itself: sending it again cannot work. Any
# other Kafka error is the broker or the client being unavailable (a restart leaves even
# "non-retriable" ones behind, such as an idempotent producer's InitProducerId failure).
RECORD_ERRORS: tuple[type[Exception], ...] = (
    MessageSizeTooLargeError,
    RecordListTooLargeError,
    InvalidTopicError,
    CorruptRecordError,
    InvalidRecordError,
    InvalidTimestampError,
    UnsupportedForMessageFormatError,
)


class KafkaEdgeError(Exception):
    """Root of every error raised by the Kafka edges."""


class BrokerUnavailableError(KafkaEdgeError):
    """No Kafka broker answered a metadata request at the configured bootstrap address."""


class TopicSetupError(KafkaEdgeError):
    """The broker refused to create a topic (other than because it already exists)."""


class PublishError(KafkaEdgeError):
    """A record was not acknowledged; ``topic`` and ``key`` say which (None for a flush)."""

    def __init__(
        self, message: str, *, topic: str | None = None, key: str | bytes | None = None
    ) -> None:
        super().__init__(message)
        self.topic = topic
        self.key = key


class ConsumeError(KafkaEdgeError):
    """The consume loop could not poll or commit (a fatal error, or retries ran out)."""
