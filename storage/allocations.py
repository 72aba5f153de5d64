"""Allocations (target positions) and their announcement, written in one transaction.

Exactly one allocation exists per (strategy, triggering event): a redelivered or concurrently
duplicated request finds the first one's row (the unique key makes the second INSERT wait for
the first to commit) and writes nothing. Trading systems read the rows through the views of
schema ``trading``.
"""

from __future__ import annotations

import hashlib
import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import date, datetime

import pandas as pd
import psycopg

from alphafactory.exposures import ClassExposure as Exposure
from storage.db import require_aware, require_date, require_finite, require_text
from storage.errors import ConflictError, InvalidRecordError
from storage.outbox import OutboxEvent, enqueue

EXPOSURE_COLUMNS = [
    "strategy_id",
    "allocation_id",
    "as_of",
    "decision_time",
    "group_name",
    "class_code",
    "weight",
    "active_weight",
    "forecast_return",
]
VIEW_COLUMNS = [
    "strategy_id",
    "allocation_id",
    "as_of",
    "asset",
    "weight",
    "created_at",
    "trigger_event_id",
    "decision_time",
]


@dataclass(frozen=True)
class AllocationResult:
    allocation_id: str
    # False: an allocation for this (strategy, trigger) already existed and nothing was written.
    created: bool


def allocation_id_for(strategy_id: str, trigger_event_id: str) -> str:
    """A deterministic id, so that every retry of one request proposes the same id."""
    digest = hashlib.sha256(f"{strategy_id}\x1f{trigger_event_id}".encode()).hexdigest()
    return f"alloc-{digest[:32]}"


def write_allocation(
    conn: psycopg.Connection,
    *,
    allocation_id: str,
    strategy_id: str,
    as_of: date,
    decision_time: datetime,
    trigger_event_id: str,
    weights: Mapping[str, float],
    event: OutboxEvent | None = None,
    signal: Mapping[str, float] | None = None,
    in_sample_sharpe: float | None = None,
    exposures: Sequence[Exposure] = (),
) -> AllocationResult:
    """Write an allocation, its positions and (optionally) its outbox event atomically.

    On a connection with no transaction open this commits before returning; inside the
    caller's transaction it uses a savepoint and commits with the caller. If the strategy
    already has an allocation for ``trigger_event_id`` (committed, or committed by a
    concurrent writer this call waited for) nothing is written and the existing id is
    returned with ``created=False``. ``decision_time`` orders the strategy's allocations:
    the latest decision is what ``trading.latest_target_positions`` shows. ``signal``: the
    combined signal per asset the weights were built from (non-finite values stored as
    null), None for an allocation with no alpha; ``in_sample_sharpe``: the same position's
    Sharpe over the decision's training window (None: not measured); ``exposures``: its
    weight, active weight and forecast return per class (``trading.class_exposures``).
    """
    as_of = require_date(as_of, "as_of")
    positions = _positions(weights, allocation_id)
    with conn.transaction():
        row = conn.execute(
            """
            INSERT INTO core.allocations (allocation_id, strategy_id, as_of, decision_time,
                                          trigger_event_id, signal, in_sample_sharpe)
            VALUES (%s, %s, %s, %s, %s, %s::jsonb, %s)
            ON CONFLICT DO NOTHING
            RETURNING allocation_id
            """,
            (
                require_text(allocation_id, "allocation_id"),
                require_text(strategy_id, "strategy_id"),
                as_of,
                require_aware(decision_time, "decision_time"),
                require_text(trigger_event_id, "trigger_event_id"),
                _signal_document(signal),
                _finite_or_none(in_sample_sharpe),
            ),
        ).fetchone()
        if row is None:
            existing = _existing(conn, allocation_id, strategy_id, trigger_event_id)
            return AllocationResult(existing, created=False)
        conn.execute(
            """
            INSERT INTO core.positions (allocation_id, asset, weight)
            SELECT %s, * FROM unnest(%s::text[], %s::float8[])
            """,
            (allocation_id, [a for a, _ in positions], [w for _, w in positions]),
        )
        if exposures:
            conn.execute(
                """
                INSERT INTO core.allocation_exposures (allocation_id, group_name, class_code,
                    weight, active_weight, forecast_return)
                SELECT %s, * FROM unnest(%s::text[], %s::int[], %s::float8[], %s::float8[],
                                         %s::float8[])
                """,
                (
                    allocation_id,
                    [require_text(e.group, "exposure group") for e in exposures],
                    [e.code for e in exposures],
                    [require_finite(e.weight, f"weight of class {e.code}") for e in exposures],
                    [require_finite(e.active_weight, "active weight") for e in exposures],
                    [_finite_or_none(e.forecast_return) for e in exposures],
                ),
            )
        if event is not None:
            enqueue(conn, event=event)
    return AllocationResult(allocation_id, created=True)


def _signal_document(signal: Mapping[str, float] | None) -> str | None:
    if signal is None:
        return None
    return json.dumps(
        {
            require_text(asset, "asset"): (float(v) if math.isfinite(v) else None)
            for asset, v in signal.items()
        }
    )


def _finite_or_none(value: float | None) -> float | None:
    return float(value) if value is not None and math.isfinite(value) else None


def _positions(weights: Mapping[str, float], allocation_id: str) -> list[tuple[str, float]]:
    if not weights:
        raise InvalidRecordError(
            f"allocation {allocation_id!r} has no positions; list the assets with weight 0.0 "
            f"to hold cash, so that the views show the allocation"
        )
    return [
        (require_text(asset, "asset"), require_finite(w, f"weight of {asset!r}"))
        for asset, w in weights.items()
    ]


def _existing(
    conn: psycopg.Connection, allocation_id: str, strategy_id: str, trigger_event_id: str
) -> str:
    row = conn.execute(
        "SELECT allocation_id FROM core.allocations "
        "WHERE strategy_id = %s AND trigger_event_id = %s",
        (strategy_id, trigger_event_id),
    ).fetchone()
    if row is None:
        # The conflict was on the id alone: it belongs to another strategy or trigger.
        raise ConflictError(
            f"allocation_id {allocation_id!r} already names another strategy's or trigger's "
            f"allocation, not ({strategy_id!r}, {trigger_event_id!r}); use allocation_id_for()"
        )
    return row[0]


def lock_strategy(conn: psycopg.Connection, *, strategy_id: str) -> None:
    """Serialise the allocations of one strategy until the caller's transaction ends: a
    duplicate finds the first one's allocation instead of computing its own, and two
    triggers in flight allocate one after the other."""
    conn.execute(
        "SELECT pg_advisory_xact_lock(hashtextextended(%s, 0))", (f"allocate:{strategy_id}",)
    )


def allocation_exists(conn: psycopg.Connection, *, allocation_id: str) -> bool:
    row = conn.execute(
        "SELECT 1 FROM core.allocations WHERE allocation_id = %s", (allocation_id,)
    ).fetchone()
    return row is not None


def target_positions(conn: psycopg.Connection, *, allocation_id: str) -> dict[str, float]:
    """The weights of one allocation (empty if it does not exist)."""
    rows = conn.execute(
        "SELECT asset, weight FROM core.positions WHERE allocation_id = %s ORDER BY asset",
        (allocation_id,),
    ).fetchall()
    return dict(rows)


def held_before(
    conn: psycopg.Connection, *, strategy_id: str, decision_time: datetime
) -> dict[str, float] | None:
    """The weights of the strategy's last allocation decided before ``decision_time``
    (what it holds when deciding then; allocations are made in decision order), None
    for its first."""
    row = conn.execute(
        """
        SELECT allocation_id FROM core.allocations
        WHERE strategy_id = %s AND decision_time < %s
        ORDER BY decision_time DESC LIMIT 1
        """,
        (strategy_id, decision_time),
    ).fetchone()
    return None if row is None else target_positions(conn, allocation_id=row[0])


def latest_class_exposures(
    conn: psycopg.Connection, *, strategy_id: str | None = None
) -> pd.DataFrame:
    """Rows of ``trading.latest_class_exposures``, as a trading desk sees them."""
    rows = conn.execute(
        """
        SELECT strategy_id, allocation_id, as_of, decision_time, group_name, class_code,
               weight, active_weight, forecast_return
        FROM trading.latest_class_exposures
        WHERE %(strategy)s::text IS NULL OR strategy_id = %(strategy)s::text
        ORDER BY strategy_id, group_name, class_code
        """,
        {"strategy": strategy_id},
    ).fetchall()
    return pd.DataFrame(rows, columns=EXPOSURE_COLUMNS)


def latest_target_positions(
    conn: psycopg.Connection, *, strategy_id: str | None = None
) -> pd.DataFrame:
    """Rows of ``trading.latest_target_positions``, as trading systems see them."""
    rows = conn.execute(
        """
        SELECT strategy_id, allocation_id, as_of, asset, weight, created_at, trigger_event_id,
               decision_time
        FROM trading.latest_target_positions
        WHERE %(strategy)s::text IS NULL OR strategy_id = %(strategy)s::text
        ORDER BY strategy_id, asset
        """,
        {"strategy": strategy_id},
    ).fetchall()
    return pd.DataFrame(rows, columns=VIEW_COLUMNS)
