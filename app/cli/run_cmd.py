"""`alphafactory run COMPONENT` and `alphafactory worker`: the pipeline's long-running
processes (docker-compose runs one per service; `stack up` starts them locally).

SIGTERM and SIGINT stop a consumer after the record in hand, committed; `run all` runs
every consumer in one process (threads), for a single machine. The Celery worker handles
its own signals (warm shutdown: the running chunk finishes).
"""

from __future__ import annotations

import logging
import threading
from pathlib import Path

from alphafactory.settings import Settings

COMPONENTS = ("release-handler", "generator", "allocator", "relay", "scheduler")
log = logging.getLogger("alphafactory.run")


def register(commands) -> None:
    run = commands.add_parser("run", help="run a pipeline service until SIGTERM")
    run.add_argument("component", choices=(*COMPONENTS, "all"))
    run.set_defaults(handler=run_component)
    worker = commands.add_parser("worker", help="run a Celery evaluation worker")
    worker.add_argument("celery_args", nargs="*", help="extra arguments for celery worker")
    worker.set_defaults(handler=run_worker)


def _target(component: str, settings: Settings):
    from consumers import runtime

    if component == "release-handler":
        from consumers.release_handler import run_release_handler

        return run_release_handler
    if component == "relay":
        from consumers.relay import run_relay

        return run_relay
    if component == "scheduler":
        return _run_scheduler
    return {"generator": runtime.run_generator, "allocator": runtime.run_allocator}[component]


def _run_scheduler(settings: Settings, stop_event: threading.Event) -> int:
    from alphafactory.strategy import active_strategies
    from producers.publisher import KafkaPublisher
    from producers.scheduler import run_scheduler

    strategies = active_strategies(settings.pipeline.strategies_dir)
    with KafkaPublisher.open(settings.kafka) as publisher:
        return run_scheduler(
            publisher,
            strategies,
            stop_event=stop_event,
            state_path=Path(settings.state_path) / "scheduler.json",
        )


def run_component(args, settings: Settings) -> int:
    from consumers.loop import stop_on_signals

    stop_event = threading.Event()
    stop_on_signals(stop_event)
    names = COMPONENTS if args.component == "all" else (args.component,)
    if len(names) == 1:
        _target(names[0], settings)(settings, stop_event)
        return 0
    failures: list[str] = []

    def run_one(name: str) -> None:
        try:
            _target(name, settings)(settings, stop_event)
        except Exception:
            log.exception("%s stopped with an error; stopping the others", name)
            failures.append(name)
            stop_event.set()

    threads = [threading.Thread(target=run_one, args=(n,), name=n) for n in names]
    for thread in threads:
        thread.start()
    while any(t.is_alive() for t in threads):
        for thread in threads:
            thread.join(timeout=0.5)  # short joins keep the main thread's signals live
    return 1 if failures else 0


def run_worker(args, settings: Settings) -> int:
    from consumers.runtime import run_worker as worker

    worker(settings, list(args.celery_args))
    return 0
