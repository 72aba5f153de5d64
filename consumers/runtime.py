"""The long-running services, built from the settings: generator, allocator, worker.

Each ``run_*`` blocks until ``stop_event`` is set (SIGTERM and SIGINT set it in the CLI)
and then returns after the record in hand is finished and committed. Errors:

* a message that can never be processed (invalid event, unknown strategy, a formula
  that does not fit the model, a conflicting record) is dead-lettered with its
  coordinates and the error, and the consumer goes on;
* anything else (Postgres or Redis down...) propagates: nothing past the record is
  committed and the process exits non-zero, so its supervisor restarts it and the record
  is delivered again.
"""

from __future__ import annotations

import logging
import threading

from alphafactory import topics
from alphafactory.events import BacktestResult, EventError, GenerationRequest, decode
from alphafactory.formula import FormulaError
from alphafactory.settings import Settings
from alphafactory.strategy import active_strategies
from consumers.allocation import AllocationContext, allocate_request
from consumers.dead_letters import DeadLetterPolicy, KafkaDeadLetterSink, PoisonOnly
from consumers.generation import GenerationContext, UnknownStrategy, handle_request
from consumers.loop import ConsumerLoop, LoopStats
from producers.publisher import KafkaPublisher
from storage.db import open_pool
from storage.errors import ConflictError, InvalidRecordError

log = logging.getLogger(__name__)
POISON = (EventError, UnknownStrategy, FormulaError, ConflictError, InvalidRecordError)


def _strategies(settings: Settings) -> dict:
    return {s.id: s for s in active_strategies(settings.pipeline.strategies_dir)}


def _consume(
    settings: Settings, group: str, topic: str, handle, stop_event, **loop_options
) -> LoopStats:
    with KafkaPublisher.open(settings.kafka) as publisher:
        policy = DeadLetterPolicy(KafkaDeadLetterSink(publisher), group_id=group)
        loop = ConsumerLoop(
            settings.kafka,
            group_id=group,
            topics=[topic],
            handler=handle,
            on_error=PoisonOnly(policy, POISON),
            stop_event=stop_event,
            **loop_options,
        )
        return loop.run()


def run_allocator(settings: Settings, stop_event: threading.Event, **loop_options) -> LoopStats:
    context = AllocationContext(_strategies(settings))
    pool = open_pool(settings.postgres.dsn("app"), min_size=1, max_size=2, name="allocator")

    def handle(record) -> None:
        result = decode(BacktestResult, record.value)
        with pool.connection() as conn:
            allocate_request(conn, context, result.request_id)

    try:
        return _consume(
            settings,
            "alphafactory-allocator",
            topics.BACKTEST_RESULTS,
            handle,
            stop_event,
            **loop_options,
        )
    finally:
        pool.close()


def run_generator(settings: Settings, stop_event: threading.Event, **loop_options) -> LoopStats:
    import torch

    from consumers import tasks
    from inference.pipeline import triton_policy
    from inference.sampling import InProcessPolicy
    from inference.training import load_checkpoint

    torch.set_num_threads(1)
    path = settings.pipeline.generator_checkpoint
    if not path.exists():
        # an always-on service waits for its model (`alphafactory model train`, the demo)
        log.warning("waiting for a generator checkpoint at %s", path)
        while not path.exists():
            if stop_event.wait(settings.pipeline.poll_interval_s * 4):
                return LoopStats()
    checkpoint = load_checkpoint(path)
    tasks.configure(settings)
    strategies = _strategies(settings)
    context = GenerationContext(
        strategies=strategies,
        policy=triton_policy(settings.triton, InProcessPolicy(checkpoint.model)),
        vocab=checkpoint.vocab,
        gamma=float(checkpoint.reward.get("gamma", 1.0)),
        dispatch=tasks.send_chunks,
        allocation=AllocationContext(strategies),
        stop_event=stop_event,
    )
    pool = open_pool(settings.postgres.dsn("app"), min_size=1, max_size=2, name="generator")

    def handle(record) -> None:
        request = decode(GenerationRequest, record.value)
        with pool.connection() as conn:
            handle_request(conn, context, request)

    try:
        # one request at a time between commits: each can take minutes
        return _consume(
            settings,
            "alphafactory-generator",
            topics.GENERATION_REQUESTS,
            handle,
            stop_event,
            batch_size=1,
            **loop_options,
        )
    finally:
        pool.close()


def run_worker(settings: Settings, extra_args: list[str] = ()) -> None:
    """A Celery worker on the evaluation queue (blocks; Celery handles SIGTERM: warm
    shutdown, the running chunk finishes)."""
    from consumers import tasks

    app = tasks.configure(settings)
    app.worker_main(
        [
            "worker",
            f"--loglevel={settings.log_level}",
            "--pool=prefork",
            f"--concurrency={settings.pipeline.worker_concurrency}",
            "-Q",
            tasks.QUEUE,
            "--hostname=alphafactory@%h",
            "--without-gossip",
            "--without-mingle",
            *extra_args,
        ]
    )
