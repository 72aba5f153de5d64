"""Generation requests and their candidates: when is a request's evaluation complete?

Lifecycle of one request (every step idempotent, so a redelivered event repeats nothing):

1. ``register_request``: the generation service records the request (once per strategy and
   triggering event; a duplicate returns the stored row).
2. ``set_candidates``: after generation, the new formulas (already in ``core.factors``) and
   their count, in one transaction; a second call for the same request changes nothing.
3. ``mark_evaluated``: a Celery task, in the transaction that stores the evaluations.
4. ``request_complete``: the allocator asks whether every candidate is evaluated (one
   probe of the pending-candidates index).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, datetime, timedelta

import psycopg

from alphafactory.events import GenerationRequest
from storage.db import require_aware, require_date, require_text
from storage.errors import ConflictError


@dataclass(frozen=True)
class RequestRecord:
    request_id: str
    strategy_id: str
    as_of: date
    decision_time: datetime
    trigger_event_id: str
    trigger: str
    requested_at: datetime
    n_candidates: int | None = None
    failed_at: datetime | None = None
    failure: str | None = None
    skipped: str | None = None

    @classmethod
    def of(cls, request: GenerationRequest) -> RequestRecord:
        """The row a generation request registers."""
        return cls(
            request.request_id,
            request.strategy_id,
            request.as_of,
            request.decision_time,
            request.trigger_event_id,
            request.trigger,
            request.requested_at,
        )

    def event(self, *, candidates: int) -> GenerationRequest:
        """The registered request as its event again (the reconciler re-drives it)."""
        return GenerationRequest(
            request_id=self.request_id,
            strategy_id=self.strategy_id,
            as_of=self.as_of,
            decision_time=self.decision_time,
            trigger_event_id=self.trigger_event_id,
            trigger=self.trigger,
            candidates=candidates,
            requested_at=self.requested_at,
        )


REQUEST_COLUMNS = (
    "request_id, strategy_id, as_of, decision_time, trigger_event_id, trigger, "
    "requested_at, n_candidates, failed_at, failure, skipped"
)


def register_request(conn: psycopg.Connection, request: RequestRecord) -> RequestRecord:
    """Insert ``request`` unless the strategy already has one for its trigger; returns the
    stored request (the first one wins: a duplicate event with another request id maps to
    it, so one trigger never leads to two allocations)."""
    with conn.transaction():
        conn.execute(
            f"""
            INSERT INTO core.generation_requests ({REQUEST_COLUMNS})
            VALUES (%s, %s, %s, %s, %s, %s, %s, NULL, NULL, NULL, NULL)
            ON CONFLICT DO NOTHING
            """,
            (
                require_text(request.request_id, "request_id"),
                require_text(request.strategy_id, "strategy_id"),
                require_date(request.as_of, "as_of"),
                require_aware(request.decision_time, "decision_time"),
                require_text(request.trigger_event_id, "trigger_event_id"),
                request.trigger,
                require_aware(request.requested_at, "requested_at"),
            ),
        )
        stored = conn.execute(
            f"SELECT {REQUEST_COLUMNS} FROM core.generation_requests "
            "WHERE strategy_id = %s AND trigger_event_id = %s",
            (request.strategy_id, request.trigger_event_id),
        ).fetchone()
    if stored is None:  # the request id is taken by another strategy's trigger
        raise ConflictError(f"request_id {request.request_id!r} is already used by another trigger")
    return RequestRecord(*stored)


def load_request(conn: psycopg.Connection, request_id: str) -> RequestRecord | None:
    row = conn.execute(
        f"SELECT {REQUEST_COLUMNS} FROM core.generation_requests WHERE request_id = %s",
        (request_id,),
    ).fetchone()
    return None if row is None else RequestRecord(*row)


def set_candidates(
    conn: psycopg.Connection, request_id: str, formula_hashes: Sequence[str]
) -> bool:
    """Record the request's candidates and their count; False (and nothing changed) if they
    were recorded before. The hashes must already be stored factors."""
    with conn.transaction():
        claimed = conn.execute(
            """
            UPDATE core.generation_requests
            SET n_candidates = %s, generated_at = now()
            WHERE request_id = %s AND n_candidates IS NULL
            RETURNING request_id
            """,
            (len(set(formula_hashes)), request_id),
        ).fetchone()
        if claimed is None:
            return False
        conn.execute(
            """
            INSERT INTO core.request_candidates (request_id, formula_hash)
            SELECT %s, unnest(%s::text[])
            ON CONFLICT DO NOTHING
            """,
            (request_id, sorted(set(formula_hashes))),
        )
    return True


def pending_candidates(conn: psycopg.Connection, request_id: str) -> list[str]:
    """Candidates not evaluated yet (to re-dispatch after a crash), in hash order."""
    rows = conn.execute(
        "SELECT formula_hash FROM core.request_candidates "
        "WHERE request_id = %s AND evaluated_at IS NULL ORDER BY formula_hash",
        (request_id,),
    ).fetchall()
    return [r[0] for r in rows]


def mark_evaluated(conn: psycopg.Connection, request_id: str, formula_hashes: Sequence[str]) -> int:
    """Mark candidates evaluated (in the caller's transaction); returns how many were
    pending before, so a retried task counts 0."""
    cursor = conn.execute(
        """
        UPDATE core.request_candidates SET evaluated_at = now()
        WHERE request_id = %s AND formula_hash = ANY(%s) AND evaluated_at IS NULL
        """,
        (request_id, list(formula_hashes)),
    )
    return cursor.rowcount


def request_complete(conn: psycopg.Connection, request_id: str) -> bool:
    """Generation finished and no candidate pending: one probe of the partial index on
    pending candidates, so the allocator can ask after every result of a large request."""
    row = conn.execute(
        """
        SELECT r.n_candidates IS NOT NULL AND NOT EXISTS (
            SELECT 1 FROM core.request_candidates AS c
            WHERE c.request_id = r.request_id AND c.evaluated_at IS NULL)
        FROM core.generation_requests AS r WHERE r.request_id = %s
        """,
        (request_id,),
    ).fetchone()
    return bool(row and row[0])


def open_requests(
    conn: psycopg.Connection,
    *,
    strategy_id: str,
    before: datetime | None = None,
    after: datetime | None = None,
) -> list[str]:
    """The strategy's requests with neither an allocation, a failure nor a skip, decided
    before ``before`` or after ``after`` (either bound optional), in decision order: the
    allocator takes a strategy's decisions in this order, since each reads the pool the
    decisions before it left."""
    rows = conn.execute(
        """
        SELECT r.request_id FROM core.generation_requests AS r
        WHERE r.strategy_id = %(strategy)s AND r.failed_at IS NULL AND r.skipped IS NULL
          AND (%(before)s::timestamptz IS NULL OR r.decision_time < %(before)s)
          AND (%(after)s::timestamptz IS NULL OR r.decision_time > %(after)s)
          AND NOT EXISTS (
              SELECT 1 FROM core.allocations AS a
              WHERE a.strategy_id = r.strategy_id AND a.trigger_event_id = r.trigger_event_id)
        ORDER BY r.decision_time, r.created_at, r.request_id
        """,
        {"strategy": require_text(strategy_id, "strategy_id"), "before": before, "after": after},
    ).fetchall()
    return [row[0] for row in rows]


def record_failure(conn: psycopg.Connection, request_id: str, reason: str) -> bool:
    """Finish the request with a failure instead of an allocation (poison: its data,
    formulas or decision are bad). The first reason wins; False if the request is unknown
    or already failed."""
    cursor = conn.execute(
        """
        UPDATE core.generation_requests SET failed_at = now(), failure = %s
        WHERE request_id = %s AND failed_at IS NULL
        """,
        (require_text(reason, "reason")[:2000], request_id),
    )
    return cursor.rowcount == 1


def record_skip(conn: psycopg.Connection, request_id: str, reason: str) -> bool:
    """Finish the request without work (the rebalance rule skipped it); False if it was
    skipped, failed or generated before."""
    cursor = conn.execute(
        """
        UPDATE core.generation_requests SET skipped = %s
        WHERE request_id = %s AND skipped IS NULL AND failed_at IS NULL
          AND n_candidates IS NULL
        """,
        (require_text(reason, "reason")[:2000], request_id),
    )
    return cursor.rowcount == 1


def recent_request(
    conn: psycopg.Connection,
    *,
    strategy_id: str,
    decision_time: datetime,
    within: timedelta,
    other_than_trigger: str,
) -> tuple[datetime, str] | None:
    """(decision time, trigger) of the strategy's latest request decided in ``within``
    before ``decision_time`` (ties included) that was neither skipped nor failed: the
    rebalance it stands for. Requests, not allocations, so the answer does not depend on
    how far the earlier one has got (a replay's speed)."""
    row = conn.execute(
        """
        SELECT decision_time, trigger_event_id FROM core.generation_requests
        WHERE strategy_id = %(strategy)s AND trigger_event_id <> %(trigger)s
          AND decision_time <= %(at)s AND decision_time > %(since)s
          AND skipped IS NULL AND failed_at IS NULL
        ORDER BY decision_time DESC, request_id DESC LIMIT 1
        """,
        {
            "strategy": strategy_id,
            "trigger": other_than_trigger,
            "at": decision_time,
            "since": decision_time - within,
        },
    ).fetchone()
    return None if row is None else (row[0], row[1])


def request_formulas(
    conn: psycopg.Connection, request_id: str, formula_hashes: Sequence[str]
) -> dict[str, str]:
    """formula_hash -> formula text for the given candidates of a request."""
    rows = conn.execute(
        """
        SELECT c.formula_hash, f.formula
        FROM core.request_candidates AS c JOIN core.factors AS f USING (formula_hash)
        WHERE c.request_id = %s AND c.formula_hash = ANY(%s)
        """,
        (request_id, list(formula_hashes)),
    ).fetchall()
    return dict(rows)
