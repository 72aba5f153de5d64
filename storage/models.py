"""The model registry: generator versions, their rollouts, and what each request used.

A version is registered once per (generator, cutoff): the trainer registering the same
cutoff again (a redelivered training task) gets the stored version back. Versions are
numbered 1, 2, ... per generator under a transaction-scoped advisory lock, so two
trainers never take one number. ``core.model_rollouts`` is append-only: ``promote``
adds a row; ``rollback`` withdraws the promoted version (it is never chosen again) and
promotes the one promoted before it. ``alphafactory.model_versions.choose_version``
decides, from these rows, which version a request uses.
"""

from __future__ import annotations

from datetime import datetime

import psycopg
from psycopg.types.json import Jsonb

from alphafactory.model_versions import ModelVersion
from storage.db import require_aware, require_text
from storage.errors import ConflictError

_COLUMNS = (
    "generator, version, cutoff, trained_until, strategy_id, checkpoint, served_model, "
    "training, ready_at, withdrawn_at, created_at"
)
_LOCK_SPACE = 0x6D6F_6465  # "mode": the advisory lock space of version numbering


class RegistryError(LookupError):
    """A version or rollout that does not exist; the message names it and what does."""


def register_version(
    conn: psycopg.Connection,
    *,
    generator: str,
    cutoff: datetime,
    trained_until: datetime,
    strategy_id: str,
    checkpoint: str,
    served_model: str,
    training: dict | None = None,
) -> ModelVersion:
    """The version for (generator, cutoff): registered now with the next number, or the
    one registered before (same cutoff, same strategy)."""
    require_aware(cutoff, "cutoff")
    require_aware(trained_until, "trained_until")
    if trained_until > cutoff:
        raise ConflictError(
            f"trained_until {trained_until.isoformat()} is after the cutoff "
            f"{cutoff.isoformat()}: the model saw data released after its cutoff"
        )
    with conn.transaction():
        conn.execute("SELECT pg_advisory_xact_lock(%s, hashtext(%s))", (_LOCK_SPACE, generator))
        stored = _by_cutoff(conn, generator, cutoff)
        if stored is not None:
            if stored.strategy_id != strategy_id:
                raise ConflictError(
                    f"{stored.label} (cutoff {cutoff.isoformat()}) was trained for strategy "
                    f"{stored.strategy_id!r}, not {strategy_id!r}"
                )
            return stored
        (number,) = conn.execute(
            "SELECT coalesce(max(version), 0) + 1 FROM core.model_versions WHERE generator = %s",
            (generator,),
        ).fetchone()
        row = conn.execute(
            f"""
            INSERT INTO core.model_versions
                (generator, version, cutoff, trained_until, strategy_id, checkpoint,
                 served_model, training)
            VALUES (%s, %s, %s, %s, %s, %s, %s, %s)
            RETURNING {_COLUMNS}
            """,
            (
                generator,
                number,
                cutoff,
                trained_until,
                require_text(strategy_id, "strategy_id"),
                require_text(checkpoint, "checkpoint"),
                require_text(served_model, "served_model"),
                Jsonb(training or {}),
            ),
        ).fetchone()
    return ModelVersion(*row)


def _by_cutoff(conn, generator: str, cutoff: datetime) -> ModelVersion | None:
    row = conn.execute(
        f"SELECT {_COLUMNS} FROM core.model_versions WHERE generator = %s AND cutoff = %s",
        (generator, cutoff),
    ).fetchone()
    return None if row is None else ModelVersion(*row)


def list_versions(conn: psycopg.Connection, generator: str | None = None) -> list[ModelVersion]:
    """Every version (of ``generator`` when given), by generator and number."""
    rows = conn.execute(
        f"SELECT {_COLUMNS} FROM core.model_versions "
        "WHERE %(g)s::text IS NULL OR generator = %(g)s ORDER BY generator, version",
        {"g": generator},
    ).fetchall()
    return [ModelVersion(*row) for row in rows]


def version_at_cutoff(
    conn: psycopg.Connection, generator: str, cutoff: datetime
) -> ModelVersion | None:
    return _by_cutoff(conn, generator, cutoff)


def mark_ready(conn: psycopg.Connection, generator: str, version: int) -> None:
    """The version is exported and served: requests may use it from now on."""
    conn.execute(
        "UPDATE core.model_versions SET ready_at = coalesce(ready_at, now()) "
        "WHERE generator = %s AND version = %s",
        (generator, version),
    )


def promoted_version(conn: psycopg.Connection, generator: str) -> int | None:
    """The version the latest rollout row promoted (None: never promoted)."""
    row = conn.execute(
        "SELECT version FROM core.model_rollouts WHERE generator = %s "
        "ORDER BY rollout_id DESC LIMIT 1",
        (generator,),
    ).fetchone()
    return None if row is None else int(row[0])


def promote(conn: psycopg.Connection, generator: str, version: int, reason: str = "") -> None:
    """Roll ``version`` out: later requests use it (when its cutoff allows)."""
    with conn.transaction():
        _require_usable(conn, generator, version)
        conn.execute(
            "INSERT INTO core.model_rollouts (generator, version, action, reason) "
            "VALUES (%s, %s, 'promote', %s)",
            (generator, version, reason),
        )


def rollback(conn: psycopg.Connection, generator: str, reason: str = "") -> tuple[int, int]:
    """Withdraw the promoted version and promote the one promoted before it that is still
    usable; returns (withdrawn, now promoted)."""
    with conn.transaction():
        history = [
            int(v)
            for (v,) in conn.execute(
                "SELECT version FROM core.model_rollouts WHERE generator = %s "
                "ORDER BY rollout_id DESC",
                (generator,),
            ).fetchall()
        ]
        if not history:
            raise RegistryError(f"generator {generator or 'default'!r} was never promoted")
        current = history[0]
        withdrawn = {v.version for v in list_versions(conn, generator) if v.withdrawn_at}
        earlier = [v for v in history[1:] if v != current and v not in withdrawn]
        if not earlier:
            raise RegistryError(
                f"{generator or 'default'} v{current} has no earlier promoted version to "
                "roll back to; promote one by number instead"
            )
        conn.execute(
            "UPDATE core.model_versions SET withdrawn_at = now() "
            "WHERE generator = %s AND version = %s",
            (generator, current),
        )
        conn.execute(
            "INSERT INTO core.model_rollouts (generator, version, action, reason) "
            "VALUES (%s, %s, 'rollback', %s)",
            (generator, earlier[0], reason or f"rollback of v{current}"),
        )
    return current, earlier[0]


def _require_usable(conn, generator: str, version: int) -> None:
    versions = {v.version: v for v in list_versions(conn, generator)}
    if version not in versions:
        raise RegistryError(
            f"{generator or 'default'} has no version {version} "
            f"(versions: {sorted(versions) or 'none'})"
        )
    if versions[version].withdrawn_at is not None:
        raise RegistryError(f"{versions[version].label} was rolled back: it is withdrawn")


def record_model_used(
    conn: psycopg.Connection, request_id: str, generator: str, version: int | None
) -> None:
    """Which generator version wrote the request's candidates (set with them)."""
    conn.execute(
        "UPDATE core.generation_requests SET model_generator = %s, model_version = %s "
        "WHERE request_id = %s",
        (generator, version, request_id),
    )


def requests_per_version(conn: psycopg.Connection) -> dict[tuple[str, int], int]:
    """(generator, version) -> how many requests it wrote candidates for."""
    rows = conn.execute(
        "SELECT model_generator, model_version, count(*) FROM core.generation_requests "
        "WHERE model_version IS NOT NULL GROUP BY 1, 2"
    ).fetchall()
    return {(g, int(v)): int(n) for g, v, n in rows}
