"""Dead letters for :class:`consumers.loop.ConsumerLoop`: what counts as poison, where
poison goes, and the loop every service consumes with (:func:`dead_lettering_loop`).

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
from collections.abc import Sequence
from typing import Protocol

from kafka.consumer.fetcher import ConsumerRecord

from alphafactory.events import EventError
from alphafactory.formula import FormulaError
from alphafactory.settings import KafkaSettings
from alphafactory.topics import DEAD_LETTERS
from consumers.loop import ConsumerLoop, ErrorPolicy, Handler, coordinates
from messaging.publisher import KafkaPublisher
from storage.errors import ConflictError, InvalidRecordError

logger = logging.getLogger(__name__)


class UnknownStrategy(LookupError):
    """A record for a strategy this service does not run."""


# Errors a retry cannot cure: an invalid event, a strategy this deployment does not run, a
# formula that does not fit the model, a record conflicting with what is stored. Anything
# else (Postgres or Redis down...) stops the consumer before its commit instead.
POISON: tuple[type[Exception], ...] = (
    EventError,
    UnknownStrategy,
    FormulaError,
    ConflictError,
    InvalidRecordError,
)

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


def dead_lettering_loop(
    kafka: KafkaSettings,
    *,
    publisher: KafkaPublisher,
    group_id: str,
    topics: Sequence[str],
    handler: Handler,
    dead_letter_topic: str = DEAD_LETTERS,
    **loop_options,
) -> ConsumerLoop:
    """The consume loop of a service: :data:`POISON` to the dead letters (then commit and
    go on), any other error stops the loop uncommitted. ``loop_options`` go to
    :class:`ConsumerLoop` (``stop_event``, ``batch_size``, ``max_records``...)."""
    sink = KafkaDeadLetterSink(publisher, topic=dead_letter_topic)
    return ConsumerLoop(
        kafka,
        group_id=group_id,
        topics=topics,
        handler=handler,
        on_error=PoisonOnly(DeadLetterPolicy(sink, group_id=group_id), POISON),
        **loop_options,
    )
