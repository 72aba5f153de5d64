"""One classification of what went wrong, shared by the consume loop and the Celery task.

* ``TRANSIENT``: the infrastructure failed (Postgres, Kafka, Redis or Triton unreachable or
  restarting, a connection lost mid-query, a pool timeout). Nothing is wrong with the
  record, so it is retried with backoff for as long as the outage lasts: never marked
  failed, never acknowledged, never dead-lettered.
* ``POISON``: everything else. The record, the formula or the data is bad (decode, formula,
  data and decision errors, conflicts, refused inputs), or the code fails on it. A retry
  cannot cure that: it gets a few attempts, then a dead letter with the reason and a
  failed state recorded for its request, and the consumer goes on.

Transient is the allow-list: an unknown error counts as poison, because retrying a record
forever is what wedges a partition. Explicit causes are searched, so an error raised
``from`` a lost connection is transient too.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from enum import StrEnum
from typing import TypeVar

import kombu.exceptions
import psycopg
import redis.exceptions
from kafka.errors import KafkaError
from psycopg_pool import PoolTimeout

from alphafactory.retry import Backoff, RetryStopped, retry
from inference.triton_client import TritonUnavailable
from messaging.errors import RECORD_ERRORS, BrokerUnavailableError, ConsumeError
from storage.errors import StorageConnectionError

log = logging.getLogger(__name__)
T = TypeVar("T")


class UnknownStrategy(LookupError):
    """A record for a strategy this service does not run (poison: a retry cannot cure it)."""


class Failure(StrEnum):
    TRANSIENT = "transient"
    POISON = "poison"


_TRANSIENT: tuple[type[BaseException], ...] = (
    psycopg.OperationalError,  # server gone or restarting (AdminShutdown), serialisation
    psycopg.InterfaceError,  # the connection was closed under us
    PoolTimeout,
    StorageConnectionError,
    BrokerUnavailableError,
    ConsumeError,
    TritonUnavailable,
    redis.exceptions.ConnectionError,
    redis.exceptions.TimeoutError,
    kombu.exceptions.OperationalError,  # Celery could not reach its broker
    ConnectionError,  # socket-level: refused, reset (the gRPC and HTTP clients)
    TimeoutError,
)


def _transient(error: BaseException) -> bool:
    if isinstance(error, KafkaError):
        # the record itself refused (too large, an invalid topic...): poison; anything
        # else is the broker or the client being away, retriable or not by kafka-python's
        # flag (a broker restart leaves an idempotent producer with a "fatal" error)
        return not isinstance(error, RECORD_ERRORS)
    return isinstance(error, _TRANSIENT)


def _chain(error: BaseException | None):
    seen: set[int] = set()
    while error is not None and id(error) not in seen:
        seen.add(id(error))
        yield error
        # only explicit causes (``raise ... from``): an implicit context may be an error that
        # was handled and recovered from before this one happened
        error = error.__cause__


def classify(error: BaseException) -> Failure:
    """TRANSIENT if ``error`` or an error in its chain is an infrastructure failure."""
    return Failure.TRANSIENT if any(_transient(e) for e in _chain(error)) else Failure.POISON


def is_transient(error: BaseException) -> bool:
    return classify(error) is Failure.TRANSIENT


class Stopped(Exception):
    """The stop event ended a wait for the infrastructure: the work in hand is handed back."""


# Postgres, Kafka, Redis or Triton restarting: seconds to minutes
OUTAGE_BACKOFF = Backoff(first_s=0.5, max_s=30.0)


class Resilience:
    """How a service meets failures: each call waits transient ones out (backoff, logged
    once per outage), and a record gets ``poison_attempts`` tries before it is poison."""

    def __init__(
        self,
        what: str,
        *,
        poison_attempts: int = 3,
        backoff: Backoff = OUTAGE_BACKOFF,
        logger: logging.Logger = log,
    ) -> None:
        if poison_attempts < 1:
            raise ValueError(f"poison_attempts must be >= 1, got {poison_attempts}")
        self.poison_attempts = poison_attempts
        self._backoff = backoff
        self._outage = OutageLog(what, logger)

    def call(self, call: Callable[[], T], stop_event: threading.Event) -> T:
        """``call()``, retried for as long as it fails transiently; :class:`Stopped` when
        ``stop_event`` is set while waiting. Poison propagates at once."""
        try:
            result = retry(
                call,
                retry_on=is_transient,
                backoff=self._backoff,
                sleep=stop_event.wait,
                on_retry=lambda error, _failures, delay: self._outage.failed(error, delay),
            )
        except RetryStopped as stopped:
            raise Stopped(str(stopped)) from stopped.__cause__
        self._outage.recovered()
        return result


class OutageLog:
    """Logs an outage once when it starts and once when it ends, not at every attempt."""

    def __init__(self, what: str, logger: logging.Logger = log) -> None:
        self._what, self._log = what, logger
        self._since: float | None = None

    def failed(self, error: BaseException, delay: float) -> None:
        if self._since is None:
            self._since = time.monotonic()
            self._log.warning(
                "%s: waiting for the infrastructure (%s: %s); retrying with backoff",
                self._what,
                type(error).__name__,
                str(error).splitlines()[0][:300] if str(error) else "",
            )
        else:
            self._log.debug("%s: still waiting, next try in %.1f s: %s", self._what, delay, error)

    def recovered(self) -> None:
        if self._since is not None:
            self._log.warning(
                "%s: recovered after %.1f s", self._what, time.monotonic() - self._since
            )
            self._since = None
