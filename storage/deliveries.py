"""Deliveries of Celery tasks, counted in Postgres (migration 0004).

A task's start and its end are counted in their own short transactions. A task whose
worker is killed (out of memory, a segfault, SIGKILL) never counts its end, so the gap
between the two counts is how many deliveries killed their worker; the task gives up on
its chunk when that happens too often instead of being redelivered forever.
"""

from __future__ import annotations

import psycopg

from storage.db import require_text


def start_delivery(conn: psycopg.Connection, *, task_id: str, request_id: str) -> int:
    """Count a start of ``task_id``; returns how many of its starts have not ended (this
    one included, so 1 on a healthy delivery)."""
    row = conn.execute(
        """
        INSERT INTO core.task_deliveries (task_id, request_id, started) VALUES (%s, %s, 1)
        ON CONFLICT (task_id) DO UPDATE
            SET started = core.task_deliveries.started + 1, last_at = now()
        RETURNING started - finished
        """,
        (require_text(task_id, "task_id"), require_text(request_id, "request_id")),
    ).fetchone()
    return int(row[0])


def finish_delivery(conn: psycopg.Connection, *, task_id: str) -> None:
    conn.execute(
        "UPDATE core.task_deliveries SET finished = finished + 1, last_at = now() "
        "WHERE task_id = %s",
        (task_id,),
    )
