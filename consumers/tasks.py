"""The Celery app and its one task, kept thin: the work is ``consumers.evaluation``.

Delivery settings (DESIGN.md, measured on these machines): late acknowledgement and
reject-on-worker-lost (a killed child's task is redelivered at once), prefetch 1 (a worker
holds one chunk at a time, so a slow chunk never strands queued ones), Redis's visibility
timeout from the settings (a killed whole worker's task returns after it), results
ignored (business results go to Postgres). Every write is idempotent, so a redelivered
chunk rewrites the same rows.

``configure(settings)`` is called once by each process that sends or runs tasks
(``alphafactory worker``, the generation service); nothing connects at import.
"""

from __future__ import annotations

import logging
import random

from celery import Celery
from celery.signals import worker_process_init, worker_process_shutdown

from alphafactory.settings import Settings

log = logging.getLogger(__name__)
EVALUATE = "alphafactory.evaluate"
QUEUE = "evaluate"

app = Celery("alphafactory")
_worker: dict = {}  # per worker process: settings, pool, evaluation context


def configure(settings: Settings) -> Celery:
    visibility = settings.pipeline.visibility_timeout_s
    app.conf.update(
        broker_url=settings.redis.url,
        broker_connection_retry_on_startup=True,
        broker_transport_options={
            "visibility_timeout": visibility,
            # the sweep that hands a dead worker's unacknowledged tasks back
            "unacked_restore_interval": max(1, visibility // 4),
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
    app.conf.alphafactory_settings = settings
    return app


@worker_process_init.connect
def _open(**_kwargs) -> None:
    """Each worker process (a prefork child) opens its own pool after the fork."""
    import torch

    from alphafactory.strategy import active_strategies
    from consumers.evaluation import EvaluationContext
    from storage.db import open_pool

    torch.set_num_threads(1)  # DESIGN.md: one thread per process on 2 cores
    settings: Settings = app.conf.alphafactory_settings
    _worker["settings"] = settings
    _worker["pool"] = open_pool(
        settings.postgres.dsn("app"), min_size=1, max_size=2, name="alphafactory-worker"
    )
    strategies = active_strategies(settings.pipeline.strategies_dir)
    _worker["context"] = EvaluationContext({s.id: s for s in strategies})


@worker_process_shutdown.connect
def _close(**_kwargs) -> None:
    pool = _worker.pop("pool", None)
    if pool is not None:
        pool.close()


@app.task(name=EVALUATE, bind=True, acks_late=True, reject_on_worker_lost=True)
def evaluate(self, request_id: str, formula_hashes: list[str]) -> int:
    """Evaluate one chunk of a request's candidates (``consumers.evaluation``)."""
    from consumers.evaluation import evaluate_chunk, fail_chunk

    if "pool" not in _worker:  # a solo pool, or eager mode in tests: no child init ran
        _open()
    retries = _worker["settings"].pipeline.task_retries
    with _worker["pool"].connection() as conn:
        try:
            return evaluate_chunk(conn, _worker["context"], request_id, formula_hashes)
        except Exception as error:
            if self.request.retries >= retries:
                fail_chunk(conn, request_id, formula_hashes, error)
                return 0
            log.warning(
                "request %s chunk failed (%s); retry %d of %d",
                request_id,
                error,
                self.request.retries + 1,
                retries,
            )
            countdown = random.uniform(0, 2 ** (self.request.retries + 1))  # full jitter
            raise self.retry(exc=error, countdown=countdown) from error


def send_chunks(request_id: str, formula_hashes: list[str], chunk_size: int) -> int:
    """Queue the request's candidates in chunks; returns the number of tasks sent."""
    chunks = [formula_hashes[k : k + chunk_size] for k in range(0, len(formula_hashes), chunk_size)]
    for chunk in chunks:
        app.send_task(EVALUATE, args=[request_id, chunk], queue=QUEUE)
    return len(chunks)
