"""Dead-letter policy for :class:`consumers.loop.ConsumerLoop`.

With ``on_error=DeadLetterPolicy(sink)`` a record whose handler raised is written to the
sink with its source coordinates and the error, and the loop then commits past it and
continues. The write must be durable before ``write`` returns: if it fails, the error
propagates, nothing is committed, and the record is redelivered.

Dead letters published to Kafka keep the original key, value and headers, plus::

    dead_letter.topic       source topic (UTF-8)
    dead_letter.partition   source partition (decimal)
    dead_letter.offset      source offset (decimal)
    dead_letter.error_type  exception class, e.g. ``builtins.ValueError``
    dead_letter.error       ``str(error)``, at most 2,000 characters
    dead_letter.group       consumer group that failed it (when the policy knows it)
"""

from __future__ import annotations

import logging
from typing import Protocol

from kafka.consumer.fetcher import ConsumerRecord

from alphafactory.topics import DEAD_LETTERS
from consumers.loop import ErrorPolicy, coordinates
from producers.publisher import KafkaPublisher

logger = logging.getLogger(__name__)

HEADER_PREFIX = "dead_letter."
HEADER_TOPIC = "dead_letter.topic"
HEADER_PARTITION = "dead_letter.partition"
HEADER_OFFSET = "dead_letter.offset"
HEADER_ERROR_TYPE = "dead_letter.error_type"
HEADER_ERROR = "dead_letter.error"
HEADER_GROUP = "dead_letter.group"
_MAX_ERROR_CHARS = 2000


class DeadLetterSink(Protocol):
    def write(
        self, record: ConsumerRecord, error: BaseException, *, group_id: str | None = None
    ) -> None:
        """Store ``record`` durably with its coordinates and ``error``; raise if it cannot."""


def dead_letter_headers(
    record: ConsumerRecord, error: BaseException, *, group_id: str | None = None
) -> dict[str, bytes]:
    """The record's own headers (earlier dead-letter headers dropped) plus where and why."""
    headers = {
        name: value or b""
        for name, value in (record.headers or [])
        if not name.startswith(HEADER_PREFIX)
    }
    error_type = f"{type(error).__module__}.{type(error).__qualname__}"
    headers.update(
        {
            HEADER_TOPIC: record.topic.encode(),
            HEADER_PARTITION: str(record.partition).encode(),
            HEADER_OFFSET: str(record.offset).encode(),
            HEADER_ERROR_TYPE: error_type.encode(),
            HEADER_ERROR: str(error)[:_MAX_ERROR_CHARS].encode("utf-8", "replace"),
        }
    )
    if group_id:
        headers[HEADER_GROUP] = group_id.encode()
    return headers


class KafkaDeadLetterSink:
    """Publishes dead letters to a Kafka topic (default ``alphafactory.topics.DEAD_LETTERS``)."""

    def __init__(
        self,
        publisher: KafkaPublisher,
        *,
        topic: str = DEAD_LETTERS,
        timeout_s: float | None = None,
    ) -> None:
        self._publisher = publisher
        self._topic = topic
        self._timeout_s = timeout_s

    def write(
        self, record: ConsumerRecord, error: BaseException, *, group_id: str | None = None
    ) -> None:
        # A keyless record gets its coordinates as key so dead letters stay addressable.
        key = record.key if record.key is not None else coordinates(record).encode()
        self._publisher.publish(
            self._topic,
            key=key,
            value=record.value if record.value is not None else b"",
            headers=dead_letter_headers(record, error, group_id=group_id),
            timeout_s=self._timeout_s,
        )


class DeadLetterPolicy:
    """``on_error`` policy: dead-letter the record, then let the loop commit and continue."""

    def __init__(self, sink: DeadLetterSink, *, group_id: str | None = None) -> None:
        self._sink = sink
        self._group_id = group_id

    def __call__(self, record: ConsumerRecord, error: Exception) -> None:
        self._sink.write(record, error, group_id=self._group_id)
        logger.warning(
            "dead-lettered %s after %s: %s", coordinates(record), type(error).__name__, error
        )


class PoisonOnly:
    """``on_error`` policy: dead-letter the errors a retry cannot cure (``poison``: an
    invalid event, a conflicting record...), re-raise the rest.

    A valid record that failed because Postgres was unreachable must be retried, not
    dead-lettered: re-raising stops the loop before its offset is committed.
    """

    def __init__(self, dead_letters: ErrorPolicy, poison: tuple[type[Exception], ...]):
        self._dead_letters = dead_letters
        self._poison = poison

    def __call__(self, record: ConsumerRecord, error: Exception) -> None:
        if not isinstance(error, self._poison):
            raise error
        self._dead_letters(record, error)
