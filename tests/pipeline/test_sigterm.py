"""A real SIGTERM to each service of the local stack while it works ends it cleanly: the
work in hand is finished (or, not yet started, handed back to Kafka or the Celery queue),
the process exits with code 0, its supervisor starts it again, and nothing is lost or
done twice. "While it works" is proven from the service's own log: the signal's line
falls between the lines that start and finish the work."""

from __future__ import annotations

import os
import signal
import time
from datetime import timedelta
from pathlib import Path

import psycopg
import pytest

from alphafactory.data import synthetic_market
from app import stack
from app.services import SERVICES
from tests.chaos import STRATEGY_TOML, Feed, running_world, until_it_works

pytestmark = pytest.mark.slow

# enough candidates that generating, evaluating and allocating each take seconds here; one
# formula per Celery task, since scoring a formula alone takes about a millisecond and a
# request of 40 chunks could be evaluated whole before the worker's SIGTERM lands
BUSY_STRATEGY = STRATEGY_TOML.replace("candidates = 12", "candidates = 400").replace(
    "chunk_size = 4", "chunk_size = 1"
)
SIGNALLED = "signal 15 received"
EXIT_TIMEOUT_S = 60.0


@pytest.fixture(scope="module")
def world():
    market = synthetic_market(n_assets=6, n_dates=96, n_macro=4, seed=21, frequency="M")
    # no process here is killed, so nothing waits on the visibility timeout; the chaos
    # worlds' 10 s delivers a chunk again whenever its delivery outlasts it on a loaded
    # machine (a worker's first chunk loading its panel while the trainer holds both
    # cores), which is a second start this file's tests would count as done twice
    options = {"n_triggers": 3, "strategy_toml": BUSY_STRATEGY, "visibility_timeout_s": 600}
    with running_world("alphafactory-sigterm-", market, **options) as started:
        yield started


class Service:
    """One supervised service of the stack: its process, log and supervisor's record."""

    def __init__(self, world, name: str) -> None:
        self.world, self.name = world, name
        self.log = Path(world.settings.state_path, "logs", f"{name}.log")

    def supervision(self) -> dict:
        paths = stack.stack_paths(self.world.settings)
        return stack.service_process(self.name).supervision(paths)

    def log_lines(self) -> list[str]:
        return self.log.read_text(errors="replace").splitlines()

    def terminate(self) -> tuple[str, float]:
        """SIGTERM the service (not its supervisor); (how it exited, seconds it took)."""
        before = self.supervision()
        started = time.monotonic()
        os.kill(before["child_pid"], signal.SIGTERM)
        while time.monotonic() - started < EXIT_TIMEOUT_S:
            now = self.supervision()
            if now.get("restarts", 0) > before.get("restarts", 0):
                return now["last_exit"], time.monotonic() - started
            time.sleep(0.05)
        raise AssertionError(f"{self.name} still runs {EXIT_TIMEOUT_S:.0f} s after SIGTERM")


def wait_for(condition, what: str, timeout_s: float = 180.0, poll_s: float = 0.05):
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        found = until_it_works(condition)
        if found:
            return found
        time.sleep(poll_s)
    raise AssertionError(f"timed out waiting for {what}")


def terminate_mid_work(service: Service, started: str, finished: str, begin=lambda: None):
    """Call ``begin``, SIGTERM ``service`` once its log shows a new ``started`` line, and
    check from the log that the signal landed before the ``finished`` line: the service
    finished the work in hand after it, then exited with code 0."""
    seen = sum(started in line for line in service.log_lines())
    begin()
    wait_for(lambda: sum(started in line for line in service.log_lines()) > seen, started)
    exit_reason, seconds = service.terminate()
    assert exit_reason == "exited with code 0", f"{service.name}: {exit_reason}"
    first = [k for k, line in enumerate(service.log_lines()) if started in line][seen]
    wait_for(lambda: any(finished in line for line in service.log_lines()[first:]), finished)
    lines = service.log_lines()[first:]
    signalled, done = (
        next(k for k, line in enumerate(lines) if n in line) for n in (SIGNALLED, finished)
    )
    assert 0 < signalled < done, f"the signal did not land while {service.name} worked: {lines}"


def count(world, query: str, arguments=()) -> int:
    with psycopg.connect(world.settings.postgres.dsn("app"), connect_timeout=3) as conn:
        return conn.execute(query, arguments).fetchone()[0]


def test_the_release_handler_finishes_the_record_in_hand_and_hands_back_the_rest(world):
    template = world.replay[0]
    quiet = [s for s in ("M0002", "M0003") if not world.strategy.triggered_by(s)]
    burst = [
        template.model_copy(
            update={
                "event_id": f"sigterm-burst-{k}",
                "series_id": quiet[k % len(quiet)],
                "released_at": world.start - timedelta(days=1, seconds=-k),
                "value": float(k),
            }
        )
        for k in range(600)
    ]
    ids = [r.event_id for r in burst]
    stored = "SELECT count(*) FROM core.macro_observations WHERE event_id = ANY(%s)"
    Feed(world.settings).publish([(r.key(), r.to_json()) for r in burst])
    wait_for(lambda: count(world, stored, (ids,)) > 0, "the first release stored")
    exit_reason, _ = Service(world, "release-handler").terminate()
    assert exit_reason == "exited with code 0"
    # read before its successor starts: what the handler had not reached was handed back
    assert count(world, stored, (ids,)) < len(ids), "the burst was stored before the signal"
    # the restarted handler gets what was handed back; each release stored exactly once
    wait_for(lambda: count(world, stored, (ids,)) == len(ids), "the whole burst stored")
    distinct = (
        "SELECT count(DISTINCT event_id) FROM core.macro_observations WHERE event_id = ANY(%s)"
    )
    assert count(world, distinct, (ids,)) == len(ids)


def test_generator_worker_and_allocator_finish_the_work_in_hand(world):
    trigger = world.triggers[0]
    feed = Feed(world.settings)
    for release in world.replay[: world.replay.index(trigger)]:
        feed.publish([(release.key(), release.to_json())])
    feed.settle()  # the decision sees every earlier release

    terminate_mid_work(
        Service(world, "generator"),
        "generating 400 candidates",
        "new candidates",
        begin=lambda: feed.publish([(trigger.key(), trigger.to_json())]),
    )
    request = (
        "SELECT request_id, n_candidates FROM core.generation_requests "
        "WHERE trigger_event_id = %s AND n_candidates IS NOT NULL"
    )
    request_id, n_candidates = wait_for(
        lambda: _row(world, request, (trigger.event_id,)), "candidates"
    )
    evaluated = (
        "SELECT count(*) FROM core.request_candidates "
        "WHERE request_id = %s AND evaluated_at IS NOT NULL"
    )
    wait_for(lambda: count(world, evaluated, (request_id,)) > 0, "the first evaluation")
    exit_reason, _ = Service(world, "worker").terminate()
    assert exit_reason == "exited with code 0"
    # read before its successor starts: the queued chunks were handed back, not run
    assert count(world, evaluated, (request_id,)) < n_candidates

    allocated = "SELECT count(*) FROM core.allocations WHERE trigger_event_id = %s"
    terminate_mid_work(
        Service(world, "allocator"), f"request {request_id}: allocating", "allocated alloc-"
    )
    assert count(world, allocated, (trigger.event_id,)) == 1
    # each chunk ran once: the one in hand finished, the queued ones went back unstarted
    twice = "SELECT count(*) FROM core.task_deliveries WHERE request_id = %s AND started > 1"
    assert count(world, twice, (request_id,)) == 0
    assert count(world, evaluated, (request_id,)) == n_candidates


@pytest.mark.parametrize(
    "name", ["relay", "scheduler", "reconciler", "market-data", "trainer", "dashboard"]
)
def test_the_looping_services_stop_at_once(world, name):
    exit_reason, seconds = Service(world, name).terminate()
    assert exit_reason == "exited with code 0"
    assert seconds < 15.0, f"{name} took {seconds:.1f} s to stop"


def test_every_service_is_back_after_its_sigterm(world):
    for declared in SERVICES:
        assert Service(world, declared.name).supervision().get("restarts", 0) >= 1, declared.name
    wait_for(lambda: stack.status(world.settings)["up"], "every service up", timeout_s=60)


def _row(world, query: str, arguments):
    with psycopg.connect(world.settings.postgres.dsn("app"), connect_timeout=3) as conn:
        return conn.execute(query, arguments).fetchone()
