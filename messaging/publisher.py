"""The one Kafka producer of a process: acknowledged, idempotent publishing.

Open it from ``main()`` or a lifecycle hook (never at import)::

    with KafkaPublisher.open(settings.kafka) as publisher:
        publisher.publish(MACRO_RELEASES, key=series_id, value=payload)

``publish`` waits for the broker's acknowledgement (acks=all) so the caller knows the
record is durable before it moves on; ``publish_many`` sends a batch and flushes once.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from kafka import KafkaProducer
from kafka.errors import KafkaError
from kafka.producer.future import RecordMetadata

from alphafactory.settings import KafkaSettings
from messaging.client import client_options
from messaging.errors import RECORD_ERRORS, BrokerUnavailableError, PublishError

logger = logging.getLogger(__name__)

Headers = Mapping[str, bytes]


@dataclass(frozen=True)
class OutgoingRecord:
    """One record for :meth:`KafkaPublisher.publish_many`."""

    topic: str
    key: str | bytes
    value: bytes
    headers: Headers | None = None


def _encode_key(key: str | bytes) -> bytes:
    if isinstance(key, str):
        return key.encode("utf-8")
    if isinstance(key, bytes):
        return key
    raise TypeError(f"record key must be str or bytes, got {type(key).__name__}: {key!r}")


def _encode_headers(headers: Headers | None) -> list[tuple[str, bytes]]:
    if not headers:
        return []
    for name, value in headers.items():
        if not isinstance(value, bytes):
            raise TypeError(f"header {name!r} must be bytes, got {type(value).__name__}")
    return list(headers.items())


class KafkaPublisher:
    """Publishes records and waits for their acknowledgement; close() flushes."""

    def __init__(
        self,
        producer: KafkaProducer,
        *,
        timeout_s: float = 30.0,
        renew: Callable[[], KafkaProducer] | None = None,
    ) -> None:
        self._producer = producer
        self._timeout_s = timeout_s
        self._closed = False
        self._renew = renew  # a new producer, for when this one is dead (see _recover)

    @classmethod
    def open(
        cls,
        settings: KafkaSettings,
        *,
        linger_ms: int = 5,
        retries: int = 5,
        timeout_s: float = 30.0,
        **overrides: Any,
    ) -> KafkaPublisher:
        """Connect an idempotent, acks=all producer; BrokerUnavailableError if none answers.

        Retries are bounded so a broken broker surfaces as PublishError instead of an
        endless wait; idempotence keeps retried records from being written twice and
        keeps their order within a partition.
        """
        options = client_options(settings, role="producer")
        options.update(
            acks="all",
            enable_idempotence=True,
            retries=retries,
            linger_ms=linger_ms,
            max_in_flight_requests_per_connection=5,
            # send() blocks at most this long for metadata or buffer space.
            max_block_ms=settings.request_timeout_ms,
            delivery_timeout_ms=settings.request_timeout_ms + linger_ms,
        )
        options.update(overrides)

        def connect() -> KafkaProducer:
            try:
                return KafkaProducer(**options)
            except KafkaError as error:
                raise BrokerUnavailableError(
                    f"could not open a Kafka producer on {settings.bootstrap}: {error}"
                ) from error

        producer = connect()
        logger.debug("Kafka producer open on %s", settings.bootstrap)
        return cls(producer, timeout_s=timeout_s, renew=connect)

    def publish(
        self,
        topic: str,
        *,
        key: str | bytes,
        value: bytes,
        headers: Headers | None = None,
        timeout_s: float | None = None,
    ) -> RecordMetadata:
        """Send one record and wait until the broker acknowledged it."""
        timeout = self._timeout_s if timeout_s is None else timeout_s
        try:
            future = self._send(OutgoingRecord(topic, key, value, headers))
            return future.get(timeout=timeout)
        except KafkaError as error:
            self._recover(error)
            raise PublishError(
                f"publish to topic {topic!r} with key {key!r} failed: {error}",
                topic=topic,
                key=key,
            ) from error

    def publish_many(
        self, records: Iterable[OutgoingRecord], *, timeout_s: float | None = None
    ) -> list[RecordMetadata]:
        """Send a batch, flush once, and return the metadata in input order.

        Sending stops at a record the client rejects at once (the rest of the batch is not
        sent). Raises PublishError naming the first record that failed and how many did;
        acknowledged records stay published, so retry the batch with idempotent consumers.
        """
        timeout = self._timeout_s if timeout_s is None else timeout_s
        sent, rejected = [], None
        for record in records:
            try:
                sent.append((record, self._send(record)))
            except KafkaError as error:
                rejected = (record, error)
                break
        self.flush(timeout_s=timeout)
        results, failures = [], []
        for record, future in sent:
            try:
                results.append(future.get(timeout=0))
            except KafkaError as error:
                failures.append((record, error))
        if rejected is not None:
            failures.append(rejected)
        if failures:
            record, error = failures[0]
            self._recover(error)
            attempted = len(sent) + (rejected is not None)
            raise PublishError(
                f"{len(failures)} of {attempted} records not published; first: topic "
                f"{record.topic!r} key {record.key!r}: {error}",
                topic=record.topic,
                key=record.key,
            ) from error
        return results

    def flush(self, timeout_s: float | None = None) -> None:
        """Wait until every record sent so far is acknowledged or failed."""
        timeout = self._timeout_s if timeout_s is None else timeout_s
        try:
            self._producer.flush(timeout=timeout)
        except KafkaError as error:
            self._recover(error)
            raise PublishError(
                f"records still unacknowledged after flushing for {timeout:g} s: {error}"
            ) from error

    def close(self, timeout_s: float | None = None) -> None:
        """Flush what is pending, then close the producer (idempotent)."""
        if self._closed:
            return
        self._closed = True
        try:
            self.flush(timeout_s)
        finally:
            self._producer.close(timeout=self._timeout_s if timeout_s is None else timeout_s)
            logger.debug("Kafka producer closed")

    def _recover(self, error: BaseException) -> None:
        """After a failure that is not about the record (``RECORD_ERRORS``), replace the
        producer: a broker restart can leave an idempotent producer in a fatal state
        (InitProducerId failed) where every later send fails. The caller still gets the
        error, and retries on the new producer."""
        if self._renew is None or isinstance(error, RECORD_ERRORS):
            return
        old = self._producer
        try:
            self._producer = self._renew()
        except BrokerUnavailableError as unavailable:
            logger.debug("Kafka producer not renewed yet: %s", unavailable)
            return  # the broker is still away: the next failure tries again
        with contextlib.suppress(Exception):
            old.close(timeout=0)
        logger.info("Kafka producer renewed after %s: %s", type(error).__name__, error)

    def __enter__(self) -> KafkaPublisher:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def _send(self, record: OutgoingRecord):
        if not isinstance(record.value, bytes):
            raise TypeError(
                f"record value must be bytes, got {type(record.value).__name__} "
                f"(topic {record.topic!r}, key {record.key!r}); serialise it first"
            )
        return self._producer.send(
            record.topic,
            value=record.value,
            key=_encode_key(record.key),
            headers=_encode_headers(record.headers),
        )
