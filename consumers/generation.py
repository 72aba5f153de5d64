"""The generation service: a request in, candidate formulas out to the Celery workers.

For each ``GenerationRequest`` (every step idempotent, so a redelivered request repeats
nothing and a crash at any point loses nothing):

1. Rebalance rule: a request within ``rebalance.min_days_between`` days after the
   strategy's last allocation (for another trigger) is skipped.
2. ``register_request``: once per (strategy, trigger).
3. If its candidates are not recorded yet: ask the generator (batched next-action calls,
   through Triton or in process per the settings) for ``generation.candidates`` new
   formulas, conditioned on the strategy's target, excluding every formula already
   evaluated for the strategy and date; store them as factors and as the request's
   candidates in one transaction. The sampling seed comes from the request id, so a
   request generated again after a crash writes the same formulas.
4. Send the still-pending candidates to the workers in chunks; with none at all, allocate
   at once (there will be no result to wake the allocator).

When Triton is down and the fallback is ``fail``, the request waits and retries (the
consumer does not commit past it); with ``in_process`` the local model answers.
"""

from __future__ import annotations

import hashlib
import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta

import numpy as np
import psycopg

from alphafactory.events import GenerationRequest
from alphafactory.formula import Kind, Vocabulary, formula_hash
from alphafactory.strategy import Strategy
from consumers.allocation import AllocationContext, allocate_request
from inference.sampling import NextActionPolicy, SamplingOptions, Target, generate
from inference.triton_client import TritonUnavailable
from storage.factors import evaluations, upsert_factor
from storage.requests import RequestRecord, pending_candidates, register_request, set_candidates

log = logging.getLogger(__name__)
Dispatch = Callable[[str, list[str], int], int]  # (request id, hashes, chunk size) -> tasks


class UnknownStrategy(LookupError):
    """A request for a strategy this service does not run."""


@dataclass
class GenerationContext:
    strategies: dict[str, Strategy]
    policy: NextActionPolicy
    vocab: Vocabulary
    gamma: float
    dispatch: Dispatch
    allocation: AllocationContext
    stop_event: threading.Event
    retry_wait_s: float = 5.0


def handle_request(
    conn: psycopg.Connection, context: GenerationContext, request: GenerationRequest
) -> int:
    """Process one request (module doc); returns the number of tasks sent."""
    strategy = context.strategies.get(request.strategy_id)
    if strategy is None:
        known = sorted(context.strategies)
        raise UnknownStrategy(
            f"request {request.request_id!r} names strategy {request.strategy_id!r}; known: {known}"
        )
    if _too_soon(conn, strategy, request):
        return 0
    stored = register_request(
        conn,
        RequestRecord(
            request.request_id,
            request.strategy_id,
            request.as_of,
            request.decision_time,
            request.trigger_event_id,
            request.trigger,
            request.requested_at,
        ),
    )
    if stored.n_candidates is None:
        formulas = _generate(conn, context, strategy, stored, request.candidates)
        with conn.transaction():
            for formula in formulas:
                upsert_factor(
                    conn,
                    formula_hash=formula_hash(formula),
                    formula=str(formula),
                    origin="generator",
                )
            set_candidates(conn, stored.request_id, [formula_hash(f) for f in formulas])
        log.info(
            "request %s (%s, %s): %d new candidates",
            stored.request_id,
            strategy.id,
            stored.as_of,
            len(formulas),
        )
    pending = pending_candidates(conn, stored.request_id)
    if not pending:
        allocate_request(conn, context.allocation, stored.request_id)
        return 0
    return context.dispatch(stored.request_id, pending, strategy.generation.chunk_size)


def _generate(conn, context: GenerationContext, strategy: Strategy, request: RequestRecord, n: int):
    done = evaluations(conn, strategy_id=strategy.id, as_of=request.as_of)
    target = Target.parse(strategy.alpha.target)
    seed = int.from_bytes(hashlib.sha256(request.request_id.encode()).digest()[:8], "little")
    options = SamplingOptions(temperature=strategy.generation.temperature, gamma=context.gamma)
    roots = {Kind(kind) for kind in strategy.formulas.root_kinds}
    wait = context.retry_wait_s
    while True:
        try:
            return generate(
                context.policy,
                context.vocab,
                target.value,
                n,
                options=options,
                rng=np.random.default_rng(seed),
                root_kinds=roots,
                exclude=set(done["formula_hash"]),
            ).formulas
        except TritonUnavailable as error:
            log.warning(
                "request %s waits for Triton (retry in %.0f s): %s", request.request_id, wait, error
            )
            if context.stop_event.wait(wait):
                raise
            wait = min(2 * wait, 60.0)


def _too_soon(conn: psycopg.Connection, strategy: Strategy, request: GenerationRequest) -> bool:
    days = strategy.rebalance.min_days_between
    if days <= 0:
        return False
    row = conn.execute(
        """
        SELECT as_of, trigger_event_id FROM core.allocations
        WHERE strategy_id = %s AND as_of <= %s AND as_of > %s AND trigger_event_id <> %s
        ORDER BY as_of DESC LIMIT 1
        """,
        (
            strategy.id,
            request.as_of,
            request.as_of - timedelta(days=days),
            request.trigger_event_id,
        ),
    ).fetchone()
    if row is not None:
        log.info(
            "request %s skipped: %s rebalanced on %s (trigger %s), within %d days",
            request.request_id,
            strategy.id,
            row[0],
            row[1],
            days,
        )
    return row is not None
