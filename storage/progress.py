"""Where a strategy's reaction to one trigger stands: read-only queries for the demo, the
benchmarks and operators (the pipeline itself never reads these)."""

from __future__ import annotations

from dataclasses import dataclass

import psycopg


@dataclass(frozen=True)
class TriggerStatus:
    request_id: str | None  # None: no request registered yet
    generated: int | None  # None: generation not finished
    evaluated: int
    qualified: int
    admitted: int | None  # None until the decision is allocated (storage.admissions)
    pool: int
    allocation_id: str | None
    weights: dict[str, float]
    # what the same rule admitted on the decision's noise twin (alphafactory.noise); None
    # until allocated, or where the twin was not scored
    noise_admitted: int | None = None


def trigger_status(
    conn: psycopg.Connection, strategy_id: str, trigger_event_id: str
) -> TriggerStatus:
    request = conn.execute(
        "SELECT request_id, n_candidates, decision_time FROM core.generation_requests "
        "WHERE strategy_id = %s AND trigger_event_id = %s",
        (strategy_id, trigger_event_id),
    ).fetchone()
    allocation = conn.execute(
        "SELECT allocation_id FROM core.allocations "
        "WHERE strategy_id = %s AND trigger_event_id = %s",
        (strategy_id, trigger_event_id),
    ).fetchone()
    allocation_id = allocation[0] if allocation else None
    weights = {}
    if allocation_id:
        rows = conn.execute(
            "SELECT asset, weight FROM core.positions WHERE allocation_id = %s ORDER BY asset",
            (allocation_id,),
        ).fetchall()
        weights = dict(rows)
    if request is None:
        return TriggerStatus(None, None, 0, 0, None, 0, allocation_id, weights)
    request_id, generated, decided = request
    evaluated, qualified = conn.execute(
        """
        SELECT count(*), count(*) FILTER (WHERE e.is_alpha)
        FROM core.request_candidates AS c
        JOIN core.evaluations AS e ON e.formula_hash = c.formula_hash
             AND e.strategy_id = %s AND e.decision_time = %s
        WHERE c.request_id = %s AND c.evaluated_at IS NOT NULL
        """,
        (strategy_id, decided, request_id),
    ).fetchone()
    pool = conn.execute(
        "SELECT count(*) FROM core.alpha_pools WHERE strategy_id = %s AND decision_time = %s",
        (strategy_id, decided),
    ).fetchone()[0]
    admission = conn.execute(
        "SELECT admitted, noise_admitted FROM core.admissions WHERE request_id = %s",
        (request_id,),
    ).fetchone()
    admitted, noise_admitted = admission if admission else (None, None)
    return TriggerStatus(
        request_id,
        generated,
        evaluated,
        qualified,
        admitted,
        pool,
        allocation_id,
        weights,
        noise_admitted,
    )


def decided_strategies(conn: psycopg.Connection, trigger_event_id: str) -> set[str]:
    """The strategies whose decision on a trigger has ended: allocated, failed or skipped."""
    rows = conn.execute(
        """
        SELECT r.strategy_id FROM core.generation_requests AS r
        WHERE r.trigger_event_id = %s
          AND (r.failed_at IS NOT NULL OR r.skipped IS NOT NULL OR EXISTS (
              SELECT 1 FROM core.allocations AS a
              WHERE a.strategy_id = r.strategy_id AND a.trigger_event_id = r.trigger_event_id))
        """,
        (trigger_event_id,),
    ).fetchall()
    return {strategy_id for (strategy_id,) in rows}
