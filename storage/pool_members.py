"""The persistent pool's members (migration 0013, ``alphafactory.pool``): who was in a
strategy's pool as of a decision, who entered and who retired at it."""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime

import psycopg

from storage.db import require_aware, require_text


@dataclass(frozen=True)
class StoredMember:
    formula_hash: str
    formula: str
    entered_at: datetime
    sign: float


def active_members(
    conn: psycopg.Connection, *, strategy_id: str, decision_time: datetime
) -> list[StoredMember]:
    """The members of the strategy's pool as of ``decision_time``: entered before it and
    not retired by then, oldest first."""
    rows = conn.execute(
        """
        SELECT m.formula_hash, f.formula, m.entered_at, m.sign
        FROM core.pool_members AS m JOIN core.factors AS f USING (formula_hash)
        WHERE m.strategy_id = %(strategy)s AND m.entered_at < %(at)s
          AND (m.retired_at IS NULL OR m.retired_at >= %(at)s)
        ORDER BY m.entered_at, m.formula_hash
        """,
        {
            "strategy": require_text(strategy_id, "strategy_id"),
            "at": require_aware(decision_time, "decision_time"),
        },
    ).fetchall()
    return [StoredMember(h, f, entered, float(sign)) for h, f, entered, sign in rows]


def record_pool_changes(
    conn: psycopg.Connection,
    *,
    strategy_id: str,
    decision_time: datetime,
    entered: Mapping[str, float],
    retired: Mapping[str, tuple[str, int, float]],
) -> None:
    """At ``decision_time``: the members that entered (formula hash -> sign) and those
    that retired (formula hash -> reason, out-of-sample periods, out-of-sample IC), in
    the caller's transaction."""
    at = require_aware(decision_time, "decision_time")
    for formula_hash, sign in entered.items():
        conn.execute(
            "INSERT INTO core.pool_members (strategy_id, formula_hash, entered_at, sign) "
            "VALUES (%s, %s, %s, %s) ON CONFLICT DO NOTHING",
            (
                strategy_id,
                require_text(formula_hash, "formula_hash"),
                at,
                1.0 if sign >= 0 else -1.0,
            ),
        )
    for formula_hash, (reason, periods, ic) in retired.items():
        conn.execute(
            """
            UPDATE core.pool_members
            SET retired_at = %s, retire_reason = %s, oos_periods = %s, oos_ic = %s
            WHERE strategy_id = %s AND formula_hash = %s AND entered_at < %s
              AND retired_at IS NULL
            """,
            (at, reason, periods, ic if math.isfinite(ic) else None, strategy_id, formula_hash, at),
        )


@dataclass(frozen=True)
class PoolHistory:
    entered: int
    retired: int
    mean_periods_at_retirement: float  # NaN: none retired with a record
    mean_oos_ic_at_retirement: float


def pool_history(
    conn: psycopg.Connection, *, strategy_id: str, since: datetime, until: datetime
) -> PoolHistory:
    """How many members entered and retired between ``since`` and ``until``, and the
    retired ones' mean record when they left."""
    entered, retired, periods, ic = conn.execute(
        """
        SELECT count(*) FILTER (WHERE entered_at >= %(since)s AND entered_at < %(until)s),
               count(*) FILTER (WHERE retired_at >= %(since)s AND retired_at < %(until)s),
               avg(oos_periods) FILTER (WHERE retired_at >= %(since)s AND retired_at < %(until)s),
               avg(oos_ic) FILTER (WHERE retired_at >= %(since)s AND retired_at < %(until)s)
        FROM core.pool_members WHERE strategy_id = %(strategy)s
        """,
        {"strategy": strategy_id, "since": since, "until": until},
    ).fetchone()
    nan = float("nan")
    return PoolHistory(
        int(entered),
        int(retired),
        nan if periods is None else float(periods),
        nan if ic is None else float(ic),
    )
