"""The walk-forward: history through the live pipeline, on a stack of its own.

``alphafactory walkforward`` (app.cli.walkforward_cmd) runs it; the steps:

1. A stack of its own under ``OUT/stack`` (Kafka, Postgres, Redis, Triton and every
   pipeline service, ports shifted by ``--port-offset``), so decades of decisions never
   mix with a production stack's positions, and ``OUT/strategies`` holding the strategy
   with its variants, candidate count and retraining rule written in.
2. The strategy's data stored point-in-time (the bundled sets for a bundled strategy;
   otherwise what ``alphafactory data load`` stored into this stack).
3. For each retraining period [cutoff, next cutoff): a generator version trained on data
   released before the cutoff (the trainer's Celery queue; a version already registered
   is reused), then the period's stored releases and market data replayed to Kafka in
   time order, each trigger waiting until what came before it is stored
   (``producers.replay`` with ``app.wiring.release_settling``). The release and
   market-data handlers, the generation service, the Celery workers and the allocator
   do the rest, as in production: no second backtest code path. The next period's
   training starts once the replay is published, while the pipeline still decides:
   a version is never used for a decision before its cutoff, so the overlap changes no
   decision, only when it is made.
4. Resumable: a period whose last trigger every strategy has decided is skipped; a
   period cut short is replayed again, and every step of the pipeline is idempotent,
   so nothing is decided twice.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import pandas as pd

from alphafactory.settings import Settings
from alphafactory.strategy import Strategy

log = logging.getLogger("alphafactory.walkforward")
TRAINING_TIMEOUT_S = 3600.0
CHUNK_SIZE_LIMIT = 10_000  # [generation] chunk_size's upper bound


class WalkforwardError(RuntimeError):
    """The walk-forward cannot go on; the message says what and where to look."""


@dataclass(frozen=True)
class Plan:
    strategy_id: str
    first: datetime  # the first month's start (UTC)
    last: datetime  # the end of the last month (exclusive)
    out: Path
    variants: tuple[str, ...]
    retrain_every: int  # months; 0: one generator for the whole run
    candidates: int | None = None  # None: the strategy's own
    train_steps: int | None = None
    train_formulas: int | None = None
    warm_steps: int | None = None  # a retraining's fine-tuning from the version before

    @property
    def periods(self) -> list[tuple[datetime, datetime]]:
        from alphafactory.model_versions import training_schedule

        cutoffs = training_schedule(self.first, self.last, self.retrain_every)
        ends = [*cutoffs[1:], self.last]
        return list(zip(cutoffs, ends, strict=True))


def month_bounds(first: str, last: str) -> tuple[datetime, datetime]:
    """(start of month ``first``, start of the month after ``last``), UTC."""
    try:
        start = pd.Timestamp(f"{first}-01", tz="UTC")
        stop = pd.Timestamp(f"{last}-01", tz="UTC") + pd.DateOffset(months=1)
    except ValueError as error:
        raise WalkforwardError(f"--from {first!r} / --to {last!r}: YYYY-MM expected") from error
    if len(first) != 7 or len(last) != 7 or stop <= start:
        raise WalkforwardError(f"--from {first} must be a month (YYYY-MM) before --to {last}")
    return start.to_pydatetime(), stop.to_pydatetime()


def run_settings(settings: Settings, out: Path, port_offset: int) -> Settings:
    """The walk-forward's own stack: its state, strategies and model repository under
    ``out``, the embedded components' ports shifted by ``port_offset``."""

    def shifted(address: str) -> str:
        host, _, port = address.rpartition(":")
        return f"{host}:{int(port) + port_offset}"

    stack = (out / "stack").resolve()
    redis_host, _, rest = settings.redis.url.rpartition(":")
    redis_port, _, db = rest.partition("/")
    return settings.model_copy(
        update={
            "state_dir": stack,
            "kafka": settings.kafka.model_copy(
                update={"bootstrap": shifted(settings.kafka.bootstrap)}
            ),
            "postgres": settings.postgres.model_copy(
                update={"port": settings.postgres.port + port_offset}
            ),
            "redis": settings.redis.model_copy(
                update={"url": f"{redis_host}:{int(redis_port) + port_offset}/{db or 0}"}
            ),
            "triton": settings.triton.model_copy(
                update={
                    "http": shifted(settings.triton.http),
                    "grpc": shifted(settings.triton.grpc),
                    "metrics_port": settings.triton.metrics_port + port_offset,
                    "repository": stack / "models",
                }
            ),
            # its services' metrics endpoints and its dashboard beside the deployment's
            "metrics": settings.metrics.model_copy(
                update={"port": settings.metrics.port + port_offset}
            ),
            "dashboard": settings.dashboard.model_copy(
                update={"port": settings.dashboard.port + port_offset}
            ),
            "pipeline": settings.pipeline.model_copy(
                update={
                    "strategies_dir": (out / "strategies").resolve(),
                    "generator_checkpoint": stack / "generator.pt",
                    "worker_concurrency": max(settings.pipeline.worker_concurrency, 2),
                    # its trainings overlap the decisions on the same cores
                    "trainer_threads": settings.pipeline.trainer_threads or 1,
                }
            ),
        }
    )


def write_strategy(plan: Plan, source: Path) -> Strategy:
    """``OUT/strategies/<id>.toml``: the strategy file with the run's variants, candidate
    count and retraining rule written in (checked as any strategy file is); an
    ML variant (named by its model) adds the model to ``[ml] models``. Another
    candidate count keeps the strategy's number of chunks per request, so the chunks grow
    with it: the work a request spreads over the workers stays as parallel, and the cost
    of each chunk (its task, its statements, its results record) stays a small part of
    it (at 50 formulas a chunk, as much as scoring them)."""
    import tomllib

    import tomli_w

    from alphafactory.strategy import load_strategy
    from alphafactory.variant_names import VariantKind, parse

    own = load_strategy(source).generation
    data = tomllib.loads(source.read_text(encoding="utf-8"))
    data.setdefault("variants", {})["names"] = list(plan.variants)
    # an ML variant allocates the strategy's ML alpha of its model: ask for it
    wanted = [name for name in plan.variants if parse(name).kind is VariantKind.MODEL]
    if wanted:
        ml = data.setdefault("ml", {})
        ml["models"] = list(dict.fromkeys([*ml.get("models", []), *wanted]))
    generation = data.setdefault("generation", {})
    generation["retrain_every_months"] = plan.retrain_every
    if plan.candidates is not None:
        generation["candidates"] = plan.candidates
        chunks = math.ceil(own.candidates / own.chunk_size)
        generation["chunk_size"] = min(CHUNK_SIZE_LIMIT, math.ceil(plan.candidates / chunks))
    folder = plan.out / "strategies"
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{plan.strategy_id}.toml"
    path.write_text(
        "# written by alphafactory walkforward from " + str(source) + "\n" + tomli_w.dumps(data)
    )
    return load_strategy(path)


@dataclass
class Progress:
    """What the command shows while the run goes on."""

    period: int = 0
    periods: int = 0
    phase: str = "starting"
    # wall seconds of this invocation: waiting for trainings, for the period before to be
    # decided (the backlog), replaying (the pipeline deciding as it goes), waiting for the
    # last decisions
    seconds: dict[str, float] = field(
        default_factory=lambda: {
            "training": 0.0,
            "backlog": 0.0,
            "replay": 0.0,
            "last_decisions": 0.0,
        }
    )

    def timed(self, phase: str, started: float) -> None:
        self.seconds[phase] += time.monotonic() - started


def run_periods(
    settings: Settings,
    plan: Plan,
    strategy: Strategy,
    *,
    progress: Progress,
    on_change: Callable[[Progress], None] = lambda _p: None,
) -> None:
    """Steps 3 and 4 of the module doc, against a stack that is up and holds the data."""
    periods = plan.periods
    progress.periods = len(periods)
    last_triggers: list[str] = []
    for k, (cutoff, end) in enumerate(periods, start=1):
        progress.period = k
        events = _period_events(settings, strategy, cutoff, end)
        replayed_before = last_triggers
        last_triggers = last_trigger_ids(strategy, events) or last_triggers
        if last_trigger_ids(strategy, events) and _decided(settings, last_triggers):
            log.info("period %s..%s decided before: skipped", cutoff, end)
            continue
        progress.phase = f"training on data released before {cutoff:%Y-%m-%d}"
        on_change(progress)
        started = time.monotonic()
        ensure_version(settings, plan, strategy, cutoff)
        progress.timed("training", started)
        # Backpressure: one period's decisions queued at most. The next version trains
        # while the period before is decided; replaying further ahead only lengthens the
        # Celery queue (past the reconciler's stall deadline in the full window).
        progress.phase = f"deciding the period before {cutoff:%Y-%m}"
        on_change(progress)
        started = time.monotonic()
        _wait_decided(settings, replayed_before)
        progress.timed("backlog", started)
        progress.phase = f"replaying {cutoff:%Y-%m}..{end:%Y-%m} ({len(events):,} events)"
        on_change(progress)
        started = time.monotonic()
        _replay(settings, events)
        progress.timed("replay", started)
    progress.phase = "waiting for the last decisions"
    on_change(progress)
    started = time.monotonic()
    _wait_decided(settings, last_triggers)
    progress.timed("last_decisions", started)


def last_trigger_ids(strategy: Strategy, events: list) -> list[str]:
    """The trigger ids of the last decisions ``events`` lead to: the last release of a
    trigger series, and with market triggers the last observation date's period."""
    from alphafactory.events import MacroRelease, MarketData

    ids = []
    releases = [
        e for e in events if isinstance(e, MacroRelease) and strategy.triggered_by(e.series_id)
    ]
    if releases:
        ids.append(releases[-1].event_id)
    dates = [e.date for e in events if isinstance(e, MarketData)]
    if strategy.triggers.market and dates:
        ids.append(f"market:{max(dates).isoformat()}")
    return ids


def ensure_version(settings: Settings, plan: Plan, strategy: Strategy, cutoff: datetime):
    """The generator version for ``cutoff``: registered before, or trained now by the
    trainer service (its Celery queue), waited for."""
    from alphafactory.events import TrainingRequest
    from app.wiring import celery_app
    from consumers import tasks
    from storage.db import connect
    from storage.models import version_at_cutoff

    generator = strategy.generation.generator

    def ready():
        with connect(settings.postgres.dsn("app"), autocommit=True) as conn:
            version = version_at_cutoff(conn, generator, cutoff)
        return version if version is not None and version.ready_at is not None else None

    if (found := ready()) is not None:
        return found
    celery_app(settings)
    tasks.send_training(
        TrainingRequest(
            generator=generator,
            strategy_id=strategy.id,
            cutoff=cutoff,
            steps=plan.train_steps,
            warm_steps=plan.warm_steps,
            formulas=plan.train_formulas,
            requested_at=datetime.now(UTC),
        )
    )
    deadline = time.monotonic() + TRAINING_TIMEOUT_S
    while (found := ready()) is None:
        if time.monotonic() > deadline:
            raise WalkforwardError(
                f"no generator version for the cutoff {cutoff:%Y-%m-%d} after "
                f"{TRAINING_TIMEOUT_S:.0f} s: see the trainer's log "
                f"({settings.state_path / 'logs' / 'trainer.log'})"
            )
        time.sleep(1.0)
    return found


def _period_events(settings: Settings, strategy: Strategy, since, until) -> list:
    """The stored events known in [since, until) the strategy's universe can use."""
    from alphafactory.events import MarketData
    from producers.history import stored_history
    from storage.db import connect

    with connect(settings.postgres.dsn("app"), autocommit=True) as conn:
        events = stored_history(conn, since=since, until=until)
    assets = set(strategy.universe.assets)
    if not assets:
        return events
    return [e for e in events if not isinstance(e, MarketData) or e.asset in assets]


def _decided(settings: Settings, trigger_ids: list[str]) -> bool:
    """Whether every strategy of the run has decided on each trigger (allocated, failed
    or skipped)."""
    from app.wiring import strategies_by_id
    from storage.db import connect
    from storage.progress import decided_strategies

    wanted = set(strategies_by_id(settings))
    with connect(settings.postgres.dsn("app"), autocommit=True) as conn:
        return all(wanted <= decided_strategies(conn, t) for t in trigger_ids)


def _wait_decided(settings: Settings, trigger_ids: list[str], timeout_s: float = 1800.0) -> None:
    deadline = time.monotonic() + timeout_s
    while trigger_ids and not _decided(settings, trigger_ids):
        if time.monotonic() > deadline:
            raise WalkforwardError(
                f"no decision on {trigger_ids} after {timeout_s:.0f} s: see the logs under "
                f"{settings.state_path / 'logs'} (generator, worker, allocator)"
            )
        time.sleep(1.0)


def _replay(settings: Settings, events: list) -> None:
    from app.cli.release_cmd import publish_history

    outcome = publish_history(settings, events, {"speed": None}, wait=True)
    if outcome is None:
        raise WalkforwardError("the replay stopped: the broker or a wait failed (see above)")
    published, stop = outcome
    if stop.is_set():
        raise KeyboardInterrupt
    log.info("replayed %d events", published)
