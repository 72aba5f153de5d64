"""The one retry helper: backoff growth and jitter, bounds, stop, and errors passed through."""

from __future__ import annotations

import random
import threading

import pytest

from alphafactory.retry import Backoff, RetriesExhausted, RetryStopped, retry


class Flaky:
    """Fails ``failures`` times with ``error``, then returns ``"ok"``."""

    def __init__(self, failures: int, error: type[Exception] = ConnectionError) -> None:
        self.failures, self.error, self.calls = failures, error, 0

    def __call__(self) -> str:
        self.calls += 1
        if self.calls <= self.failures:
            raise self.error(f"failure {self.calls}")
        return "ok"


class FakeTime:
    """A clock that only moves when slept on."""

    def __init__(self) -> None:
        self.now, self.sleeps = 0.0, []

    def clock(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds


def test_backoff_grows_to_its_cap_without_jitter():
    backoff = Backoff(first_s=0.5, max_s=3.0, factor=2.0, jitter=False)
    assert [backoff.delay(k) for k in range(5)] == [0.5, 1.0, 2.0, 3.0, 3.0]
    assert backoff.ceiling(10_000) == 3.0  # no overflow after a long outage


def test_full_jitter_stays_under_the_ceiling_and_varies():
    backoff = Backoff(first_s=1.0, max_s=8.0)
    rng = random.Random(7)
    delays = [backoff.delay(3, rng) for _ in range(200)]
    assert all(0.0 <= d <= 8.0 for d in delays)
    assert len(set(delays)) > 150 and max(delays) > 6.0 and min(delays) < 2.0


def test_unbounded_retry_goes_on_until_the_call_succeeds():
    fake, flaky = FakeTime(), Flaky(failures=25)
    backoff = Backoff(first_s=0.1, max_s=1.0, jitter=False)
    result = retry(
        flaky, retry_on=ConnectionError, backoff=backoff, sleep=fake.sleep, clock=fake.clock
    )
    assert result == "ok" and flaky.calls == 26
    assert fake.sleeps[:4] == [0.1, 0.2, 0.4, 0.8] and set(fake.sleeps[4:]) == {1.0}


def test_attempts_bound_raises_from_the_last_error():
    fake, flaky = FakeTime(), Flaky(failures=10)
    with pytest.raises(RetriesExhausted) as raised:
        retry(flaky, retry_on=ConnectionError, attempts=3, sleep=fake.sleep, clock=fake.clock)
    assert flaky.calls == 3 and raised.value.attempts == 3
    assert isinstance(raised.value.__cause__, ConnectionError)
    assert "failure 3" in str(raised.value)
    assert len(fake.sleeps) == 2  # no wait after the last attempt


def test_timeout_bound_counts_from_the_first_call():
    fake, flaky = FakeTime(), Flaky(failures=100)
    backoff = Backoff(first_s=1.0, max_s=1.0, jitter=False)
    with pytest.raises(RetriesExhausted) as raised:
        retry(
            flaky,
            retry_on=ConnectionError,
            backoff=backoff,
            timeout_s=5.0,
            sleep=fake.sleep,
            clock=fake.clock,
        )
    assert raised.value.elapsed_s == 5.0 and flaky.calls == 6


def test_errors_it_does_not_retry_propagate_unchanged():
    flaky = Flaky(failures=1, error=KeyError)
    with pytest.raises(KeyError):
        retry(flaky, retry_on=ConnectionError, sleep=lambda s: None)
    assert flaky.calls == 1


def test_a_predicate_decides_what_is_retriable():
    class Transient(Exception):
        retriable = True

    flaky = Flaky(failures=2, error=Transient)
    result = retry(flaky, retry_on=lambda e: getattr(e, "retriable", False), sleep=lambda s: None)
    assert result == "ok" and flaky.calls == 3


def test_a_set_stop_event_ends_the_wait_at_once():
    stop = threading.Event()
    stop.set()
    flaky = Flaky(failures=5)
    with pytest.raises(RetryStopped) as raised:
        retry(flaky, retry_on=ConnectionError, backoff=Backoff(60.0, 60.0), sleep=stop.wait)
    assert flaky.calls == 1 and isinstance(raised.value.__cause__, ConnectionError)


def test_on_retry_sees_each_failure_and_its_delay():
    seen = []
    retry(
        Flaky(failures=2),
        retry_on=ConnectionError,
        backoff=Backoff(0.5, 5.0, jitter=False),
        sleep=lambda s: None,
        on_retry=lambda error, failures, delay: seen.append((str(error), failures, delay)),
    )
    assert seen == [("failure 1", 1, 0.5), ("failure 2", 2, 1.0)]


@pytest.mark.parametrize(
    "kwargs", [{"first_s": 0.0}, {"first_s": 2.0, "max_s": 1.0}, {"factor": 0.5}]
)
def test_bad_backoff_is_refused_with_the_value(kwargs):
    with pytest.raises(ValueError, match="backoff"):
        Backoff(**kwargs)
