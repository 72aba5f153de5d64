"""Dead letters for :class:`consumers.loop.ConsumerLoop`: where poison goes
(``consumers.failures`` says what is poison), and the loop every service consumes with
(:func:`dead_lettering_loop`).

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
    dead_letter.length      the original value's length in bytes
    dead_letter.sha256      the original value's SHA-256 (hex)
    dead_letter.truncated   "1" when the value (or the record's own headers) had to be cut

A dead letter never exceeds the broker's message size: the value is cut to
``MAX_DEAD_LETTER_VALUE_BYTES`` and the source's own headers are dropped past a budget,
so an oversized record cannot wedge its consumer; the length, hash and offsets identify
the original, which the source topic (or the producer) still holds.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Callable, Sequence
from typing import Protocol

from kafka.consumer.fetcher import ConsumerRecord
from psycopg_pool import ConnectionPool

from alphafactory import telemetry
from alphafactory.settings import KafkaSettings
from alphafactory.topics import DEAD_LETTERS
from consumers.failures import Resilience
from consumers.loop import ConsumerLoop, Handler, coordinates
from messaging.publisher import KafkaPublisher
from storage.dead_letters import record_dead_letter

logger = logging.getLogger(__name__)


HEADER_PREFIX = "dead_letter."
HEADER_TOPIC = "dead_letter.topic"
HEADER_PARTITION = "dead_letter.partition"
HEADER_OFFSET = "dead_letter.offset"
HEADER_ERROR_TYPE = "dead_letter.error_type"
HEADER_ERROR = "dead_letter.error"
HEADER_GROUP = "dead_letter.group"
HEADER_LENGTH = "dead_letter.length"
HEADER_SHA256 = "dead_letter.sha256"
HEADER_TRUNCATED = "dead_letter.truncated"
_MAX_ERROR_CHARS = 2000
# well under the 1 MiB default of brokers and producers, with room for the headers
MAX_DEAD_LETTER_VALUE_BYTES = 512 * 1024
_MAX_SOURCE_HEADER_BYTES = 64 * 1024


class DeadLetterSink(Protocol):
    def write(
        self, record: ConsumerRecord, error: BaseException, *, group_id: str | None = None
    ) -> None:
        """Store ``record`` durably with its coordinates and ``error``; raise if it cannot."""


def dead_letter_headers(
    record: ConsumerRecord, error: BaseException, *, group_id: str | None = None
) -> dict[str, bytes]:
    """The record's own headers (earlier dead-letter headers dropped, and all of them past
    a size budget) plus where and why, and the original value's length and hash."""
    own, budget, cut = {}, _MAX_SOURCE_HEADER_BYTES, False
    for name, value in record.headers or []:
        if name.startswith(HEADER_PREFIX):
            continue
        budget -= len(name) + len(value or b"")
        if budget < 0:
            cut = True
            break
        own[name] = value or b""
    value = record.value or b""
    error_type = f"{type(error).__module__}.{type(error).__qualname__}"
    headers = {
        **own,
        HEADER_TOPIC: record.topic.encode(),
        HEADER_PARTITION: str(record.partition).encode(),
        HEADER_OFFSET: str(record.offset).encode(),
        HEADER_ERROR_TYPE: error_type.encode(),
        HEADER_ERROR: str(error)[:_MAX_ERROR_CHARS].encode("utf-8", "replace"),
        HEADER_LENGTH: str(len(value)).encode(),
        HEADER_SHA256: hashlib.sha256(value).hexdigest().encode(),
    }
    if group_id:
        headers[HEADER_GROUP] = group_id.encode()
    if cut or len(value) > MAX_DEAD_LETTER_VALUE_BYTES:
        headers[HEADER_TRUNCATED] = b"1"
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
            value=(record.value or b"")[:MAX_DEAD_LETTER_VALUE_BYTES],
            headers=dead_letter_headers(record, error, group_id=group_id),
            timeout_s=self._timeout_s,
        )


class PostgresDeadLetterSink:
    """Keeps dead letters in ``core.dead_letters``, the system of record (a broker's log
    may be lost); idempotent on the source coordinates."""

    def __init__(self, pool: ConnectionPool) -> None:
        self._pool = pool

    def write(
        self, record: ConsumerRecord, error: BaseException, *, group_id: str | None = None
    ) -> None:
        where = f" (consumer group {group_id})" if group_id else ""
        with self._pool.connection() as conn:
            record_dead_letter(
                conn,
                topic=record.topic,
                partition=record.partition,
                offset=record.offset,
                key=record.key,
                payload=(record.value or b"")[:MAX_DEAD_LETTER_VALUE_BYTES],
                error=f"{type(error).__name__}: {error}{where}"[:_MAX_ERROR_CHARS],
            )


FailureRecorder = Callable[[ConsumerRecord, BaseException], None]


class DeadLetterPolicy:
    """``on_error`` policy: record the failure (``record_failure``, e.g. a request's failed
    state), write the dead letter to every sink in order, then let the loop commit past the
    record. Each step is idempotent, so the loop may repeat them after an outage."""

    def __init__(
        self,
        *sinks: DeadLetterSink,
        group_id: str | None = None,
        record_failure: FailureRecorder | None = None,
    ) -> None:
        self._sinks = sinks
        self._group_id = group_id
        self._record_failure = record_failure

    def __call__(self, record: ConsumerRecord, error: Exception) -> None:
        if self._record_failure is not None:
            self._record_failure(record, error)
        for sink in self._sinks:
            sink.write(record, error, group_id=self._group_id)
        telemetry.DEAD_LETTERS.labels(record.topic, type(error).__name__).inc()
        logger.warning(
            "dead-lettered %s after %s: %s", coordinates(record), type(error).__name__, error
        )


def dead_lettering_loop(
    kafka: KafkaSettings,
    *,
    publisher: KafkaPublisher,
    pool: ConnectionPool,
    group_id: str,
    topics: Sequence[str],
    handler: Handler,
    record_failure: FailureRecorder | None = None,
    dead_letter_topic: str = DEAD_LETTERS,
    poison_attempts: int = 3,
    **loop_options,
) -> ConsumerLoop:
    """The consume loop of a service (``consumers.failures``): outages of Postgres, Kafka,
    Redis or Triton are waited out, poison is tried ``poison_attempts`` times, then its
    failure recorded and the record dead-lettered in Postgres and on Kafka (the loop
    commits past it and goes on). ``loop_options`` go to :class:`ConsumerLoop`
    (``stop_event``, ``batch_size``, ``max_records``...)."""
    policy = DeadLetterPolicy(
        PostgresDeadLetterSink(pool),
        KafkaDeadLetterSink(publisher, topic=dead_letter_topic),
        group_id=group_id,
        record_failure=record_failure,
    )
    return ConsumerLoop(
        kafka,
        group_id=group_id,
        topics=topics,
        handler=handler,
        on_error=policy,
        resilience=Resilience(f"consumer group {group_id!r}", poison_attempts=poison_attempts),
        retry_timeout_s=None,  # poll and commit wait out a broker restart too
        **loop_options,
    )
