"""Evaluate one chunk of a request's candidates, point-in-time, and store the results.

What the Celery task ``alphafactory.evaluate`` runs (the task itself stays thin). The
panel is read as of the request's decision time only (``consumers.market_data``), so no
evaluation sees a release or a price published later. One transaction per chunk stores,
for each formula: its evaluation (upsert keyed by formula hash, strategy and decision
time) and its candidate marked evaluated (each a batched statement per chunk), and the
chunk's ``BacktestResults`` in the outbox, which the relay publishes to
``alpha.backtest.results`` after the commit. A chunk delivered twice (a
worker killed after the commit, before the acknowledgement) rewrites the same rows.

:func:`run_chunk` is one delivery of a chunk with its failures classified
(``consumers.failures``): an outage is retried for as long as it lasts, poison a bounded
number of times, and each delivery is counted in Postgres (``storage.deliveries``) so a
chunk that keeps killing its worker is given up. ``fail_chunk`` is the end of the
retries: the formulas are stored as evaluated with an error and not qualified, so the
request still completes, and the failure is kept in ``core.dead_letters`` for an operator.
"""

from __future__ import annotations

import json
import logging
import math
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime

import psycopg
from psycopg_pool import ConnectionPool

from alphafactory import telemetry
from alphafactory.decision import Evaluation, evaluate_formulas
from alphafactory.events import BacktestResults, FormulaResult
from alphafactory.noise import noise_twin, twin_seed
from alphafactory.retry import Backoff
from alphafactory.strategy import Strategy
from consumers.failures import OUTAGE_BACKOFF, is_transient
from consumers.market_data import PanelCache
from storage.dead_letters import record_dead_letter
from storage.deliveries import finish_delivery, start_delivery
from storage.factors import EvaluationRow, upsert_evaluations
from storage.outbox import OutboxEvent, enqueue_many
from storage.requests import RequestRecord, load_request, mark_evaluated, request_formulas

log = logging.getLogger(__name__)
TASK_TOPIC = "celery:alphafactory.evaluate"  # how failed chunks are named in dead letters


class UnknownRequest(LookupError):
    """The chunk names a request or strategy this process does not know."""


@dataclass
class EvaluationContext:
    """What a worker process keeps between chunks."""

    strategies: dict[str, Strategy]
    panels: PanelCache = field(default_factory=PanelCache)


def evaluate_chunk(
    conn: psycopg.Connection, context: EvaluationContext, request_id: str, hashes: list[str]
) -> int:
    """Evaluate and store a chunk; returns how many candidates were pending before."""
    request, strategy = _request_and_strategy(conn, context, request_id)
    formulas = request_formulas(conn, request_id, hashes)
    missing = sorted(set(hashes) - set(formulas))
    if missing:
        raise UnknownRequest(f"request {request_id!r} has no candidates {missing[:3]}")
    panel = context.panels.get(conn, strategy, request.decision_time, request.trigger_event_id)
    results = evaluate_formulas(panel, strategy, list(formulas.values()))
    noise: list[Evaluation | None] = [None] * len(results)
    if strategy.alpha.noise_twin:
        twin = noise_twin(panel, twin_seed(request_id))
        noise = list(evaluate_formulas(twin, strategy, list(formulas.values())))
    outcomes = [
        _Outcome(formula_hash, result.formula, _metrics(result), result.qualified, on_noise)
        for formula_hash, result, on_noise in zip(formulas, results, noise, strict=True)
    ]
    with conn.transaction():
        _store(conn, request, outcomes)
        pending = mark_evaluated(conn, request_id, list(formulas))
    alphas = sum(1 for outcome in outcomes if outcome.qualified)
    telemetry.EVALUATIONS.labels("alpha").inc(alphas)
    telemetry.EVALUATIONS.labels("rejected").inc(len(outcomes) - alphas)
    return pending


def fail_chunk(
    conn: psycopg.Connection, request_id: str, hashes: list[str], error: BaseException
) -> None:
    """Give up on a chunk: keep the failure and let the request complete without it."""
    request = load_request(conn, request_id)
    with conn.transaction():
        record_dead_letter(
            conn,
            topic=TASK_TOPIC,
            partition=None,
            offset=None,
            key=request_id,
            payload=json.dumps({"request_id": request_id, "formula_hashes": hashes}),
            error=f"{type(error).__name__}: {error}",
        )
        if request is None:
            return
        formulas = request_formulas(conn, request_id, hashes)
        failure = {"error": f"{type(error).__name__}: {error}"[:500]}
        _store(conn, request, [_Outcome(h, f, failure, False) for h, f in formulas.items()])
        mark_evaluated(conn, request_id, list(formulas))
    telemetry.EVALUATIONS.labels("failed").inc(len(hashes))
    telemetry.DEAD_LETTERS.labels(TASK_TOPIC, type(error).__name__).inc()
    log.error("request %s: %d formula(s) failed for good: %s", request_id, len(hashes), error)


def _request_and_strategy(conn, context, request_id) -> tuple[RequestRecord, Strategy]:
    request = load_request(conn, request_id)
    if request is None:
        raise UnknownRequest(f"request {request_id!r} is not registered")
    strategy = context.strategies.get(request.strategy_id)
    if strategy is None:
        raise UnknownRequest(
            f"request {request_id!r} is for strategy {request.strategy_id!r}, which this "
            f"worker does not have (known: {sorted(context.strategies)})"
        )
    return request, strategy


def _noise_t(noise: Evaluation | None) -> float | None:
    if noise is None or noise.metrics is None:
        return None
    return float(noise.metrics.hac_tstat)


def _metrics(result: Evaluation) -> dict:
    if result.metrics is None:
        return {"error": "not a valid formula on the strategy's data"}
    return result.metrics.to_dict()


@dataclass(frozen=True)
class _Outcome:
    """One candidate's evaluation, and on the decision's noise twin (None: not scored)."""

    formula_hash: str
    formula: str
    metrics: dict
    qualified: bool
    on_noise: Evaluation | None = None


def _store(conn, request: RequestRecord, outcomes: list[_Outcome]) -> None:
    """Each candidate's evaluation, and the chunk's ``BacktestResults`` in the outbox, one
    statement for each (not two per formula: the round trips were most of a chunk's
    time)."""
    rows, results = [], []
    for outcome in outcomes:
        formula_hash, formula = outcome.formula_hash, outcome.formula
        metrics, qualified, noise = outcome.metrics, outcome.qualified, outcome.on_noise
        rows.append(
            EvaluationRow(
                formula_hash=formula_hash,
                strategy_id=request.strategy_id,
                as_of=request.as_of,
                decision_time=request.decision_time,
                metrics=metrics,
                is_alpha=qualified,
                noise_hac_tstat=_noise_t(noise),
                noise_qualified=None if noise is None else noise.qualified,
            )
        )
        numbers = {
            k: (float(v) if isinstance(v, int | float) and math.isfinite(v) else None)
            for k, v in metrics.items()
            if isinstance(v, int | float) or v is None
        }
        results.append(
            FormulaResult(
                formula_hash=formula_hash, formula=formula, qualified=qualified, metrics=numbers
            )
        )
    upsert_evaluations(conn, rows)
    announced = BacktestResults.of_chunk(
        results,
        request_id=request.request_id,
        strategy_id=request.strategy_id,
        as_of=request.as_of,
        evaluated_at=datetime.now(UTC),
    )
    enqueue_many(conn, [OutboxEvent.of(event) for event in announced])


# Between a poison chunk's attempts: 0-2 s, 0-4 s, 0-8 s... (full jitter)
POISON_BACKOFF = Backoff(first_s=2.0, max_s=60.0)


class WorkerKilled(RuntimeError):
    """A chunk whose deliveries keep killing their worker (poison for the chunk)."""


@dataclass(frozen=True)
class ChunkDelivery:
    task_id: str
    request_id: str
    formula_hashes: list[str]
    poison_attempts: int = 0  # earlier attempts that failed with poison
    retried: int = 0  # earlier attempts in all (outages included): the outage backoff


@dataclass(frozen=True)
class ChunkOutcome:
    evaluated: int = 0
    retry: ChunkDelivery | None = None  # deliver this again after ``retry_in_s``
    retry_in_s: float = 0.0
    error: BaseException | None = None


def run_chunk(
    pool: ConnectionPool,
    context: EvaluationContext,
    delivery: ChunkDelivery,
    *,
    retries: int,
    max_deliveries: int,
) -> ChunkOutcome:
    """One delivery of a chunk, its failures per ``consumers.failures``: an outage
    (Postgres, Redis) is retried with backoff for as long as it lasts, never failing an
    evaluation; poison gets ``retries`` more attempts, then ``fail_chunk`` records it; a
    chunk that killed its worker ``max_deliveries`` times already is given up at once."""
    try:
        with telemetry.EVALUATION_CHUNK_SECONDS.time():
            return ChunkOutcome(evaluated=_deliver(pool, context, delivery, max_deliveries))
    except Exception as error:
        if is_transient(error):
            log.warning(
                "request %s: a chunk waits for the infrastructure: %s", delivery.request_id, error
            )
            delay = OUTAGE_BACKOFF.delay(delivery.retried)
            return ChunkOutcome(retry=delivery, retry_in_s=delay, error=error)
        if delivery.poison_attempts >= retries:
            with pool.connection() as conn:
                fail_chunk(conn, delivery.request_id, delivery.formula_hashes, error)
            return ChunkOutcome()
        log.warning(
            "request %s: chunk attempt %d of %d failed: %s",
            delivery.request_id,
            delivery.poison_attempts + 1,
            retries + 1,
            error,
        )
        next_try = replace(delivery, poison_attempts=delivery.poison_attempts + 1)
        delay = POISON_BACKOFF.delay(delivery.poison_attempts)
        return ChunkOutcome(retry=next_try, retry_in_s=delay, error=error)


def _deliver(pool, context, delivery: ChunkDelivery, max_deliveries: int) -> int:
    with pool.connection() as conn:
        unfinished = start_delivery(conn, task_id=delivery.task_id, request_id=delivery.request_id)
        try:
            if unfinished > max_deliveries:
                killed = WorkerKilled(
                    f"the chunk was delivered {unfinished - 1} times without finishing: it "
                    "kills its worker (memory, a crash)"
                )
                fail_chunk(conn, delivery.request_id, delivery.formula_hashes, killed)
                return 0
            return evaluate_chunk(conn, context, delivery.request_id, delivery.formula_hashes)
        finally:
            finish_delivery(conn, task_id=delivery.task_id)
