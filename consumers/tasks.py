"""The Celery app and its one task, kept thin: the work is ``consumers.evaluation``.

Delivery settings (DESIGN.md, measured on these machines): late acknowledgement and
reject-on-worker-lost (a killed child's task is redelivered at once), prefetch 1 (a worker
holds one chunk at a time, so a slow chunk never strands queued ones), Redis's visibility
timeout (a killed whole worker's task returns after it), results ignored (business
results go to Postgres). Every write is idempotent, so a redelivered chunk rewrites the
same rows.

Nothing connects at import. The composition root (``app``) calls :func:`configure` in
every process that sends or runs tasks, and, before a worker starts, :func:`serve_with`
with the function that opens a worker process's resources; each prefork child calls it
once after the fork (``worker_process_init``).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass

from celery import Celery
from celery.signals import (
    task_failure,
    task_retry,
    task_success,
    worker_process_init,
    worker_process_shutdown,
)
from psycopg_pool import ConnectionPool

from alphafactory import log_context, telemetry
from consumers.evaluation import ChunkDelivery, EvaluationContext, run_chunk

log = logging.getLogger(__name__)
EVALUATE = "alphafactory.evaluate"
QUEUE = "evaluate"
TRAIN = "alphafactory.train"
TRAIN_QUEUE = "train"  # the trainer's own worker: one model at a time

app = Celery("alphafactory")


@dataclass
class WorkerResources:
    """What one worker process keeps between chunks."""

    pool: ConnectionPool
    context: EvaluationContext
    retries: int  # attempts after the first before a poison chunk is given up (fail_chunk)
    max_deliveries: int = 3  # deliveries that killed their worker before it is given up


_opener: Callable[[], WorkerResources] | None = None
_resources: WorkerResources | None = None
_trainer: Callable[[dict], int] | None = None


def configure(*, broker_url: str, visibility_timeout_s: int) -> Celery:
    app.conf.update(
        broker_url=broker_url,
        broker_connection_retry_on_startup=True,
        broker_transport_options={
            "visibility_timeout": visibility_timeout_s,
            # the sweep that hands a dead worker's unacknowledged tasks back
            "unacked_restore_interval": max(1, visibility_timeout_s // 4),
            # kombu 5.7 scans only every Nth sweep (10 by default): 1 keeps the period above
            "unacked_restore_throttle": 1,
        },
        task_acks_late=True,
        task_reject_on_worker_lost=True,
        worker_prefetch_multiplier=1,
        task_ignore_result=True,
        task_serializer="json",
        accept_content=["json"],
        task_default_queue=QUEUE,
        worker_hijack_root_logger=False,
        worker_max_tasks_per_child=200,  # bounds the panel caches' growth
        # a replacement child reports up within this; Celery's 4 s default killed every
        # replacement (and the next, and so on) while a training held both cores
        worker_proc_alive_timeout=120.0,
    )
    return app


def serve_with(opener: Callable[[], WorkerResources]) -> None:
    """How a worker process opens its resources (set before the worker forks)."""
    global _opener
    _opener = opener


def train_with(trainer: Callable[[dict], int]) -> None:
    """What the trainer's worker runs for a training request (set before it starts)."""
    global _trainer
    _trainer = trainer


@worker_process_init.connect
def _open(**_kwargs) -> None:
    global _resources
    if _opener is None and _trainer is not None:
        return  # the trainer's worker evaluates nothing
    if _opener is None:
        raise RuntimeError("consumers.tasks.serve_with() was not called before the worker")
    _resources = _opener()


@worker_process_shutdown.connect
def _close(**_kwargs) -> None:
    global _resources
    if _resources is not None:
        _resources.pool.close()
        _resources = None


@task_success.connect
def _count_success(sender=None, **_kwargs) -> None:
    telemetry.CELERY_TASKS.labels(sender.name, "success").inc()


@task_retry.connect
def _count_retry(sender=None, **_kwargs) -> None:
    telemetry.CELERY_TASKS.labels(sender.name, "retry").inc()


@task_failure.connect
def _count_failure(sender=None, **_kwargs) -> None:
    telemetry.CELERY_TASKS.labels(sender.name, "failure").inc()


@app.task(name=EVALUATE, bind=True, acks_late=True, reject_on_worker_lost=True)
def evaluate(self, request_id: str, formula_hashes: list[str], poison_attempts: int = 0) -> int:
    """Evaluate one chunk of a request's candidates (``consumers.evaluation.run_chunk``
    decides what a failure means; this only hands a retry back to Celery)."""
    resources = _resources if _resources is not None else _open_now()
    with log_context.bound(request_id=request_id, record=f"task {self.request.id}"):
        outcome = run_chunk(
            resources.pool,
            resources.context,
            ChunkDelivery(
                self.request.id, request_id, formula_hashes, poison_attempts, self.request.retries
            ),
            retries=resources.retries,
            max_deliveries=resources.max_deliveries,
        )
    if outcome.retry is None:
        return outcome.evaluated
    delivery = outcome.retry
    raise self.retry(
        exc=outcome.error,
        countdown=outcome.retry_in_s,
        kwargs={"poison_attempts": delivery.poison_attempts},
        max_retries=None,  # run_chunk bounds poison; an outage is waited out for good
    )


@app.task(name=TRAIN, acks_late=True, reject_on_worker_lost=True)
def train(request: dict) -> int:
    """Train one generator version (``app.trainer``); a redelivered request finds the
    version registered and only finishes what is left (serve, promote)."""
    if _trainer is None:
        raise RuntimeError("consumers.tasks.train_with() was not called before the worker")
    return _trainer(request)


def send_training(request) -> None:
    """Queue a ``TrainingRequest`` for the trainer."""
    app.send_task(TRAIN, args=[request.model_dump(mode="json")], queue=TRAIN_QUEUE)


def _open_now() -> WorkerResources:
    _open()  # a solo pool: no child was forked, so no init ran
    return _resources


def send_chunks(request_id: str, formula_hashes: list[str], chunk_size: int) -> int:
    """Queue the request's candidates in chunks; returns the number of tasks sent."""
    chunks = [formula_hashes[k : k + chunk_size] for k in range(0, len(formula_hashes), chunk_size)]
    for chunk in chunks:
        app.send_task(EVALUATE, args=[request_id, chunk], queue=QUEUE)
    return len(chunks)
