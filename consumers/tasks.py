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
from celery.signals import worker_process_init, worker_process_shutdown
from psycopg_pool import ConnectionPool

from alphafactory.retry import Backoff
from consumers.evaluation import EvaluationContext, evaluate_chunk, fail_chunk

log = logging.getLogger(__name__)
EVALUATE = "alphafactory.evaluate"
QUEUE = "evaluate"
# Between a failed chunk's attempts: 0-2 s, 0-4 s, 0-8 s... (full jitter)
RETRY_BACKOFF = Backoff(first_s=2.0, max_s=60.0)

app = Celery("alphafactory")


@dataclass
class WorkerResources:
    """What one worker process keeps between chunks."""

    pool: ConnectionPool
    context: EvaluationContext
    retries: int  # attempts after the first before a chunk is given up (fail_chunk)


_opener: Callable[[], WorkerResources] | None = None
_resources: WorkerResources | None = None


def configure(*, broker_url: str, visibility_timeout_s: int) -> Celery:
    app.conf.update(
        broker_url=broker_url,
        broker_connection_retry_on_startup=True,
        broker_transport_options={
            "visibility_timeout": visibility_timeout_s,
            # the sweep that hands a dead worker's unacknowledged tasks back
            "unacked_restore_interval": max(1, visibility_timeout_s // 4),
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
    )
    return app


def serve_with(opener: Callable[[], WorkerResources]) -> None:
    """How a worker process opens its resources (set before the worker forks)."""
    global _opener
    _opener = opener


@worker_process_init.connect
def _open(**_kwargs) -> None:
    global _resources
    if _opener is None:
        raise RuntimeError("consumers.tasks.serve_with() was not called before the worker")
    _resources = _opener()


@worker_process_shutdown.connect
def _close(**_kwargs) -> None:
    global _resources
    if _resources is not None:
        _resources.pool.close()
        _resources = None


@app.task(name=EVALUATE, bind=True, acks_late=True, reject_on_worker_lost=True)
def evaluate(self, request_id: str, formula_hashes: list[str]) -> int:
    """Evaluate one chunk of a request's candidates (``consumers.evaluation``)."""
    if _resources is None:  # a solo pool: no child was forked, so no init ran
        _open()
    resources = _resources
    with resources.pool.connection() as conn:
        try:
            return evaluate_chunk(conn, resources.context, request_id, formula_hashes)
        except Exception as error:
            attempt = self.request.retries
            if attempt >= resources.retries:
                fail_chunk(conn, request_id, formula_hashes, error)
                return 0
            log.warning(
                "request %s chunk failed (%s); retry %d of %d",
                request_id,
                error,
                attempt + 1,
                resources.retries,
            )
            raise self.retry(exc=error, countdown=RETRY_BACKOFF.delay(attempt)) from error


def send_chunks(request_id: str, formula_hashes: list[str], chunk_size: int) -> int:
    """Queue the request's candidates in chunks; returns the number of tasks sent."""
    chunks = [formula_hashes[k : k + chunk_size] for k in range(0, len(formula_hashes), chunk_size)]
    for chunk in chunks:
        app.send_task(EVALUATE, args=[request_id, chunk], queue=QUEUE)
    return len(chunks)
