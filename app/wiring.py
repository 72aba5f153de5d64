"""The per-process resources the services are built from: the Celery app, a worker
process's pool and strategies, the generator and its policy. Opened here, in lifecycle
hooks and ``run_*`` functions, never at import."""

from __future__ import annotations

import functools
import logging
import threading
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, NamedTuple

if TYPE_CHECKING:
    from alphafactory.events import MacroRelease
    from alphafactory.settings import Settings


log = logging.getLogger("alphafactory.services")


def celery_app(settings: Settings):
    """The Celery app, configured for this deployment's Redis (senders and workers)."""
    from consumers import tasks

    return tasks.configure(
        broker_url=settings.redis.url,
        visibility_timeout_s=settings.pipeline.visibility_timeout_s,
    )


def open_worker_resources(settings: Settings):
    """What one Celery worker process opens after the fork (``tasks.serve_with``)."""
    import torch

    from alphafactory.scoring import set_kernel_threads
    from consumers.evaluation import EvaluationContext
    from consumers.tasks import WorkerResources
    from storage.db import open_pool

    torch.set_num_threads(1)  # DESIGN.md: one thread per process on 2 cores
    set_kernel_threads(settings.pipeline.kernel_threads)
    pool = open_pool(
        settings.postgres.dsn("app"), min_size=1, max_size=2, name="alphafactory-worker"
    )
    return WorkerResources(
        pool=pool,
        context=EvaluationContext(strategies_by_id(settings)),
        retries=settings.pipeline.task_retries,
        max_deliveries=settings.pipeline.task_max_deliveries,
    )


def wait_for_a_generator(settings: Settings, stop_event: threading.Event) -> bool:
    """Wait until a generator exists: the default checkpoint file or a registered
    version (an always-on service waits for its model: `alphafactory init`, the
    trainer); False if stopped first."""
    import psycopg

    from storage.db import connect
    from storage.models import list_versions

    path = settings.pipeline.generator_checkpoint

    def exists() -> bool:
        if path.exists():
            return True
        try:
            with connect(settings.postgres.dsn("app"), autocommit=True) as conn:
                return any(v.ready_at for v in list_versions(conn))
        except psycopg.Error as error:  # Postgres restarting: asked again next round
            log.info("generator registry not readable yet: %s", error)
            return False

    if not exists():
        log.warning("waiting for a generator: a checkpoint at %s or a trained version", path)
        while not exists():
            if stop_event.wait(settings.pipeline.poll_interval_s * 4):
                return False
    return True


def generation_context(settings: Settings, stop_event: threading.Event):
    """The generation service's context: strategies, the registry's generator versions
    (each served by Triton, its checkpoint in process as fallback per
    ``triton.fallback``), the checkpoint files of the default and the named generators
    the active strategies use for those with no version, Celery dispatch and training."""
    import torch

    from consumers import tasks
    from consumers.allocation import AllocationContext
    from consumers.generation import GenerationContext
    from consumers.generators import VersionedGenerators
    from inference.training import load_checkpoint

    torch.set_num_threads(1)
    celery_app(settings)
    strategies = strategies_by_id(settings)
    path = settings.pipeline.generator_checkpoint
    default = served_generator(settings, load_checkpoint(path)) if path.exists() else None
    return GenerationContext(
        strategies=strategies,
        policy=default.policy if default else None,
        vocab=default.vocab if default else None,
        gamma=default.gamma if default else 1.0,
        dispatch=tasks.send_chunks,
        allocation=AllocationContext(strategies),
        stop_event=stop_event,
        sample_batch=settings.triton.sample_batch,
        trained_until=default.trained_until if default else None,
        generators=named_generators(settings, strategies.values()),
        versions=VersionedGenerators(
            load=functools.partial(version_generator, settings),
            request_training=tasks.send_training,
        ),
    )


def version_generator(settings: Settings, version):
    """One registered version as Triton serves it, its checkpoint in process as fallback."""
    from inference.training import load_checkpoint

    checkpoint = load_checkpoint(version.checkpoint)
    return served_generator(settings, checkpoint, version.generator, version=version.version)


def served_generator(settings: Settings, checkpoint, name: str = "", version: int | None = None):
    """Generator ``name`` (its ``version``, when given) as Triton serves it, the
    checkpoint in process as fallback."""
    from app.generator_setup import served_name
    from consumers.generators import Generator
    from inference.pipeline import triton_policy
    from inference.sampling import InProcessPolicy

    triton = settings.triton.model_copy(update={"generator_model": served_name(settings, name)})
    policy = triton_policy(
        triton,
        InProcessPolicy(checkpoint.model),
        trained_until=checkpoint.trained_until,
        version=version,
    )
    gamma = float(checkpoint.reward.get("gamma", 1.0))
    return Generator(policy, checkpoint.vocab, gamma, checkpoint.trained_until)


def named_generators(settings: Settings, strategies) -> dict:
    """The strategies' own generators (``generation.generator``) whose checkpoints exist;
    a strategy whose generator is missing has its requests fail, naming it."""
    from app.generator_setup import checkpoint_path
    from inference.training import load_checkpoint

    found = {}
    for name in sorted({s.generation.generator for s in strategies} - {""}):
        path = checkpoint_path(settings, name)
        if path.exists():
            found[name] = served_generator(settings, load_checkpoint(path), name)
        else:
            log.warning(
                "generator %r has no checkpoint at %s: its strategies cannot run", name, path
            )
    return found


def strategies_by_id(settings: Settings) -> dict:
    """The deployment's active strategies (``pipeline.strategies_dir``, or the bundled)
    and their variants that generate candidates of their own (``<id>@random``...): every
    service treats those as strategies; the other variants are allocated with their
    strategy's requests."""
    from alphafactory.strategy import active_strategies
    from alphafactory.variants import generator_variants

    found = {}
    for strategy in active_strategies(settings.pipeline.strategies_dir):
        for one in (strategy, *generator_variants(strategy)):
            found[one.id] = one
    return found


SETTLE_TIMEOUT_S = 300.0


class ReplaySettling(NamedTuple):
    """The waits of a deterministic replay (``producers.replay.replay``)."""

    settle: Callable[[list[str]], None]  # until these releases and market data are stored
    is_trigger: Callable[[MacroRelease], bool]  # a trigger series of an active strategy
    decided: Callable[[list[MacroRelease]], None]  # until their strategies decided on these


def _wait_until(settings: Settings, done: Callable[[object], bool], what: str, log: str) -> None:
    """Poll ``done(conn)`` until it holds; after ``SETTLE_TIMEOUT_S`` a TimeoutError says
    ``what`` did not happen and which service's log to read."""
    import psycopg

    from storage.db import connect

    deadline = time.monotonic() + SETTLE_TIMEOUT_S
    logs = settings.state_path / "logs"

    def give_up_after_the_deadline() -> None:
        if time.monotonic() > deadline:
            raise TimeoutError(
                f"{what} within {SETTLE_TIMEOUT_S:.0f} s: is the {log} running? "
                f"(its log: {logs / f'{log}.log'})"
            )

    while True:
        try:
            with connect(settings.postgres.dsn("app"), autocommit=True) as conn:
                while not done(conn):
                    give_up_after_the_deadline()
                    time.sleep(0.1)
            return
        except psycopg.OperationalError:  # Postgres restarting: waited out, as by services
            give_up_after_the_deadline()
            time.sleep(0.5)


def release_settling(settings: Settings) -> ReplaySettling:
    """The waits of a replay against this stack's Postgres (each gives up after
    ``SETTLE_TIMEOUT_S``, naming the service to look at)."""

    from consumers.market_data_handler import CONSUMER as MARKET_CONSUMER
    from storage.ledger import count_processed
    from storage.macro import count_releases
    from storage.progress import decided_strategies

    strategies = list(strategies_by_id(settings).values())
    series = {s for strategy in strategies for s in strategy.triggers.series}
    triggered = {s: {x.id for x in strategies if x.triggered_by(s)} for s in series}
    wait = functools.partial(_wait_until, settings)

    def settle(event_ids: list[str]) -> None:
        def stored(conn) -> bool:
            releases = count_releases(conn, event_ids=event_ids)
            market = count_processed(conn, consumer=MARKET_CONSUMER, event_ids=event_ids)
            return releases + market >= len(set(event_ids))

        wait(
            stored,
            f"{len(event_ids)} published events were not all stored (market data: by the "
            "market-data service)",
            "release-handler",
        )

    def decided(triggers: list[MacroRelease]) -> None:
        def all_decided(conn) -> bool:
            return all(
                triggered[t.series_id] <= decided_strategies(conn, t.event_id) for t in triggers
            )

        wait(all_decided, f"no decision on {[t.event_id for t in triggers]}", "allocator")

    def is_trigger(event) -> bool:  # market data triggers inside its handler, not here
        return getattr(event, "series_id", None) in triggered

    return ReplaySettling(settle, is_trigger, decided)
