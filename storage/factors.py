"""Factors (keyed by the canonical formula's hash), their evaluations and alpha pools."""

from __future__ import annotations

import json
import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime
from typing import Any

import pandas as pd
import psycopg
from psycopg import sql

from storage.db import require_aware, require_date, require_finite, require_text
from storage.errors import ConflictError, InvalidRecordError

# The metrics copied into their own columns (see migration 0001) for filtering and sorting.
KEY_METRICS = (
    "ic",
    "rank_ic",
    "ls_sharpe",
    "ls_annual_return",
    "ls_max_drawdown",
    "hac_tstat",
    "turnover",
)


def upsert_factor(
    conn: psycopg.Connection, *, formula_hash: str, formula: str, origin: str
) -> bool:
    """Store a factor unless known; returns True if it was new (:func:`upsert_factors`)."""
    return formula_hash in upsert_factors(conn, [(formula_hash, formula, origin)])


def upsert_factors(conn: psycopg.Connection, factors: Sequence[tuple[str, str, str]]) -> set[str]:
    """Store the (formula_hash, formula, origin) not yet known, in one statement; returns
    the hashes that were new.

    The first origin wins (a generated formula later found in the library stays
    'generator'). A hash stored with a different formula raises :class:`ConflictError`
    (naming both) and stores nothing of the batch when the caller's transaction rolls back.
    """
    batch: dict[str, str] = {}
    for formula_hash, formula, _ in factors:
        require_text(formula_hash, "formula_hash")
        require_text(formula, "formula")
        if batch.setdefault(formula_hash, formula) != formula:
            raise ConflictError(
                f"formula_hash {formula_hash!r} is given for {batch[formula_hash]!r} and "
                f"{formula!r}; the hash must be computed from the canonical formula"
            )
    if not factors:
        return set()
    hashes, formulas, origins = (list(column) for column in zip(*factors, strict=True))
    new = {
        row[0]
        for row in conn.execute(
            """
            INSERT INTO core.factors (formula_hash, formula, origin)
            SELECT * FROM unnest(%s::text[], %s::text[], %s::text[])
            ON CONFLICT (formula_hash) DO NOTHING
            RETURNING formula_hash
            """,
            (hashes, formulas, origins),
        ).fetchall()
    }
    known = [(h, f) for h, f in zip(hashes, formulas, strict=True) if h not in new]
    if known:
        stored = dict(
            conn.execute(
                "SELECT formula_hash, formula FROM core.factors WHERE formula_hash = ANY(%s)",
                ([h for h, _ in known],),
            ).fetchall()
        )
        for formula_hash, formula in known:
            if stored.get(formula_hash) != formula:
                raise ConflictError(
                    f"formula_hash {formula_hash!r} is stored for {stored.get(formula_hash)!r}, "
                    f"not {formula!r}; the hash must be computed from the canonical formula"
                )
    return new


def factor_formula(conn: psycopg.Connection, *, formula_hash: str) -> str | None:
    row = conn.execute(
        "SELECT formula FROM core.factors WHERE formula_hash = %s", (formula_hash,)
    ).fetchone()
    return None if row is None else row[0]


def known_factor_hashes(conn: psycopg.Connection, *, formula_hashes: Iterable[str]) -> set[str]:
    """The subset of ``formula_hashes`` already stored (to skip re-evaluating them)."""
    rows = conn.execute(
        "SELECT formula_hash FROM core.factors WHERE formula_hash = ANY(%s)",
        (list(formula_hashes),),
    ).fetchall()
    return {r[0] for r in rows}


# one row per factor, strategy and decision time (a second decision the same day saw other
# data); a rewrite refreshes it. A chunk travels as one JSON document: a statement per row
# cost Postgres a parse, bind and execute each (a seventh of its time in a walk-forward),
# and Postgres arrays cost the client twice what the rows did (psycopg dumps each element).
_UPSERT_EVALUATIONS = """
    INSERT INTO core.evaluations (formula_hash, strategy_id, as_of, decision_time, metrics,
                                  is_alpha, noise_hac_tstat, noise_qualified)
    SELECT h, s, a, d, m, alpha, nt, nq
    FROM json_to_recordset(%s::json) AS rows (
        h text, s text, a date, d timestamptz, m jsonb, alpha bool, nt float8, nq bool)
    ON CONFLICT (formula_hash, strategy_id, decision_time) DO UPDATE
        SET metrics = EXCLUDED.metrics, is_alpha = EXCLUDED.is_alpha,
            noise_hac_tstat = EXCLUDED.noise_hac_tstat,
            noise_qualified = EXCLUDED.noise_qualified, evaluated_at = now()
"""


@dataclass(frozen=True)
class EvaluationRow:
    """The evaluation of a factor for a strategy at a decision time (its data as of then)."""

    formula_hash: str
    strategy_id: str
    as_of: date
    decision_time: datetime
    metrics: Mapping[str, Any]
    is_alpha: bool | None = None
    # on the decision's noise twin (alphafactory.noise); None where it was not scored
    noise_hac_tstat: float | None = None
    noise_qualified: bool | None = None

    def document(self) -> dict:
        """The row as one object of the upsert's JSON document, checked; non-finite floats
        become JSON null."""
        metrics = _json_safe(self.metrics)
        if not isinstance(metrics, dict):
            raise InvalidRecordError(
                f"metrics must be a mapping, got {type(self.metrics).__name__}"
            )
        return {
            "h": require_text(self.formula_hash, "formula_hash"),
            "s": require_text(self.strategy_id, "strategy_id"),
            "a": require_date(self.as_of, "as_of").isoformat(),
            # in UTC: one instant, one key (the batch keeps the later row of a key)
            "d": require_aware(self.decision_time, "decision_time").astimezone(UTC).isoformat(),
            "m": metrics,
            "alpha": self.is_alpha,
            "nt": _json_safe(self.noise_hac_tstat),
            "nq": None if self.noise_qualified is None else bool(self.noise_qualified),
        }


def upsert_evaluations(conn: psycopg.Connection, rows: Sequence[EvaluationRow]) -> None:
    """Store a chunk's evaluations in one statement; every row is checked before any is
    sent, and of two rows with one key the later wins (as two upserts would have it). A
    retried task rewrites the same rows: the same inputs give the same metrics."""
    latest = {}
    for row in rows:
        document = row.document()
        latest[(document["h"], document["s"], document["d"])] = document
    if latest:
        conn.execute(_UPSERT_EVALUATIONS, (_dumps(list(latest.values())),))


def evaluations(
    conn: psycopg.Connection,
    *,
    strategy_id: str,
    decision_time: datetime,
    alphas_only: bool = False,
    request_id: str | None = None,
) -> pd.DataFrame:
    """The evaluations of a strategy at a decision time (of ``request_id``'s candidates
    only, when given): ``formula_hash, formula, is_alpha``, the key metric columns,
    ``metrics`` (dict), ``evaluated_at`` and the noise twin's ``noise_hac_tstat`` and
    ``noise_qualified``; best HAC t-stat first."""
    columns = [
        "formula_hash",
        "formula",
        "is_alpha",
        *KEY_METRICS,
        "metrics",
        "evaluated_at",
        "noise_hac_tstat",
        "noise_qualified",
    ]
    query = sql.SQL(
        """
        SELECT e.formula_hash, f.formula, e.is_alpha, {metrics}, e.metrics, e.evaluated_at,
               e.noise_hac_tstat, e.noise_qualified
        FROM core.evaluations AS e JOIN core.factors AS f USING (formula_hash)
        WHERE e.strategy_id = %(strategy)s AND e.decision_time = %(at)s
          AND (NOT %(alphas)s OR e.is_alpha)
          AND (%(request)s::text IS NULL OR e.formula_hash IN (
              SELECT c.formula_hash FROM core.request_candidates AS c
              WHERE c.request_id = %(request)s::text))
        ORDER BY e.hac_tstat DESC NULLS LAST, e.formula_hash
        """
    ).format(metrics=sql.SQL(", ").join(sql.Identifier("e", m) for m in KEY_METRICS))
    arguments = {
        "strategy": strategy_id,
        "at": require_aware(decision_time, "decision_time"),
        "alphas": alphas_only,
        "request": request_id,
    }
    return pd.DataFrame(conn.execute(query, arguments).fetchall(), columns=columns)


def replace_alpha_pool(
    conn: psycopg.Connection,
    *,
    strategy_id: str,
    as_of: date,
    decision_time: datetime,
    weights: Mapping[str, float],
) -> int:
    """Make ``weights`` (formula_hash -> weight) the pool of a strategy's decision; a retry
    with the same weights leaves the same pool. Returns the number of members."""
    as_of = require_date(as_of, "as_of")
    at = require_aware(decision_time, "decision_time")
    members = [(h, require_finite(w, f"weight of {h!r}")) for h, w in weights.items()]
    with conn.transaction():
        conn.execute(
            "DELETE FROM core.alpha_pools WHERE strategy_id = %s AND decision_time = %s",
            (require_text(strategy_id, "strategy_id"), at),
        )
        if members:
            conn.execute(
                """
                INSERT INTO core.alpha_pools (strategy_id, as_of, decision_time, formula_hash,
                                              weight)
                SELECT %s, %s, %s, * FROM unnest(%s::text[], %s::float8[])
                """,
                (strategy_id, as_of, at, [m[0] for m in members], [m[1] for m in members]),
            )
    return len(members)


def alpha_pool(
    conn: psycopg.Connection, *, strategy_id: str, decision_time: datetime
) -> dict[str, float]:
    rows = conn.execute(
        "SELECT formula_hash, weight FROM core.alpha_pools "
        "WHERE strategy_id = %s AND decision_time = %s ORDER BY formula_hash",
        (strategy_id, require_aware(decision_time, "decision_time")),
    ).fetchall()
    return dict(rows)


def _json_safe(value: Any) -> Any:
    """``value`` with non-finite floats (NaN, inf) replaced by None, recursively."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, Mapping):
        return {str(k): _json_safe(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_json_safe(v) for v in value]
    if hasattr(value, "item"):  # numpy scalars
        return _json_safe(value.item())
    return value


def _dumps(value: Any) -> str:
    try:
        return json.dumps(value, allow_nan=False)
    except (TypeError, ValueError) as e:
        raise InvalidRecordError(f"metrics are not JSON-serialisable: {e}") from e
