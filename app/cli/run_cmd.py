"""`alphafactory run SERVICE | all` and `alphafactory worker`: the pipeline's long-running
processes (``app.services.SERVICES``; docker-compose runs one container each, `stack up`
starts them locally).

SIGTERM and SIGINT stop a consumer after the record in hand, committed; `run all` runs
every consumer service in one process (threads), for a single machine, and stops them all
when one fails. The Celery worker handles its own signals (warm shutdown: the running
chunk finishes).
"""

from __future__ import annotations

import logging
import threading
from typing import TYPE_CHECKING

from app.services import RUNNERS, consumer_services

if TYPE_CHECKING:
    from alphafactory.settings import Settings

log = logging.getLogger("alphafactory.run")


def register(commands) -> None:
    names = [s.name for s in consumer_services()]
    run = commands.add_parser("run", help="run a pipeline service until SIGTERM")
    run.add_argument(
        "component",
        choices=(*names, "all"),
        metavar="SERVICE",
        help=f"one of {', '.join(names)}, or all",
    )
    run.set_defaults(handler=run_component)
    worker = commands.add_parser("worker", help="run a Celery evaluation worker")
    worker.add_argument("celery_args", nargs="*", help="extra arguments for celery worker")
    worker.set_defaults(handler=run_worker)
    trainer = commands.add_parser("trainer", help="run the Celery generator trainer")
    trainer.add_argument("celery_args", nargs="*", help="extra arguments for celery worker")
    trainer.set_defaults(handler=run_trainer)


def run_component(args, settings: Settings) -> int:
    from app import metrics_endpoint
    from consumers.loop import stop_on_signals

    stop_event = threading.Event()
    stop_on_signals(stop_event)
    if args.component != "all":
        metrics_endpoint.serve(settings, args.component)
        RUNNERS[args.component](settings, stop_event)
        return 0
    # one process, one endpoint: on the port of the first service it runs
    metrics_endpoint.serve(settings, consumer_services()[0].name)
    failures: list[str] = []

    def run_one(name: str) -> None:
        try:
            RUNNERS[name](settings, stop_event)
        except Exception:
            log.exception("%s stopped with an error; stopping the others", name)
            failures.append(name)
            stop_event.set()

    threads = [
        threading.Thread(target=run_one, args=(s.name,), name=s.name) for s in consumer_services()
    ]
    for thread in threads:
        thread.start()
    while any(t.is_alive() for t in threads):
        for thread in threads:
            thread.join(timeout=0.5)  # short joins keep the main thread's signals live
    return 1 if failures else 0


def run_worker(args, settings: Settings) -> int:
    from app import metrics_endpoint
    from app.services import run_worker as worker

    metrics_endpoint.prepare_multiprocess("worker")  # before the tasks import the metrics
    metrics_endpoint.serve(settings, "worker")
    worker(settings, list(args.celery_args))
    return 0


def run_trainer(args, settings: Settings) -> int:
    from app import metrics_endpoint
    from app.services import run_trainer as trainer

    metrics_endpoint.prepare_multiprocess("trainer")
    metrics_endpoint.serve(settings, "trainer")
    trainer(settings, list(args.celery_args))
    return 0
