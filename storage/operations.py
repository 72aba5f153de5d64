"""What an on-call engineer reads: the latest positions per strategy, the recent requests
and where each stands, one request in detail, the pipeline's state at a glance.
Read-only queries over the system of record (the commands ``alphafactory positions``,
``alphafactory requests`` and ``alphafactory status``).

A request's state, in the order its life goes: ``skipped`` (the rebalance rule),
``failed`` (ended with a recorded failure), ``allocated`` (its strategy's allocation for
the trigger is written), ``evaluating`` (candidates recorded, some not evaluated yet),
``allocating`` (all evaluated, the allocation not written yet) or ``generating`` (no
candidates recorded yet).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from datetime import date, datetime

import psycopg


@dataclass(frozen=True)
class Position:
    strategy_id: str
    as_of: date
    asset: str
    weight: float
    allocation_id: str
    trigger_event_id: str
    created_at: datetime

    def to_dict(self) -> dict:
        return asdict(self)


def latest_positions(conn: psycopg.Connection, strategy_id: str | None = None) -> list[Position]:
    """Each strategy's (and variant's) latest target positions, as the trading systems read
    them (``trading.latest_target_positions``); only ``strategy_id``'s when given."""
    rows = conn.execute(
        """
        SELECT strategy_id, as_of, asset, weight, allocation_id, trigger_event_id, created_at
        FROM trading.latest_target_positions
        WHERE %(strategy)s::text IS NULL OR strategy_id = %(strategy)s
        ORDER BY strategy_id, asset
        """,
        {"strategy": strategy_id},
    ).fetchall()
    return [Position(*row) for row in rows]


@dataclass(frozen=True)
class RequestSummary:
    request_id: str
    strategy_id: str
    decision_time: datetime
    trigger: str
    trigger_event_id: str
    state: str
    candidates: int | None  # None until generated
    evaluated: int
    qualified: int  # met the alpha definition
    # the decision's admission (storage.admissions), None until it is allocated: the
    # candidates it scored, those admitted (met the definition and survived the control)
    trials: int | None
    admitted: int | None
    control: str | None
    model_version: int | None
    allocation_id: str | None
    failure: str | None  # the failure or the skip's reason
    # what the same rule admitted on the decision's noise twin (None: not scored)
    noise_admitted: int | None = None

    def to_dict(self) -> dict:
        return asdict(self)


_SUMMARY = """
    SELECT r.request_id, r.strategy_id, r.decision_time, r.trigger, r.trigger_event_id,
           CASE WHEN r.skipped IS NOT NULL THEN 'skipped'
                WHEN r.failed_at IS NOT NULL THEN 'failed'
                WHEN a.allocation_id IS NOT NULL THEN 'allocated'
                WHEN r.n_candidates IS NULL THEN 'generating'
                WHEN c.evaluated < r.n_candidates THEN 'evaluating'
                ELSE 'allocating' END,
           r.n_candidates, c.evaluated, c.qualified, ad.trials, ad.admitted,
           CASE WHEN ad.control IS NULL THEN NULL
                WHEN ad.control = 'none' THEN 'none'
                ELSE ad.control || ' ' || ad.level END,
           r.model_version, a.allocation_id, coalesce(r.failure, r.skipped), ad.noise_admitted
    FROM core.generation_requests AS r
    LEFT JOIN core.allocations AS a
        ON a.strategy_id = r.strategy_id AND a.trigger_event_id = r.trigger_event_id
    LEFT JOIN core.admissions AS ad ON ad.request_id = r.request_id
    CROSS JOIN LATERAL (
        SELECT count(*) FILTER (WHERE rc.evaluated_at IS NOT NULL) AS evaluated,
               count(*) FILTER (WHERE e.is_alpha) AS qualified
        FROM core.request_candidates AS rc
        LEFT JOIN core.evaluations AS e
            ON e.formula_hash = rc.formula_hash AND e.strategy_id = r.strategy_id
           AND e.decision_time = r.decision_time
        WHERE rc.request_id = r.request_id
    ) AS c
"""


def recent_requests(
    conn: psycopg.Connection, *, strategy_id: str | None = None, limit: int = 20
) -> list[RequestSummary]:
    """The newest ``limit`` requests (by decision time), of ``strategy_id`` when given."""
    rows = conn.execute(
        _SUMMARY + " WHERE %(strategy)s::text IS NULL OR r.strategy_id = %(strategy)s"
        " ORDER BY r.decision_time DESC, r.request_id LIMIT %(limit)s",
        {"strategy": strategy_id, "limit": limit},
    ).fetchall()
    return [RequestSummary(*row) for row in rows]


def request_summary(conn: psycopg.Connection, request_id: str) -> RequestSummary | None:
    row = conn.execute(_SUMMARY + " WHERE r.request_id = %s", (request_id,)).fetchone()
    return RequestSummary(*row) if row else None


def request_alphas(conn: psycopg.Connection, request_id: str, limit: int = 10) -> list[dict]:
    """The request's admitted alphas (before its allocation: the candidates that met the
    definition so far), strongest ``|hac_tstat|`` first."""
    rows = conn.execute(
        """
        SELECT f.formula, f.origin, e.ic, e.hac_tstat, e.ls_sharpe
        FROM core.generation_requests AS r
        JOIN core.request_candidates AS rc USING (request_id)
        JOIN core.evaluations AS e
            ON e.formula_hash = rc.formula_hash AND e.strategy_id = r.strategy_id
           AND e.decision_time = r.decision_time
        JOIN core.factors AS f ON f.formula_hash = rc.formula_hash
        WHERE r.request_id = %s AND coalesce(e.admitted, e.is_alpha)
        ORDER BY abs(e.hac_tstat) DESC NULLS LAST, f.formula LIMIT %s
        """,
        (request_id, limit),
    ).fetchall()
    keys = ("formula", "origin", "ic", "hac_tstat", "ls_sharpe")
    return [dict(zip(keys, row, strict=True)) for row in rows]


# what a request not ended yet waits for (pipeline_state's pending_requests keys)
REQUEST_STATES = ("generating", "evaluating", "allocating")


def pipeline_state(conn: psycopg.Connection, *, hours: float = 24.0) -> dict:
    """Requests not ended (by state), each strategy's last allocation, dead letters by
    topic, the reconciler's actions of the last ``hours`` by kind, and the newest release
    of each series."""
    pending = dict(
        conn.execute(
            """
            SELECT CASE WHEN r.n_candidates IS NULL THEN 'generating'
                        WHEN EXISTS (SELECT 1 FROM core.request_candidates AS c
                                     WHERE c.request_id = r.request_id
                                       AND c.evaluated_at IS NULL) THEN 'evaluating'
                        ELSE 'allocating' END,
                   count(*)
            FROM core.generation_requests AS r
            WHERE r.failed_at IS NULL AND r.skipped IS NULL
              AND NOT EXISTS (SELECT 1 FROM core.allocations AS a
                              WHERE a.strategy_id = r.strategy_id
                                AND a.trigger_event_id = r.trigger_event_id)
            GROUP BY 1
            """
        ).fetchall()
    )
    allocations = conn.execute(
        "SELECT DISTINCT ON (strategy_id) strategy_id, allocation_id, as_of, created_at "
        "FROM core.allocations ORDER BY strategy_id, as_of DESC, created_at DESC"
    ).fetchall()
    letters = dict(
        conn.execute("SELECT topic, count(*) FROM core.dead_letters GROUP BY topic").fetchall()
    )
    actions = dict(
        conn.execute(
            "SELECT action, count(*) FROM core.reconciler_actions "
            "WHERE created_at > now() - make_interval(secs => %s) GROUP BY action",
            (hours * 3600,),
        ).fetchall()
    )
    releases = conn.execute(
        "SELECT series_id, max(released_at) FROM core.macro_observations GROUP BY series_id "
        "ORDER BY series_id"
    ).fetchall()
    return {
        "pending_requests": pending,
        "last_allocations": {
            strategy: {"allocation_id": a, "as_of": as_of, "created_at": created}
            for strategy, a, as_of, created in allocations
        },
        "dead_letters": letters,
        "reconciler_actions": actions,
        "last_releases": dict(releases),
    }
