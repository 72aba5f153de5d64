"""What the reconciler looks for: work Postgres says was started and never finished.

Every query reads only the system of record, so what a lost broker log, a lost Redis
queue or a crash between two steps left behind is found from here alone.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

import psycopg

from storage.macro import MacroObservation
from storage.requests import REQUEST_COLUMNS, RequestRecord


def releases_without_request(
    conn: psycopg.Connection,
    *,
    strategy_id: str,
    series_ids: Sequence[str],
    processed_after: datetime,
    processed_before: datetime,
    registered_since: datetime,
    redriven_since: datetime,
) -> list[MacroObservation]:
    """Releases of ``series_ids`` the release handler processed in the window, for which
    ``strategy_id`` has no generation request (their request was lost in transport), and
    which were not re-driven since ``redriven_since`` (action ``lost_request``, subject
    ``strategy:event``).

    A strategy's requests share one Kafka partition (their key), so the generation service
    registers them in the order they were requested. A release without a request is
    therefore lost only once the service has passed it (it registered a request of the
    strategy requested after the release was processed: another release's, a market
    period's, a re-drive's) or while it registers nothing of the strategy (nothing since
    ``registered_since``); otherwise its request is still queued. Without this rule a
    generation backlog longer than the grace period re-sends every queued request each pass
    (seen in the full walk-forward: 10-60 a pass, each dropped downstream as a duplicate)."""
    rows = conn.execute(
        """
        WITH frontier AS (  -- how far the generation service has got with the strategy
            SELECT max(requested_at) AS requested_at,
                   coalesce(bool_or(created_at >= %(registered)s), false) AS registering
            FROM core.generation_requests
            WHERE strategy_id = %(strategy)s AND created_at > %(after)s
        )
        SELECT o.series_id, o.period, o.value, o.released_at, o.event_id
        FROM core.processed_events AS p
        JOIN core.macro_observations AS o USING (event_id)
        CROSS JOIN frontier
        WHERE p.consumer = 'release-handler'
          AND p.processed_at > %(after)s AND p.processed_at < %(before)s
          AND o.series_id = ANY(%(series)s)
          AND (NOT frontier.registering OR p.processed_at < frontier.requested_at)
          AND NOT EXISTS (
              SELECT 1 FROM core.generation_requests AS r
              WHERE r.strategy_id = %(strategy)s AND r.trigger_event_id = o.event_id)
          AND NOT EXISTS (
              SELECT 1 FROM core.reconciler_actions AS a
              WHERE a.action = 'lost_request' AND a.created_at > %(redriven)s
                AND a.subject = %(strategy)s || ':' || o.event_id)
        ORDER BY o.released_at, o.event_id
        """,
        {
            "after": processed_after,
            "before": processed_before,
            "series": list(series_ids),
            "strategy": strategy_id,
            "registered": registered_since,
            "redriven": redriven_since,
        },
    ).fetchall()
    return [MacroObservation(*row) for row in rows]


def requests_not_generated(
    conn: psycopg.Connection, *, registered_before: datetime, redriven_since: datetime
) -> list[RequestRecord]:
    """Registered requests that never got their candidates (the generator died, and the
    request's record with it), not failed or skipped, nor re-driven since
    ``redriven_since``."""
    rows = conn.execute(
        f"""
        SELECT {REQUEST_COLUMNS} FROM core.generation_requests AS r
        WHERE n_candidates IS NULL AND failed_at IS NULL AND skipped IS NULL
          AND created_at < %(before)s
          AND NOT EXISTS (
              SELECT 1 FROM core.reconciler_actions AS a
              WHERE a.action = 'ungenerated' AND a.subject = r.request_id
                AND a.created_at > %(redriven)s)
        ORDER BY created_at
        """,
        {"before": registered_before, "redriven": redriven_since},
    ).fetchall()
    return [RequestRecord(*row) for row in rows]


def stalled_requests(
    conn: psycopg.Connection, *, idle_since: datetime, redriven_since: datetime
) -> list[str]:
    """Requests with candidates still pending and no sign of work since ``idle_since``:
    neither their generation, nor a delivery of their tasks, nor a re-drive (the Celery
    queue was lost, or the tasks were never sent).

    A request queued behind older work is waiting, not stalled: while a task of a request
    generated before it was delivered since ``idle_since``, the workers have not reached
    its tasks yet (the queue is first in, first out). Without this rule a backlog longer
    than the stall deadline re-drives every waiting request, and the duplicated tasks
    lengthen the backlog further (seen in the full walk-forward)."""
    rows = conn.execute(
        """
        SELECT r.request_id FROM core.generation_requests AS r
        WHERE r.n_candidates IS NOT NULL AND r.failed_at IS NULL AND r.skipped IS NULL
          AND r.generated_at < %(idle)s
          AND EXISTS (
              SELECT 1 FROM core.request_candidates AS c
              WHERE c.request_id = r.request_id AND c.evaluated_at IS NULL)
          AND NOT EXISTS (
              SELECT 1 FROM core.task_deliveries AS d
              WHERE d.request_id = r.request_id AND d.last_at >= %(idle)s)
          AND NOT EXISTS (
              SELECT 1 FROM core.task_deliveries AS d
              JOIN core.generation_requests AS older ON older.request_id = d.request_id
              WHERE d.last_at >= %(idle)s AND older.generated_at < r.generated_at)
          AND NOT EXISTS (
              SELECT 1 FROM core.reconciler_actions AS a
              WHERE a.action = 'stalled' AND a.subject = r.request_id
                AND a.created_at > %(redriven)s)
        ORDER BY r.created_at
        """,
        {"idle": idle_since, "redriven": redriven_since},
    ).fetchall()
    return [row[0] for row in rows]


def unallocated_requests(conn: psycopg.Connection, *, complete_before: datetime) -> list[str]:
    """Requests complete (every candidate evaluated) since before ``complete_before`` with
    neither an allocation nor a recorded failure: the result that should have woken the
    allocator was lost.

    Completion is the last evaluation, not the generation: a request whose evaluation
    outlasts the grace period is otherwise allocated here the moment its last candidate is
    stored, racing the allocator that is about to get the result (seen in CI)."""
    rows = conn.execute(
        """
        SELECT r.request_id FROM core.generation_requests AS r
        WHERE r.n_candidates IS NOT NULL AND r.failed_at IS NULL AND r.skipped IS NULL
          AND r.generated_at < %(before)s
          AND NOT EXISTS (
              SELECT 1 FROM core.request_candidates AS c
              WHERE c.request_id = r.request_id AND c.evaluated_at IS NULL)
          AND NOT EXISTS (
              SELECT 1 FROM core.allocations AS a
              WHERE a.strategy_id = r.strategy_id AND a.trigger_event_id = r.trigger_event_id)
          -- a subplan, so run on what the anti-joins leave (complete and unallocated,
          -- seldom any), not over every candidate of every request at each pass
          AND coalesce(
              (SELECT max(c.evaluated_at) FROM core.request_candidates AS c
               WHERE c.request_id = r.request_id),
              r.generated_at) < %(before)s
        ORDER BY r.created_at
        """,
        {"before": complete_before},
    ).fetchall()
    return [row[0] for row in rows]


def stale_unsent(conn: psycopg.Connection, *, created_before: datetime) -> int:
    """Outbox rows still unsent although they were committed before ``created_before``."""
    row = conn.execute(
        "SELECT count(*) FROM core.outbox WHERE sent_at IS NULL AND created_at < %s",
        (created_before,),
    ).fetchone()
    return int(row[0])


def database_now(conn: psycopg.Connection) -> datetime:
    """The server's clock: every timestamp these queries compare was written by it."""
    return conn.execute("SELECT now()").fetchone()[0]


def record_action(
    conn: psycopg.Connection, *, action: str, subject: str, detail: str | None = None
) -> None:
    conn.execute(
        "INSERT INTO core.reconciler_actions (action, subject, detail) VALUES (%s, %s, %s)",
        (action, subject, detail),
    )


def reconciler_actions(conn: psycopg.Connection, *, since: datetime) -> list[tuple]:
    """(action, subject, detail, created_at) of what the reconciler did since ``since``."""
    return conn.execute(
        "SELECT action, subject, detail, created_at FROM core.reconciler_actions "
        "WHERE created_at >= %s ORDER BY id",
        (since,),
    ).fetchall()
