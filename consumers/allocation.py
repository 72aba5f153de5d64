"""Allocate once a request's evaluations are complete: select, combine, write positions.

Called by the allocator for every ``BacktestResults`` it consumes (and by the generation
service for a request with no new candidates). It does nothing until every candidate of
the request is evaluated, then, under a transaction-scoped advisory lock on the strategy
(so concurrent allocators, duplicates or two triggers in flight, serialise): the
request's admitted alphas (``alphafactory.admission``: of every candidate it scored, those
meeting the alpha definition and surviving the multiple-testing control over all of them;
largest |HAC t-stat| first), ``alphafactory.decision.allocate`` on the panel as of the
decision time, and in ONE transaction the admission (trials, qualified, admitted), the
alpha pool, the allocation (with its decision time), its positions and a
``Rebalance`` in the outbox. ``core.allocations`` is unique on (strategy, trigger), so a
trigger is allocated exactly once however many results, duplicates and allocators ask.

The strategy's variants that share its request (``alphafactory.variants``: other pool
sizes, the plain benchmarks) are allocated in the same transaction from the same
alphas and panel, each under its own strategy id ``<id>@<variant>``, with its own pool,
positions and ``Rebalance``.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime

import numpy as np
import pandas as pd
import psycopg
from kafka.consumer.fetcher import ConsumerRecord
from psycopg_pool import ConnectionPool

from alphafactory import telemetry
from alphafactory.admission import admit
from alphafactory.decision import alpha_signals
from alphafactory.events import BacktestResults, EventError, Rebalance, decode
from alphafactory.formula import canonical, formula_hash
from alphafactory.panel import Panel
from alphafactory.pool import NO_RECORD, Member
from alphafactory.strategy import Strategy
from alphafactory.variants import allocation_variants, decide
from consumers.failures import is_transient
from consumers.market_data import PanelCache
from storage.admissions import AdmissionRecord, record_admission
from storage.allocations import (
    allocation_exists,
    allocation_id_for,
    held_before,
    lock_strategy,
    write_allocation,
)
from storage.factors import evaluations, replace_alpha_pool, upsert_factors
from storage.outbox import OutboxEvent
from storage.pool_members import active_members, record_pool_changes
from storage.requests import (
    RequestRecord,
    load_request,
    open_requests,
    record_failure,
    request_complete,
)

log = logging.getLogger(__name__)


@dataclass
class AllocationContext:
    strategies: dict[str, Strategy]
    panels: PanelCache = field(default_factory=PanelCache)


def allocate_request(
    conn: psycopg.Connection, context: AllocationContext, request_id: str
) -> str | None:
    """The allocation id once the request is allocated (now or before); None while its
    evaluations are incomplete, while a request of its strategy decided earlier is still
    open (it is allocated after that one), or when the request is unknown here.

    A strategy's decisions are taken in decision order, whatever order their evaluations
    finish in: each reads the pool the decisions before it left (``active_members``), so
    a later decision allocated first would see a pool without the earlier one's entries
    and retirements, and its weights would depend on timing. Once this request is
    allocated, the strategy's later requests that were waiting for it are allocated too."""
    if not request_complete(conn, request_id):
        return None
    request = load_request(conn, request_id)
    if request.failed_at is not None:  # finished with a recorded failure instead
        return None
    strategy = context.strategies.get(request.strategy_id)
    if strategy is None:
        log.warning("request %s is for unknown strategy %r", request_id, request.strategy_id)
        return None
    allocation_id = _allocate_in_order(conn, context, strategy, request)
    if allocation_id is not None:
        allocate_waiting(conn, context, strategy.id, after=request.decision_time)
    return allocation_id


def allocate_waiting(
    conn: psycopg.Connection, context: AllocationContext, strategy_id: str, *, after: datetime
) -> int:
    """Allocate, in decision order, the strategy's open requests decided after ``after``
    that are complete, up to the first that is not; returns how many. Called once a
    decision before them is allocated or has failed. A request that cannot be allocated
    ends failed here, with its reason (the caller's own request is already finished)."""
    strategy = context.strategies.get(strategy_id)
    done = 0
    for request_id in open_requests(conn, strategy_id=strategy_id, after=after):
        if strategy is None or not request_complete(conn, request_id):
            break
        try:
            allocated = _allocate_in_order(conn, context, strategy, load_request(conn, request_id))
        except Exception as error:
            if is_transient(error):
                raise
            log.exception("request %s cannot be allocated", request_id)
            record_failure(conn, request_id, f"{type(error).__name__}: {error}")
            continue
        if allocated is None:
            break
        done += 1
    return done


def _allocate_in_order(
    conn: psycopg.Connection, context: AllocationContext, strategy: Strategy, request
) -> str | None:
    """Allocate ``request`` and the variants that share it unless a request of the
    strategy decided earlier is still open (None then)."""
    allocation_id = allocation_id_for(strategy.id, request.trigger_event_id)
    with conn.transaction():
        lock_strategy(conn, strategy_id=strategy.id)  # its variants' too
        earlier = open_requests(conn, strategy_id=strategy.id, before=request.decision_time)
        if earlier:
            log.info(
                "request %s waits for %d request(s) of %s decided before it (first %s)",
                request.request_id,
                len(earlier),
                strategy.id,
                earlier[0],
            )
            return None
        targets = [("", strategy), *allocation_variants(strategy)]
        todo = [
            (name, target)
            for name, target in targets
            if not allocation_exists(
                conn, allocation_id=allocation_id_for(target.id, request.trigger_event_id)
            )
        ]
        if not todo:
            return allocation_id
        alphas = _admitted_alphas(conn, strategy, request)
        panel = context.panels.get(conn, strategy, request.decision_time, request.trigger_event_id)
        formulas = alphas["formula"].tolist()
        signals = alpha_signals(panel, strategy, formulas)
        for name, target in todo:
            _write(conn, request, panel, target, name, alphas, signals)
    for _, target in todo:
        telemetry.ALLOCATIONS.labels(target.id).inc()
    return allocation_id


def _admitted_alphas(conn: psycopg.Connection, strategy: Strategy, request: RequestRecord):
    """The request's admitted alphas (``alphafactory.admission``): of every candidate it
    scored, those meeting the alpha definition and surviving the strategy's control over
    all of them; the admission is stored with the allocation."""
    # this request's own candidates only: what other requests of the same instant have
    # evaluated so far depends on timing, and the weights must not
    trials = evaluations(
        conn,
        strategy_id=strategy.id,
        decision_time=request.decision_time,
        request_id=request.request_id,
    )
    outcome = admit(
        pd.to_numeric(trials["hac_tstat"], errors="coerce").to_numpy(np.float64),
        trials["is_alpha"].fillna(False).astype(bool).to_numpy(),
        strategy.alpha.control,
        strategy.alpha.level,
    )
    noise = _noise_admission(trials, strategy)
    alphas = trials[outcome.admitted]
    record = AdmissionRecord(
        request.request_id,
        strategy.id,
        request.decision_time,
        outcome.control,
        outcome.level,
        outcome.trials,
        outcome.n_qualified,
        outcome.n_admitted,
        None if noise is None else noise.n_qualified,
        None if noise is None else noise.n_admitted,
    )
    record_admission(
        conn,
        record,
        trial_hashes=trials["formula_hash"].tolist(),
        admitted_hashes=alphas["formula_hash"].tolist(),
    )
    log.info(
        "request %s: allocating from %d admitted alpha(s) of %d trial(s) (%d met the "
        "definition; control %s at %g; on the noise twin %s)",
        request.request_id,
        outcome.n_admitted,
        outcome.trials,
        outcome.n_qualified,
        outcome.control,
        outcome.level,
        "not scored" if noise is None else f"{noise.n_admitted} of {noise.n_qualified}",
    )
    return alphas


def _noise_admission(trials: pd.DataFrame, strategy: Strategy):
    """The same rule over the trials' scores on the decision's noise twin
    (``alphafactory.noise``); None unless every trial was scored there."""
    scored = trials["noise_qualified"]
    if not len(trials) or scored.isna().any():
        return None
    return admit(
        pd.to_numeric(trials["noise_hac_tstat"], errors="coerce").to_numpy(np.float64),
        scored.astype(bool).to_numpy(),
        strategy.alpha.control,
        strategy.alpha.level,
    )


def _write(
    conn: psycopg.Connection,
    request: RequestRecord,
    panel: Panel,
    strategy: Strategy,
    variant: str,
    alphas,
    signals,
) -> None:
    """One allocation of ``strategy`` (the request's own, or its ``variant``) with its
    pool, positions and Rebalance, in the caller's transaction: what
    ``alphafactory.variants.decide`` returns, stored."""
    allocation_id = allocation_id_for(strategy.id, request.trigger_event_id)
    members = active_members(conn, strategy_id=strategy.id, decision_time=request.decision_time)
    result = decide(
        panel,
        strategy,
        variant,
        alphas["formula"].tolist(),
        pd.to_numeric(alphas["hac_tstat"], errors="coerce").tolist(),
        signals=signals,
        members=[Member(m.formula, m.entered_at, m.sign) for m in members],
        previous=held_before(conn, strategy_id=strategy.id, decision_time=request.decision_time),
    )
    hashes = dict(zip(alphas["formula"], alphas["formula_hash"], strict=True))
    hashes |= {m.formula: m.formula_hash for m in members}
    hashes |= _stored_baseline(conn, [f for f in result.pool if f not in hashes])
    _record_pool(conn, strategy, request, result, hashes)
    replace_alpha_pool(
        conn,
        strategy_id=strategy.id,
        as_of=request.as_of,
        decision_time=request.decision_time,
        weights={hashes[f]: w for f, w in result.pool.items()},
    )
    write_allocation(
        conn,
        allocation_id=allocation_id,
        strategy_id=strategy.id,
        as_of=request.as_of,
        decision_time=request.decision_time,
        trigger_event_id=request.trigger_event_id,
        weights=result.weights,
        event=_rebalance(allocation_id, strategy.id, request, result.weights, len(result.pool)),
        signal=result.signal or None,
        in_sample_sharpe=result.in_sample_sharpe,
        exposures=result.exposures,
    )
    log.info(
        "allocated %s for %s as of %s: %d alpha(s) of %d admitted",
        allocation_id,
        strategy.id,
        request.as_of,
        len(result.pool),
        len(alphas),
    )


def _stored_baseline(conn: psycopg.Connection, formulas: list[str]) -> dict[str, str]:
    """A baseline variant's formulas (not candidates of any request) stored as factors,
    so its pool can name them: formula -> its hash."""
    hashes = {f: formula_hash(f) for f in formulas}
    upsert_factors(conn, [(hashes[f], canonical(f), "library") for f in formulas])
    return hashes


def _record_pool(conn, strategy: Strategy, request: RequestRecord, result, hashes) -> None:
    """The persistent pool's entries and retirements at this decision."""
    retired = {}
    for formula, reason in result.retired.items():
        record = result.records.get(formula, NO_RECORD)
        retired[hashes[formula]] = (reason, record.oos_periods, record.oos_ic)
    record_pool_changes(
        conn,
        strategy_id=strategy.id,
        decision_time=request.decision_time,
        entered={hashes[f]: sign for f, sign in result.entered.items()},
        retired=retired,
    )
    if result.entered or result.retired:
        log.info(
            "%s: %d alpha(s) entered the pool, %d retired, %d on probation",
            strategy.id,
            len(result.entered),
            len(result.retired),
            len(result.probation),
        )


def _rebalance(
    allocation_id: str, strategy_id: str, request: RequestRecord, weights, n_alphas: int
) -> OutboxEvent:
    event = Rebalance(
        allocation_id=allocation_id,
        strategy_id=strategy_id,
        as_of=request.as_of,
        trigger_event_id=request.trigger_event_id,
        weights=weights,
        n_alphas=n_alphas,
        created_at=datetime.now(UTC),
    )
    return OutboxEvent.of(event)


class AllocationHandler:
    """``ConsumerLoop`` handler of ``alpha.backtest.results``: a chunk's results ask
    whether their request is complete (one index probe) and allocate it once it is. A
    polled batch asks once per request it names: a request's chunks arrive by the dozen,
    and only the request's completeness matters, not which chunk completed it."""

    def __init__(self, pool: ConnectionPool, context: AllocationContext) -> None:
        self._pool, self._context = pool, context

    def __call__(self, record: ConsumerRecord) -> None:
        self.handle_batch([record])

    def handle_batch(self, records: Sequence[ConsumerRecord]) -> None:
        """Allocate each request the records name, in the order first named; a record that
        does not decode raises, and the loop then handles the records one by one."""
        request_ids = dict.fromkeys(decode(BacktestResults, r.value).request_id for r in records)
        with self._pool.connection() as conn:
            for request_id in request_ids:
                allocate_request(conn, self._context, request_id)

    def record_failure(self, record: ConsumerRecord, error: BaseException) -> None:
        """The request cannot be allocated (e.g. no market data at its decision time): it
        ends failed, with the reason, and later results of it do not try again."""
        try:
            result = decode(BacktestResults, record.value)
        except EventError:
            return
        with self._pool.connection() as conn:
            record_failure(conn, result.request_id, f"{type(error).__name__}: {error}")
            request = load_request(conn, result.request_id)
            if request is not None:  # the decisions that waited for this one go on
                allocate_waiting(
                    conn, self._context, request.strategy_id, after=request.decision_time
                )
