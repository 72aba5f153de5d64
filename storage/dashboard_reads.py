"""What the web dashboard reads beyond the on-call commands' queries
(``storage.operations``, which it reuses): requests by outcome, the timestamps of each
step of a request, an allocation's weights, the alpha pools with their metrics and the
failed requests. Read-only: the dashboard connects as the viewer role.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass
from datetime import datetime

import psycopg

from storage.operations import _SUMMARY, RequestSummary


def ended_requests(conn: psycopg.Connection) -> dict[str, int]:
    """How many requests ended ``allocated``, ``failed`` or ``skipped`` (the precedence of
    ``storage.operations``: a skipped request is never counted as failed)."""
    skipped, failed, allocated = conn.execute(
        """
        SELECT count(*) FILTER (WHERE r.skipped IS NOT NULL),
               count(*) FILTER (WHERE r.skipped IS NULL AND r.failed_at IS NOT NULL),
               count(*) FILTER (WHERE r.skipped IS NULL AND r.failed_at IS NULL AND EXISTS (
                   SELECT 1 FROM core.allocations AS a
                   WHERE a.strategy_id = r.strategy_id
                     AND a.trigger_event_id = r.trigger_event_id))
        FROM core.generation_requests AS r
        """
    ).fetchone()
    return {"allocated": allocated, "failed": failed, "skipped": skipped}


@dataclass(frozen=True)
class StepTimes:
    """When each step of a request happened (None: not yet, or not for this trigger)."""

    series_id: str | None  # the triggering release's series (a release trigger only)
    released_at: datetime | None  # the triggering release's time (a release trigger only)
    stored_at: datetime | None  # the release handler stored it
    registered_at: datetime  # the request was registered
    generated_at: datetime | None  # its candidates were recorded
    evaluated_at: datetime | None  # its last candidate was evaluated
    allocated_at: datetime | None  # its strategy's allocation was written

    def to_dict(self) -> dict:
        return asdict(self)


def step_times(conn: psycopg.Connection, request_ids: Sequence[str]) -> dict[str, StepTimes]:
    """request id -> the times of its steps, for the timeline."""
    rows = conn.execute(
        """
        SELECT r.request_id, m.series_id, m.released_at, m.ingested_at, r.created_at,
               r.generated_at, CASE WHEN c.pending = 0 THEN c.last_evaluated END, a.created_at
        FROM core.generation_requests AS r
        LEFT JOIN core.macro_observations AS m ON m.event_id = r.trigger_event_id
        LEFT JOIN core.allocations AS a
            ON a.strategy_id = r.strategy_id AND a.trigger_event_id = r.trigger_event_id
        CROSS JOIN LATERAL (
            SELECT max(rc.evaluated_at) AS last_evaluated,
                   count(*) FILTER (WHERE rc.evaluated_at IS NULL) AS pending
            FROM core.request_candidates AS rc WHERE rc.request_id = r.request_id
        ) AS c
        WHERE r.request_id = ANY(%s)
        """,
        (list(request_ids),),
    ).fetchall()
    return {row[0]: StepTimes(*row[1:]) for row in rows}


def allocation_positions(conn: psycopg.Connection, allocation_id: str) -> dict[str, float]:
    """asset -> weight of one allocation (any, not only the latest)."""
    rows = conn.execute(
        "SELECT asset, weight FROM core.positions WHERE allocation_id = %s ORDER BY asset",
        (allocation_id,),
    ).fetchall()
    return dict(rows)


def failed_requests(conn: psycopg.Connection, *, limit: int) -> list[RequestSummary]:
    """The newest requests that ended failed or skipped, with the reason."""
    # the summary's state and counts are storage.operations' own query, filtered here
    rows = conn.execute(
        _SUMMARY + " WHERE r.failed_at IS NOT NULL OR r.skipped IS NOT NULL"
        " ORDER BY coalesce(r.failed_at, r.created_at) DESC, r.request_id LIMIT %s",
        (limit,),
    ).fetchall()
    return [RequestSummary(*row) for row in rows]


@dataclass(frozen=True)
class PoolAlpha:
    strategy_id: str
    decision_time: datetime
    formula: str
    origin: str
    weight: float  # in the combined signal
    ic: float | None
    rank_ic: float | None
    hac_tstat: float | None
    ls_sharpe: float | None
    ls_annual_return: float | None
    ls_max_drawdown: float | None
    turnover: float | None


def latest_pools(conn: psycopg.Connection, *, limit: int) -> list[PoolAlpha]:
    """Each strategy's (and variant's) latest alpha pool, its alphas with the metrics of
    their evaluation for that decision, strongest weight first; ``limit`` alphas at most
    per strategy."""
    # a pool variant's alphas were evaluated under its strategy (``<id>``), a generator
    # variant's under its own id: the evaluation under the pool's own id wins
    rows = conn.execute(
        """
        WITH latest AS (
            SELECT DISTINCT ON (strategy_id) strategy_id, decision_time
            FROM core.alpha_pools ORDER BY strategy_id, decision_time DESC
        ), ranked AS (
            SELECT p.strategy_id, p.decision_time, p.formula_hash, p.weight,
                   row_number() OVER (PARTITION BY p.strategy_id
                                      ORDER BY abs(p.weight) DESC, p.formula_hash) AS k
            FROM core.alpha_pools AS p JOIN latest USING (strategy_id, decision_time)
        )
        SELECT r.strategy_id, r.decision_time, f.formula, f.origin, r.weight,
               e.ic, e.rank_ic, e.hac_tstat, e.ls_sharpe, e.ls_annual_return,
               e.ls_max_drawdown, e.turnover
        FROM ranked AS r
        JOIN core.factors AS f USING (formula_hash)
        LEFT JOIN LATERAL (
            SELECT * FROM core.evaluations AS e
            WHERE e.formula_hash = r.formula_hash AND e.decision_time = r.decision_time
              AND e.strategy_id IN (r.strategy_id, split_part(r.strategy_id, '@', 1))
            ORDER BY e.strategy_id = r.strategy_id DESC LIMIT 1
        ) AS e ON true
        WHERE r.k <= %s
        ORDER BY r.strategy_id, r.k
        """,
        (limit,),
    ).fetchall()
    return [PoolAlpha(*row) for row in rows]
