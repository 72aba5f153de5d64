"""Every pipeline service, declared once, and how each is wired from the settings.

:data:`SERVICES` is the only list of the long-running services: ``alphafactory stack up``
starts each as a local process, ``alphafactory run all`` runs the consumers among them in
one process, and tests/test_compose.py holds docker-compose.yml to it (names, commands,
the infrastructure each waits for, which ones may be scaled out).

Each ``run_*`` function builds one service's resources (pools, the producer, strategies,
the generator) from the settings, runs it until ``stop_event`` is set, and closes what it
opened. Errors follow one rule (``consumers.failures``): an outage of the infrastructure
(Postgres, Kafka, Redis or Triton down) is waited out in process, the record in hand kept;
a record a retry cannot cure is dead-lettered after bounded attempts and the service goes
on. SIGTERM sets ``stop_event``: the work in hand is finished and committed, the rest
handed back (tests/pipeline/test_sigterm.py). Heavy modules are imported inside the
functions: ``alphafactory --help`` stays fast.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta
from typing import TYPE_CHECKING

from app import wiring

if TYPE_CHECKING:
    from alphafactory.settings import Settings

log = logging.getLogger("alphafactory.services")
INFRASTRUCTURE = ("kafka", "postgres", "redis", "triton")


@dataclass(frozen=True)
class Service:
    name: str
    command: tuple[str, ...]  # the `alphafactory` arguments that run it
    needs: tuple[str, ...]  # the infrastructure it talks to (a subset of INFRASTRUCTURE)
    scales_out: bool  # more instances share the work (Kafka partitions, the Celery queue)
    role: str


SERVICES: tuple[Service, ...] = (
    Service(
        "release-handler",
        ("run", "release-handler"),
        ("kafka", "postgres"),
        True,
        "macro.releases -> point-in-time store -> generation requests",
    ),
    Service(
        "market-data",
        ("run", "market-data"),
        ("kafka", "postgres"),
        True,
        "market.data -> point-in-time store -> market-triggered generation requests",
    ),
    Service(
        "generator",
        ("run", "generator"),
        ("kafka", "postgres", "redis", "triton"),
        True,
        "generation requests -> batched next-action calls -> Celery chunks",
    ),
    Service(
        "allocator",
        ("run", "allocator"),
        ("kafka", "postgres"),
        True,
        "backtest results -> select, combine, allocate -> target positions",
    ),
    # one relay keeps each key's events in order; several would interleave batches
    Service("relay", ("run", "relay"), ("kafka", "postgres"), False, "outbox -> Kafka"),
    Service(
        "scheduler",
        ("run", "scheduler"),
        ("postgres",),
        False,
        "scheduled generation requests -> outbox",
    ),
    # one pass at a time is enough; a second would only race the first (harmlessly)
    Service(
        "reconciler",
        ("run", "reconciler"),
        ("kafka", "postgres", "redis"),
        False,
        "re-drives from Postgres what a crash or a lost log left unfinished",
    ),
    Service(
        "worker",
        ("worker",),
        ("postgres", "redis"),
        True,
        "Celery: evaluate candidates point-in-time -> metrics in Postgres",
    ),
    # one model at a time: a training uses every core it is given
    Service(
        "trainer",
        ("trainer",),
        ("postgres", "redis", "triton"),
        False,
        "Celery train queue: retrain the generator point-in-time -> a new Triton version",
    ),
    # stateless, but one per published port: more go behind a load balancer
    Service(
        "dashboard",
        ("dashboard",),
        ("kafka", "postgres"),
        False,
        "read-only web pages: health, the timeline, positions, alphas, performance, failures",
    ),
)


def service(name: str) -> Service:
    for declared in SERVICES:
        if declared.name == name:
            return declared
    raise KeyError(f"no service {name!r}; expected one of {[s.name for s in SERVICES]}")


def metrics_port(settings: Settings, name: str) -> int:
    """The port of ``name``'s Prometheus endpoint: its place in :data:`SERVICES` after
    ``metrics.port``."""
    return settings.metrics.port + SERVICES.index(service(name))


def metrics_url(settings: Settings, name: str) -> str:
    from alphafactory.settings import url_host

    return f"http://{url_host(settings.metrics.host)}:{metrics_port(settings, name)}/metrics"


def dashboard_url(settings: Settings) -> str:
    from alphafactory.settings import url_host

    return f"http://{url_host(settings.dashboard.host)}:{settings.dashboard.port}/"


def consumer_services() -> tuple[Service, ...]:
    """The services ``alphafactory run NAME`` runs (the Celery workers have their own
    commands)."""
    return tuple(s for s in SERVICES if s.command[0] == "run")


def _pool(settings: Settings, name: str):
    from storage.db import open_pool

    return open_pool(settings.postgres.dsn("app"), min_size=1, max_size=2, name=name)


def _consume(settings: Settings, stop_event, *, pool, group: str, topic: str, handler, **options):
    from alphafactory.scoring import set_kernel_threads
    from consumers.dead_letters import dead_lettering_loop
    from messaging.publisher import KafkaPublisher

    set_kernel_threads(settings.pipeline.kernel_threads)  # the allocation's signals
    with KafkaPublisher.open(settings.kafka) as publisher:
        loop = dead_lettering_loop(
            settings.kafka,
            publisher=publisher,
            pool=pool,
            group_id=group,
            topics=[topic],
            handler=handler,
            record_failure=handler.record_failure,
            stop_event=stop_event,
            **options,
        )
        return loop.run()


def _run_feed(settings: Settings, stop_event, *, name: str, topic: str, strategies, make_loop):
    """A service that stores an outside feed and turns it into generation requests (the
    release and market-data handlers): its topics, pool, producer and consume loop."""
    from alphafactory.topics import DEAD_LETTERS, GENERATION_REQUESTS
    from messaging.admin import ensure_topics
    from messaging.publisher import KafkaPublisher

    ensure_topics(settings.kafka, [topic, GENERATION_REQUESTS, DEAD_LETTERS])
    pool = _pool(settings, name)
    try:
        with KafkaPublisher.open(settings.kafka) as publisher:
            loop = make_loop(
                settings.kafka,
                pool=pool,
                publisher=publisher,
                strategies=strategies,
                stop_event=stop_event,
                max_skew=timedelta(seconds=settings.pipeline.max_clock_skew_s),
            )
            return loop.run()
    finally:
        pool.close()


def run_release_handler(settings: Settings, stop_event: threading.Event):
    from alphafactory.topics import MACRO_RELEASES
    from consumers.release_handler import release_loop

    strategies = list(wiring.strategies_by_id(settings).values())
    triggers = sorted({series for s in strategies for series in s.triggers.series})
    log.info("release handler: %d active strategies, triggered by %s", len(strategies), triggers)
    return _run_feed(
        settings,
        stop_event,
        name="release-handler",
        topic=MACRO_RELEASES,
        strategies=strategies,
        make_loop=release_loop,
    )


def run_market_data(settings: Settings, stop_event: threading.Event):
    from alphafactory.topics import MARKET_DATA
    from consumers.market_data_handler import market_data_loop

    strategies = [s for s in wiring.strategies_by_id(settings).values() if s.triggers.market]
    log.info("market-data handler: triggers %s", [s.id for s in strategies] or "no strategy")
    return _run_feed(
        settings,
        stop_event,
        name="market-data",
        topic=MARKET_DATA,
        strategies=strategies,
        make_loop=market_data_loop,
    )


def run_allocator(settings: Settings, stop_event: threading.Event, **loop_options):
    from alphafactory.topics import ALLOCATOR_GROUP, BACKTEST_RESULTS
    from consumers.allocation import AllocationContext, AllocationHandler

    pool = _pool(settings, "allocator")
    try:
        handler = AllocationHandler(pool, AllocationContext(wiring.strategies_by_id(settings)))
        return _consume(
            settings,
            stop_event,
            pool=pool,
            group=ALLOCATOR_GROUP,
            topic=BACKTEST_RESULTS,
            handler=handler,
            batch_handler=handler.handle_batch,
            **loop_options,
        )
    finally:
        pool.close()


def run_generator(settings: Settings, stop_event: threading.Event, **loop_options):
    from alphafactory.topics import GENERATION_REQUESTS, GENERATOR_GROUP
    from consumers.generation import GenerationHandler

    if not wiring.wait_for_a_generator(settings, stop_event):  # stopped while waiting
        return None
    pool = _pool(settings, "generator")
    try:
        handler = GenerationHandler(pool, wiring.generation_context(settings, stop_event))
        # one request at a time between commits: each can take minutes
        return _consume(
            settings,
            stop_event,
            pool=pool,
            group=GENERATOR_GROUP,
            topic=GENERATION_REQUESTS,
            handler=handler,
            batch_size=1,
            **loop_options,
        )
    finally:
        pool.close()


def run_relay(settings: Settings, stop_event: threading.Event):
    from consumers.relay import run_relay as relay
    from messaging.publisher import KafkaPublisher

    hours = settings.pipeline.outbox_retention_hours
    pool = _pool(settings, "relay")
    try:
        with KafkaPublisher.open(settings.kafka) as publisher:
            return relay(
                pool,
                publisher,
                stop_event=stop_event,
                idle_s=settings.pipeline.poll_interval_s,
                retention=timedelta(hours=hours) if hours > 0 else None,
            )
    finally:
        pool.close()


def run_scheduler(settings: Settings, stop_event: threading.Event):
    from consumers.failures import Resilience
    from consumers.market_data_handler import sweep_stale_periods
    from producers.scheduler import run_scheduler as scheduler

    strategies = list(wiring.strategies_by_id(settings).values())
    pool = _pool(settings, "scheduler")
    try:
        return scheduler(
            pool,
            strategies,
            stop_event=stop_event,
            wait_out_outages=Resilience("scheduler", logger=log).call,
            sweeps=(sweep_stale_periods,),
        )
    finally:
        pool.close()


def run_reconciler(settings: Settings, stop_event: threading.Event):
    from alphafactory.scoring import set_kernel_threads
    from alphafactory.topics import CONSUMER_GROUPS
    from consumers import tasks
    from consumers.pipeline_sampler import PipelineSampler
    from consumers.reconciler import Reconciler, ReconcilerRules
    from consumers.reconciler import run_reconciler as reconcile
    from consumers.relay import relay_once
    from messaging.admin import consumer_lag
    from messaging.publisher import KafkaPublisher

    wiring.celery_app(settings)
    set_kernel_threads(settings.pipeline.kernel_threads)  # it allocates what was left
    pipeline = settings.pipeline
    rules = ReconcilerRules(
        grace=timedelta(seconds=pipeline.reconcile_grace_s),
        stall=timedelta(seconds=pipeline.reconcile_stall_s),
        lookback=timedelta(hours=pipeline.reconcile_lookback_hours),
        redrive_every=timedelta(seconds=pipeline.reconcile_stall_s),
    )
    pool = _pool(settings, "reconciler")
    try:
        with KafkaPublisher.open(settings.kafka) as publisher:

            def relay() -> int:
                relayed = 0
                with pool.connection() as conn:
                    while count := relay_once(conn, publisher):
                        relayed += count
                return relayed

            strategies = wiring.strategies_by_id(settings)
            reconciler = Reconciler(pool, strategies, tasks.send_chunks, relay, rules)
            sample = PipelineSampler(pool, lambda: consumer_lag(settings.kafka, CONSUMER_GROUPS))
            return reconcile(
                reconciler, stop_event=stop_event, every_s=pipeline.reconcile_every_s, sample=sample
            )
    finally:
        pool.close()


def run_worker(settings: Settings, extra_args: list[str] = ()) -> None:
    """A Celery worker on the evaluation queue (blocks; Celery handles SIGTERM: warm
    shutdown, the running chunk finishes)."""
    import torch  # noqa: F401  imported once here: the forked children inherit it

    from consumers import tasks

    celery = wiring.celery_app(settings)
    tasks.serve_with(lambda: wiring.open_worker_resources(settings))
    celery.worker_main(
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


def run_trainer(settings: Settings, extra_args: list[str] = ()) -> None:
    """A Celery worker on the train queue, one training at a time (blocks; a warm
    shutdown lets the training in hand finish, a killed one is redelivered)."""
    from app.trainer import handle_training_request
    from consumers import tasks

    celery = wiring.celery_app(settings)
    tasks.train_with(lambda payload: handle_training_request(settings, payload))
    celery.worker_main(
        [
            "worker",
            f"--loglevel={settings.log_level}",
            # prefork, one child: the main process still answers the healthcheck's ping
            # while a training runs
            "--pool=prefork",
            "--concurrency=1",
            "-Q",
            tasks.TRAIN_QUEUE,
            "--hostname=alphafactory-trainer@%h",
            "--without-gossip",
            "--without-mingle",
            *extra_args,
        ]
    )


RUNNERS: dict[str, Callable[[Settings, threading.Event], object]] = {
    "release-handler": run_release_handler,
    "market-data": run_market_data,
    "generator": run_generator,
    "allocator": run_allocator,
    "relay": run_relay,
    "scheduler": run_scheduler,
    "reconciler": run_reconciler,
}
