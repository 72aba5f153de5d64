"""Celery evaluation workers on the real Redis: chunks evaluated, and a worker killed with
SIGKILL in the middle of a request loses nothing and doubles nothing.

A SIGKILL can lose a task in Redis itself: the worker's BRPOP, issued ahead while it waits,
takes the next message off the list before the worker records it as unacknowledged, so
neither the visibility timeout nor a restart brings it back. The production answer is the
reconciler re-driving stalled candidates from Postgres, and the kill test runs it too."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from datetime import UTC, datetime, timedelta

import pandas as pd
import pytest

from alphafactory.events import GenerationRequest, request_id_for
from app.wiring import celery_app
from consumers import tasks
from consumers.allocation import AllocationContext, allocate_request
from consumers.generation import GenerationContext, handle_request
from consumers.reconciler import Reconciler, ReconcilerRules
from storage.db import open_pool
from storage.progress import trigger_status
from storage.requests import request_complete

pytestmark = pytest.mark.slow


def start_worker(env, log_path):
    command = [sys.executable, "-m", "app.cli.main", "worker"]
    return subprocess.Popen(
        command,
        env=env,
        stdout=open(log_path, "ab"),
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )


def stop(process) -> None:
    if process.poll() is None:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait(timeout=30)


def wait_for(condition, timeout_s: float, what: str):
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(0.2)
    raise AssertionError(f"timed out after {timeout_s} s waiting for {what}")


def evaluated(conn, request) -> int:
    return trigger_status(conn, request.strategy_id, request.trigger_event_id).evaluated


def dispatch_request(conn, market, strategy, generator, settings, *, candidates, chunk_size):
    celery_app(settings)
    trigger = f"worker-{time.time_ns()}"
    when = (pd.Timestamp(market.panel.dates[105]) + pd.Timedelta(days=10)).tz_localize(UTC)
    request = GenerationRequest(
        request_id=request_id_for(strategy.id, trigger),
        strategy_id=strategy.id,
        as_of=when.date(),
        decision_time=when.to_pydatetime(),
        trigger_event_id=trigger,
        trigger="manual",
        candidates=candidates,
        requested_at=datetime.now(UTC),
    )
    policy, vocab = generator
    generation = strategy.generation.model_copy(update={"chunk_size": chunk_size})
    strategies = {strategy.id: strategy.model_copy(update={"generation": generation})}
    context = GenerationContext(
        strategies,
        policy,
        vocab,
        1.0,
        tasks.send_chunks,
        AllocationContext(strategies),
        threading.Event(),
    )
    sent = handle_request(conn, context, request)
    return request, sent


# re-drives a request's pending candidates once no task of it was delivered for 10 s
STALL_RULES = ReconcilerRules(
    grace=timedelta(seconds=10), stall=timedelta(seconds=10), redrive_every=timedelta(seconds=10)
)


def redrive_only(request):
    """The reconciler's dispatch, kept to this test's request (the database is shared)."""

    def dispatch(request_id: str, hashes: list[str], chunk_size: int) -> int:
        if request_id != request.request_id:
            return 0
        return tasks.send_chunks(request_id, hashes, chunk_size)

    return dispatch


def test_a_killed_worker_loses_and_doubles_nothing(
    conn, market, strategy, generator, pipeline_db, pipeline_settings, service_env, tmp_path
):
    worker = start_worker(service_env, tmp_path / "worker.log")
    try:
        request, sent = dispatch_request(
            conn, market, strategy, generator, pipeline_settings, candidates=40, chunk_size=1
        )
        assert sent == 40
        wait_for(
            lambda: evaluated(conn, request) >= 3,
            120,
            "the first evaluations",
        )
        os.killpg(worker.pid, signal.SIGKILL)  # the whole worker, children included
        worker.wait(timeout=30)
        done_at_kill = evaluated(conn, request)
        worker = start_worker(service_env, tmp_path / "worker.log")
        with open_pool(pipeline_db.dsn("app"), min_size=1, max_size=2) as pool:
            reconciler = Reconciler(
                pool, {strategy.id: strategy}, redrive_only(request), lambda: 0, STALL_RULES
            )

            def complete_or_reconcile() -> bool:
                if request_complete(conn, request.request_id):
                    return True
                reconciler.reconcile()
                return False

            wait_for(complete_or_reconcile, 180, "every evaluation after the restart")
    finally:
        stop(worker)
    assert done_at_kill < 40, "the kill came after the request finished: nothing was tested"
    counts = conn.execute(
        """
        SELECT count(*), count(DISTINCT e.formula_hash)
        FROM core.request_candidates AS c
        JOIN core.evaluations AS e ON e.formula_hash = c.formula_hash
             AND e.strategy_id = %s AND e.as_of = %s
        WHERE c.request_id = %s
        """,
        (strategy.id, request.as_of, request.request_id),
    ).fetchone()
    assert counts == (40, 40)  # every candidate evaluated exactly once
    context = AllocationContext({strategy.id: strategy})
    first = allocate_request(conn, context, request.request_id)
    assert first is not None and allocate_request(conn, context, request.request_id) == first
    allocations = conn.execute(
        "SELECT count(*) FROM core.allocations WHERE trigger_event_id = %s",
        (request.trigger_event_id,),
    ).fetchone()[0]
    assert allocations == 1
