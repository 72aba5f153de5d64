"""The one retry policy of every edge: jittered exponential backoff, bounded or unbounded.

::

    retry(consumer.poll, retry_on=is_transient, backoff=Backoff(0.1, 5.0), timeout_s=60,
          sleep=stop_event.wait)

Delays grow by ``factor`` from ``first_s`` up to ``max_s``. With ``jitter`` (the default)
each delay is drawn uniformly from [0, that ceiling] ("full jitter"), so clients that lost a
server together do not all come back at the same instant. A retry is bounded by
``attempts`` (calls in all) and/or ``timeout_s`` (seconds since the first call began); with
neither it goes on for as long as it takes, which is what an always-on service wants for an
outage. ``sleep`` may return True to stop waiting (``threading.Event.wait`` does when the
event is set): the retry then ends with :class:`RetryStopped`. Clock, sleep and random
source are injectable, so tests run without waiting.
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TypeVar

T = TypeVar("T")
RetryOn = type[BaseException] | tuple[type[BaseException], ...] | Callable[[BaseException], bool]


class RetryError(Exception):
    """Root of the errors :func:`retry` raises itself; the last failure is ``__cause__``."""


class RetriesExhausted(RetryError):
    """Every allowed attempt failed (``attempts`` calls, or ``timeout_s`` elapsed)."""

    def __init__(self, message: str, *, attempts: int, elapsed_s: float) -> None:
        super().__init__(message)
        self.attempts = attempts
        self.elapsed_s = elapsed_s


class RetryStopped(RetryError):
    """``sleep`` reported a stop (e.g. the service's stop event) while waiting to retry."""


@dataclass(frozen=True)
class Backoff:
    first_s: float = 0.1
    max_s: float = 30.0
    factor: float = 2.0
    jitter: bool = True

    def __post_init__(self) -> None:
        if not 0 < self.first_s <= self.max_s:
            raise ValueError(
                f"backoff needs 0 < first_s <= max_s, got first_s={self.first_s!r}, "
                f"max_s={self.max_s!r}"
            )
        if self.factor < 1:
            raise ValueError(f"backoff factor must be >= 1, got {self.factor!r}")

    def ceiling(self, attempt: int) -> float:
        """The longest wait after failure number ``attempt`` (0 = the first failure)."""
        # capped before the power so a long outage cannot overflow a float
        return min(self.max_s, self.first_s * self.factor ** min(attempt, 1000))

    def delay(self, attempt: int, rng: random.Random | None = None) -> float:
        ceiling = self.ceiling(attempt)
        if not self.jitter:
            return ceiling
        return (rng or random).uniform(0.0, ceiling)


def _matcher(retry_on: RetryOn) -> Callable[[BaseException], bool]:
    if isinstance(retry_on, type | tuple):
        return lambda error: isinstance(error, retry_on)
    return retry_on


def retry(
    call: Callable[[], T],
    *,
    retry_on: RetryOn,
    backoff: Backoff = Backoff(),
    attempts: int | None = None,
    timeout_s: float | None = None,
    sleep: Callable[[float], object] = time.sleep,
    clock: Callable[[], float] = time.monotonic,
    on_retry: Callable[[BaseException, int, float], None] | None = None,
    rng: random.Random | None = None,
) -> T:
    """``call()``'s result; errors that ``retry_on`` accepts are retried (module doc).

    Other errors propagate at once, unchanged. ``on_retry(error, failures, delay)`` is
    called before each wait (for logging). Raises :class:`RetriesExhausted` or
    :class:`RetryStopped` from the last error.
    """
    if attempts is not None and attempts < 1:
        raise ValueError(f"attempts must be >= 1 or None, got {attempts!r}")
    if timeout_s is not None and timeout_s < 0:
        raise ValueError(f"timeout_s must be >= 0 or None, got {timeout_s!r}")
    retriable = _matcher(retry_on)
    failures, started = 0, clock()
    while True:
        try:
            return call()
        except BaseException as error:
            if not retriable(error):
                raise
            failures += 1
            elapsed = clock() - started
            if (attempts is not None and failures >= attempts) or (
                timeout_s is not None and elapsed >= timeout_s
            ):
                raise RetriesExhausted(
                    f"gave up after {failures} attempt(s) in {elapsed:.1f} s: {error}",
                    attempts=failures,
                    elapsed_s=elapsed,
                ) from error
            delay = backoff.delay(failures - 1, rng)
            if on_retry is not None:
                on_retry(error, failures, delay)
            if sleep(delay) is True:
                raise RetryStopped(f"stopped while waiting to retry: {error}") from error
