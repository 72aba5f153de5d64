"""Each decision's admission (migration 0011): how many candidates it tried, how many met
the alpha definition, how many were admitted, under which control; and per evaluation
whether it was admitted."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

import psycopg

from storage.db import require_aware, require_text


@dataclass(frozen=True)
class AdmissionRecord:
    request_id: str
    strategy_id: str
    decision_time: datetime
    control: str
    level: float
    trials: int
    qualified: int
    admitted: int
    # the same rule on the decision's noise twin (alphafactory.noise); None: not scored
    noise_qualified: int | None = None
    noise_admitted: int | None = None


_COLUMNS = (
    "request_id, strategy_id, decision_time, control, level, trials, qualified, admitted, "
    "noise_qualified, noise_admitted"
)


def record_admission(
    conn: psycopg.Connection,
    record: AdmissionRecord,
    *,
    trial_hashes: Sequence[str],
    admitted_hashes: Sequence[str],
) -> None:
    """Store a request's admission and mark its trials' evaluations admitted or not, in the
    caller's transaction; a retry writes the same numbers over them."""
    conn.execute(
        """
        INSERT INTO core.admissions (request_id, strategy_id, decision_time, control, level,
                                     trials, qualified, admitted, noise_qualified,
                                     noise_admitted)
        VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s)
        ON CONFLICT (request_id) DO UPDATE SET
            control = EXCLUDED.control, level = EXCLUDED.level, trials = EXCLUDED.trials,
            qualified = EXCLUDED.qualified, admitted = EXCLUDED.admitted,
            noise_qualified = EXCLUDED.noise_qualified,
            noise_admitted = EXCLUDED.noise_admitted, decided_at = now()
        """,
        (
            require_text(record.request_id, "request_id"),
            require_text(record.strategy_id, "strategy_id"),
            require_aware(record.decision_time, "decision_time"),
            record.control,
            record.level,
            record.trials,
            record.qualified,
            record.admitted,
            record.noise_qualified,
            record.noise_admitted,
        ),
    )
    conn.execute(
        """
        UPDATE core.evaluations SET admitted = (formula_hash = ANY(%(admitted)s))
        WHERE strategy_id = %(strategy)s AND decision_time = %(at)s
          AND formula_hash = ANY(%(trials)s)
        """,
        {
            "admitted": list(admitted_hashes),
            "strategy": record.strategy_id,
            "at": record.decision_time,
            "trials": list(trial_hashes),
        },
    )


def admission_of(conn: psycopg.Connection, request_id: str) -> AdmissionRecord | None:
    row = conn.execute(
        f"SELECT {_COLUMNS} FROM core.admissions WHERE request_id = %s",
        (request_id,),
    ).fetchone()
    return None if row is None else AdmissionRecord(*row)


def admissions_of(conn: psycopg.Connection, strategy_id: str) -> list[AdmissionRecord]:
    """The strategy's admissions in decision order."""
    rows = conn.execute(
        f"SELECT {_COLUMNS} FROM core.admissions WHERE strategy_id = %s "
        "ORDER BY decision_time, request_id",
        (strategy_id,),
    ).fetchall()
    return [AdmissionRecord(*row) for row in rows]
