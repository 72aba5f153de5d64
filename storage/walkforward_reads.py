"""Read-only queries a walk-forward report is built from: every allocation of a strategy
and its variants, their pools, the alphas' in-sample metrics, and per generator version
what its requests generated, qualified and admitted. Postgres is the record: the report reads
nothing the pipeline did not store."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, datetime

import psycopg


@dataclass(frozen=True)
class StoredAllocation:
    strategy_id: str
    as_of: date
    decision_time: datetime
    trigger_event_id: str
    weights: dict[str, float]
    # the combined signal the weights were built from (None: no alpha, or stored before
    # migration 0012)
    signal: dict[str, float | None] | None = None
    # the same position's Sharpe over the decision's training window (migration 0015)
    in_sample_sharpe: float | None = None


def allocations_of(
    conn: psycopg.Connection, strategy_ids: Sequence[str]
) -> dict[str, list[StoredAllocation]]:
    """strategy id -> its allocations in decision order (with their weights)."""
    rows = conn.execute(
        """
        SELECT a.strategy_id, a.as_of, a.decision_time, a.trigger_event_id,
               coalesce(jsonb_object_agg(p.asset, p.weight)
                        FILTER (WHERE p.asset IS NOT NULL), '{}'::jsonb), a.signal,
               a.in_sample_sharpe
        FROM core.allocations AS a LEFT JOIN core.positions AS p USING (allocation_id)
        WHERE a.strategy_id = ANY(%s)
        GROUP BY a.allocation_id
        ORDER BY a.strategy_id, a.decision_time, a.trigger_event_id
        """,
        (list(strategy_ids),),
    ).fetchall()
    out: dict[str, list[StoredAllocation]] = {s: [] for s in strategy_ids}
    for strategy_id, as_of, decided, trigger, weights, signal, in_sample in rows:
        out[strategy_id].append(
            StoredAllocation(strategy_id, as_of, decided, trigger, dict(weights), signal, in_sample)
        )
    return out


def pools_of(conn: psycopg.Connection, strategy_id: str) -> dict[date, dict[str, float]]:
    """as-of date -> the pool (formula hash -> combination weight) chosen that day."""
    rows = conn.execute(
        "SELECT as_of, formula_hash, weight FROM core.alpha_pools WHERE strategy_id = %s",
        (strategy_id,),
    ).fetchall()
    pools: dict[date, dict[str, float]] = {}
    for as_of, hashed, weight in rows:
        pools.setdefault(as_of, {})[hashed] = float(weight)
    return pools


@dataclass(frozen=True)
class VersionYield:
    version: int | None
    requests: int
    candidates: int
    qualified: int  # met the alpha definition
    admitted: int  # and survived the multiple-testing control
    first_decision: datetime | None
    last_decision: datetime | None


def yield_per_version(conn: psycopg.Connection, strategy_id: str) -> list[VersionYield]:
    """Per generator version that wrote the strategy's candidates: requests, candidates
    evaluated, those that met the alpha definition and those admitted, and the decisions
    it served."""
    rows = conn.execute(
        """
        SELECT r.model_version, count(DISTINCT r.request_id),
               count(e.formula_hash), count(e.formula_hash) FILTER (WHERE e.is_alpha),
               count(e.formula_hash) FILTER (WHERE e.admitted),
               min(r.decision_time), max(r.decision_time)
        FROM core.generation_requests AS r
        JOIN core.request_candidates AS c USING (request_id)
        LEFT JOIN core.evaluations AS e
            ON e.formula_hash = c.formula_hash AND e.strategy_id = r.strategy_id
           AND e.as_of = r.as_of
        WHERE r.strategy_id = %s AND r.n_candidates IS NOT NULL
        GROUP BY r.model_version ORDER BY r.model_version NULLS FIRST
        """,
        (strategy_id,),
    ).fetchall()
    return [VersionYield(*row) for row in rows]


def alphas_by_decision(
    conn: psycopg.Connection, strategy_id: str
) -> list[tuple[datetime, int | None, str, str]]:
    """(decision time, model version, formula hash, formula) of every admitted formula
    (the supervised alphas of ``[ml]``, origin ``ml``, were written by no generator)."""
    return conn.execute(
        """
        SELECT r.decision_time, r.model_version, e.formula_hash, f.formula
        FROM core.generation_requests AS r
        JOIN core.request_candidates AS c USING (request_id)
        JOIN core.evaluations AS e
            ON e.formula_hash = c.formula_hash AND e.strategy_id = r.strategy_id
           AND e.as_of = r.as_of
        JOIN core.factors AS f ON f.formula_hash = e.formula_hash
        WHERE r.strategy_id = %s AND e.admitted AND f.origin <> 'ml'
        ORDER BY r.decision_time, e.formula_hash
        """,
        (strategy_id,),
    ).fetchall()
