"""The at-least-once consume/commit loop, written once and reused by every consumer.

Contract for a handler ``handle(record) -> None``:

* It is called for each record in partition order. When it returns, the record's effects
  must be durable (a committed Postgres transaction, an acknowledged publish): only then
  does the loop commit ``offset + 1`` for that partition.
* It must be idempotent (key its writes on the event's idempotency key, e.g. ``event_id``
  or the canonical formula hash). A record is delivered again when the process dies between
  the handler and the commit, when a commit is rejected after a consumer-group rebalance
  (the partition's new owner re-reads from the last commit), and after a restart.

When the handler raises, ``on_error(record, error)`` decides. The default,
:func:`raise_error`, re-raises: the loop commits the records handled before that one,
closes the consumer and propagates, so a restarted process gets that record again.
``consumers.dead_letters.DeadLetterPolicy`` writes the record to a dead-letter sink and
returns, and the loop commits past it and continues.

A consumer that applies many records at once (one transaction per poll) also passes
``batch_handler(records) -> None``: each partition's polled records go to it together and
are committed together when it returns. If it raises, the loop hands those records to
``handler`` one at a time, so a poison record is isolated and dead-lettered alone while
the rest are applied.

Kafka errors during poll and commit are retried with backoff when ``error.retriable``
(for at most ``retry_timeout_s``); other errors raise ConsumeError.
"""

from __future__ import annotations

import logging
import signal
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from kafka import KafkaConsumer, TopicPartition
from kafka.consumer.fetcher import ConsumerRecord
from kafka.errors import CommitFailedError, KafkaError, RebalanceInProgressError
from kafka.structs import OffsetAndMetadata

from alphafactory import log_context, telemetry
from alphafactory.retry import Backoff, RetriesExhausted, RetryStopped, retry
from alphafactory.settings import KafkaSettings
from consumers.failures import Resilience, Stopped
from messaging.client import client_options
from messaging.errors import BrokerUnavailableError, ConsumeError

logger = logging.getLogger(__name__)

Handler = Callable[[ConsumerRecord], None]
BatchHandler = Callable[[Sequence[ConsumerRecord]], None]
ErrorPolicy = Callable[[ConsumerRecord, Exception], None]
Offsets = dict[TopicPartition, OffsetAndMetadata]

_BACKOFF = Backoff(first_s=0.1, max_s=5.0)


def raise_error(record: ConsumerRecord, error: Exception) -> None:
    """Default error policy: re-raise, so nothing from the failed record on is committed."""
    raise error


def _after(record: ConsumerRecord) -> OffsetAndMetadata:
    """The offset to commit once ``record`` is handled."""
    epoch = record.leader_epoch if record.leader_epoch is not None else -1
    return OffsetAndMetadata(record.offset + 1, "", epoch)


def coordinates(record: ConsumerRecord) -> str:
    """``topic[partition]@offset``: how logs and errors name a record."""
    return f"{record.topic}[{record.partition}]@{record.offset}"


def stop_on_signals(
    stop_event: threading.Event, signals: Sequence[int] = (signal.SIGINT, signal.SIGTERM)
) -> dict[int, Any]:
    """Set ``stop_event`` on SIGINT/SIGTERM so a loop finishes its record and commits.

    Call from the main thread of a consumer process; returns the previous handlers.
    """

    def request_stop(signum: int, _frame: object) -> None:
        logger.info("signal %s received, stopping after the record in hand", signum)
        stop_event.set()

    return {signum: signal.signal(signum, request_stop) for signum in signals}


@dataclass
class LoopStats:
    """What one :meth:`ConsumerLoop.run` did."""

    handled: int = 0  # the handler returned
    failed: int = 0  # the handler raised and on_error absorbed it (e.g. dead-lettered)
    commits: int = 0
    lost_commits: int = 0  # commits rejected after a rebalance (records will be redelivered)

    @property
    def processed(self) -> int:
        return self.handled + self.failed


class _IdleClock:
    """Counts the time with partitions assigned and no records (a group join does not count)."""

    def __init__(self, timeout_s: float | None) -> None:
        self._timeout_s = timeout_s
        self._since: float | None = None

    def reset(self) -> None:
        self._since = None

    def expired(self, *, assigned: bool) -> bool:
        if self._timeout_s is None or not assigned:
            return False
        now = time.monotonic()
        if self._since is None:
            self._since = now
        return now - self._since >= self._timeout_s


class ConsumerLoop:
    """Poll, handle in order, commit after the handler returned; stop on an Event.

    ``max_records`` and ``idle_timeout_s`` end the loop for tests and one-shot runs:
    after that many records, or after that long with partitions assigned and nothing new.
    ``batch_size`` is both the most records one poll returns and the most that are handled
    between commits (so the most redelivered after a crash); with slow handlers lower it,
    and keep ``max_poll_interval_ms`` above ``batch_size`` times the slowest record.
    """

    def __init__(
        self,
        settings: KafkaSettings,
        *,
        group_id: str,
        topics: Sequence[str],
        handler: Handler,
        batch_handler: BatchHandler | None = None,
        on_error: ErrorPolicy = raise_error,
        resilience: Resilience | None = None,
        stop_event: threading.Event | None = None,
        max_records: int | None = None,
        idle_timeout_s: float | None = None,
        poll_timeout_s: float = 0.5,
        batch_size: int = 100,
        retry_timeout_s: float | None = 60.0,
        consumer_factory: Callable[..., KafkaConsumer] = KafkaConsumer,
    ) -> None:
        if isinstance(topics, str) or not topics:
            raise ValueError(f"topics must be a non-empty sequence of names, got {topics!r}")
        if not group_id:
            raise ValueError("group_id must be a non-empty string")
        if max_records is not None and max_records < 1:
            raise ValueError(f"max_records must be >= 1 or None, got {max_records}")
        if batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}")
        self._settings = settings
        self._group_id = group_id
        self._topics = tuple(topics)
        self._handler = handler
        self._batch_handler = batch_handler
        self._on_error = on_error
        self._resilience = resilience
        self.stop_event = stop_event if stop_event is not None else threading.Event()
        self._max_records = max_records
        self._idle = _IdleClock(idle_timeout_s)
        self._poll_timeout_ms = int(poll_timeout_s * 1000)
        self._batch_size = batch_size
        self._retry_timeout_s = retry_timeout_s
        self._consumer_factory = consumer_factory
        self.stats = LoopStats()

    def stop(self) -> None:
        """Ask the loop to stop after the record in hand (safe from any thread)."""
        self.stop_event.set()

    def run(self) -> LoopStats:
        """Consume until stopped (or max_records / idle_timeout_s); always closes the consumer."""
        self._idle.reset()
        try:
            consumer = self._waiting_out_outages(self._open_consumer)
        except Stopped:
            return self.stats
        logger.info("consumer group %r consuming %s", self._group_id, list(self._topics))
        try:
            consumer.subscribe(list(self._topics))
            self._consume(consumer)
        finally:
            try:
                consumer.close(autocommit=False)
            except Exception:  # closing must not hide the error that ended the loop
                logger.exception("closing the consumer of group %r failed", self._group_id)
            logger.info("consumer group %r stopped: %s", self._group_id, self.stats)
        return self.stats

    def _open_consumer(self) -> KafkaConsumer:
        s = self._settings
        options: dict[str, Any] = client_options(s, role=f"consumer-{self._group_id}")
        options.update(
            group_id=self._group_id,
            enable_auto_commit=False,
            # "earliest": tansu's end offsets are unreliable, and handlers are idempotent.
            auto_offset_reset="earliest",
            session_timeout_ms=s.session_timeout_ms,
            heartbeat_interval_ms=s.heartbeat_interval_ms,
            max_poll_interval_ms=s.max_poll_interval_ms,
            max_poll_records=self._batch_size,
        )
        try:
            consumer = self._consumer_factory(**options)
        except KafkaError as error:
            raise BrokerUnavailableError(
                f"could not open a Kafka consumer for group {self._group_id!r} "
                f"on {s.bootstrap}: {error}"
            ) from error
        return consumer

    def _done(self) -> bool:
        if self.stop_event.is_set():
            return True
        return self._max_records is not None and self.stats.processed >= self._max_records

    def _consume(self, consumer: KafkaConsumer) -> None:
        while not self._done():
            batch = self._poll(consumer)
            if not batch:
                if self._idle.expired(assigned=bool(consumer.assignment())):
                    logger.info("consumer group %r idle, stopping", self._group_id)
                    return
                continue
            self._idle.reset()
            self._process(consumer, batch)

    def _poll(self, consumer: KafkaConsumer) -> dict[TopicPartition, list[ConsumerRecord]]:
        limit = self._batch_size
        if self._max_records is not None:
            limit = min(limit, self._max_records - self.stats.processed)
        batch = self._retrying(
            "poll",
            lambda: consumer.poll(timeout_ms=self._poll_timeout_ms, max_records=limit),
            interruptible=True,
        )
        return batch or {}

    def _process(self, consumer: KafkaConsumer, batch: dict) -> None:
        """Handle a polled batch in partition order; commit whatever was handled, even on error."""
        offsets: Offsets = {}
        try:
            for partition, records in batch.items():
                consumed = telemetry.RECORDS_CONSUMED.labels(partition.topic, self._group_id)
                if self._batch_handler is not None and self._handle_together(records):
                    offsets[partition] = _after(records[-1])
                    consumed.inc(len(records))
                    continue
                for record in records:
                    if self._done():
                        return
                    self._handle(record)
                    offsets[partition] = _after(record)
                    consumed.inc()
        except Stopped:
            pass  # stopped during an outage: the record in hand is not committed
        finally:
            self._commit(consumer, offsets)

    def _handle_together(self, records: list[ConsumerRecord]) -> bool:
        """The batch handler on ``records`` (outages waited out); False if it raised, for
        the records to be handled one by one."""
        if (
            self._max_records is not None
            and len(records) > self._max_records - self.stats.processed
        ):
            return False  # the one-by-one path stops at the limit
        try:
            where = f"{coordinates(records[0])}..{records[-1].offset}"
            with log_context.bound(record=where, batch=True):
                self._waiting_out_outages(lambda: self._batch_handler(records))
        except Stopped:
            raise
        except Exception as error:
            logger.warning(
                "%s..%d: the batch of %d failed (%s: %s); handling its records one by one",
                coordinates(records[0]),
                records[-1].offset,
                len(records),
                type(error).__name__,
                error,
            )
            return False
        self.stats.handled += len(records)
        return True

    def _handle(self, record: ConsumerRecord) -> None:
        """With a ``resilience`` (``consumers.failures``), a transient failure is waited out
        and the record handled again, and anything else gets ``poison_attempts`` tries;
        then the error policy decides (a dead letter, or re-raising)."""
        with log_context.bound(record=coordinates(record)):
            self._handle_with_retries(record)

    def _handle_with_retries(self, record: ConsumerRecord) -> None:
        attempts = self._resilience.poison_attempts if self._resilience else 1
        for attempt in range(1, attempts + 1):
            try:
                self._waiting_out_outages(lambda: self._handler(record))
            except Stopped:
                raise
            except Exception as error:
                if attempt < attempts:
                    logger.warning(
                        "%s: attempt %d of %d failed: %s: %s",
                        coordinates(record),
                        attempt,
                        attempts,
                        type(error).__name__,
                        error,
                    )
                    continue
                error.add_note(
                    f"while handling {coordinates(record)} in consumer group {self._group_id!r}"
                )
                # raises unless the policy absorbed the error; a dead-letter write that
                # meets an outage waits it out like the handler
                self._waiting_out_outages(lambda e=error: self._on_error(record, e))
                self.stats.failed += 1
                return
            else:
                self.stats.handled += 1
                return

    def _waiting_out_outages(self, call: Callable[[], Any]) -> Any:
        if self._resilience is None:
            return call()
        return self._resilience.call(call, self.stop_event)

    def _commit(self, consumer: KafkaConsumer, offsets: Offsets) -> None:
        if not offsets:
            return
        if self._retrying("commit", lambda: self._commit_once(consumer, offsets)):
            self.stats.commits += 1
        else:
            self.stats.lost_commits += 1

    def _commit_once(self, consumer: KafkaConsumer, offsets: Offsets) -> bool:
        """Commit; False when a rebalance took the partitions (their records come back)."""
        try:
            consumer.commit(offsets=offsets)
        except (CommitFailedError, RebalanceInProgressError) as error:
            logger.warning(
                "group %r: commit of %s rejected after a rebalance (%s); the partitions' "
                "owner re-reads those records from the last commit, so handlers must be "
                "idempotent",
                self._group_id,
                {f"{tp.topic}[{tp.partition}]": meta.offset for tp, meta in offsets.items()},
                error,
            )
            return False
        return True

    def _retrying(self, operation: str, call: Callable[[], Any], *, interruptible: bool = False):
        """Run ``call``; retry retriable Kafka errors with backoff, raise ConsumeError otherwise.

        An interruptible operation (poll) returns None when the stop event is set while it
        waits to retry; a commit keeps trying, since it records work already done.
        """
        where = f"consumer group {self._group_id!r} on topics {list(self._topics)}"

        def log_retry(error: BaseException, _failures: int, delay: float) -> None:
            logger.warning(
                "%s failed for %s, retrying in %.1f s: %s", operation, where, delay, error
            )

        try:
            return retry(
                call,
                retry_on=lambda e: isinstance(e, KafkaError) and e.retriable,
                backoff=_BACKOFF,
                timeout_s=self._retry_timeout_s,
                sleep=self.stop_event.wait if interruptible else time.sleep,
                on_retry=log_retry,
            )
        except RetryStopped:
            return None
        except RetriesExhausted as exhausted:
            raise ConsumeError(
                f"{operation} kept failing for {self._retry_timeout_s:g} s for {where}: "
                f"{exhausted.__cause__}"
            ) from exhausted.__cause__
        except KafkaError as error:
            raise ConsumeError(f"{operation} failed for {where}: {error}") from error
