"""Connections: explicit pool lifecycle and the value checks every repository shares.

Nothing here connects at import time; a process opens its pool in ``main()`` (or a
worker's start-up hook) with :func:`open_pool` and closes it on shutdown.
"""

from __future__ import annotations

import math
from datetime import date, datetime

import psycopg
from psycopg import conninfo, pq
from psycopg_pool import ConnectionPool, PoolTimeout

from storage.errors import InvalidRecordError, StorageConnectionError


def redact_dsn(dsn: str) -> str:
    """``dsn`` with its password masked, for error messages and logs."""
    try:
        params = conninfo.conninfo_to_dict(dsn)
    except psycopg.ProgrammingError:
        return "<unparsable dsn>"
    if params.get("password"):
        params["password"] = "***"
    return conninfo.make_conninfo(**params)


def connect(dsn: str, *, autocommit: bool = False, connect_timeout: int = 10) -> psycopg.Connection:
    """One connection, with failures reported as :class:`StorageConnectionError`."""
    try:
        return psycopg.connect(dsn, autocommit=autocommit, connect_timeout=connect_timeout)
    except psycopg.OperationalError as e:
        raise StorageConnectionError(f"cannot connect to {redact_dsn(dsn)}: {e}") from e


def ping(dsn: str, *, timeout_s: float = 3.0) -> None:
    """Connect and run a query: the server accepts logins and answers (psycopg errors
    propagate, for the caller to word)."""
    with psycopg.connect(dsn, connect_timeout=max(1, int(timeout_s))) as conn:
        conn.execute("SELECT 1").fetchone()


def open_pool(
    dsn: str,
    *,
    min_size: int,
    max_size: int,
    name: str = "alphafactory",
    timeout_s: float = 30.0,
    autocommit: bool = True,
) -> ConnectionPool:
    """Open a connection pool and wait until ``min_size`` connections are up.

    Connections are in autocommit mode by default: each repository call commits, and a
    ``with conn.transaction()`` block is a real transaction that is committed when it
    ends. (Without autocommit, the first query would open a transaction that lasts until
    the connection goes back to the pool, and a block inside it would only be a savepoint:
    a service that queued work for other processes before that would hand them rows
    nobody can see yet.)

    The pool is created closed and opened here so that a wrong DSN fails in the caller's
    start-up, not later on the first request. Close it with ``pool.close()``.
    """
    pool = ConnectionPool(
        dsn,
        min_size=min_size,
        max_size=max_size,
        name=name,
        timeout=timeout_s,
        open=False,
        kwargs={"autocommit": autocommit},
    )
    try:
        pool.open(wait=True, timeout=timeout_s)
    except PoolTimeout as e:
        pool.close()
        raise StorageConnectionError(
            f"pool {name!r} could not open {min_size} connection(s) to {redact_dsn(dsn)} "
            f"within {timeout_s} s; is the server up and the password right?"
        ) from e
    return pool


def require_aware(value: datetime, field: str) -> datetime:
    """A timestamp with a time zone; a naive one would be read in the server's zone."""
    if not isinstance(value, datetime):
        raise InvalidRecordError(f"{field} must be a datetime with a time zone, got {value!r}")
    if value.tzinfo is None or value.utcoffset() is None:
        raise InvalidRecordError(
            f"{field} must carry a time zone (e.g. datetime(..., tzinfo=UTC)), got naive {value!r}"
        )
    return value


def require_date(value: date, field: str) -> date:
    """A calendar date; a datetime is accepted only at midnight, so no time is lost."""
    if isinstance(value, datetime):
        if value.time() != datetime.min.time() or value.tzinfo is not None:
            raise InvalidRecordError(f"{field} must be a date, got the timestamp {value!r}")
        return value.date()
    if not isinstance(value, date):
        raise InvalidRecordError(f"{field} must be a date, got {value!r}")
    return value


def require_finite(value: float, field: str) -> float:
    try:
        number = float(value)
    except (TypeError, ValueError) as e:
        raise InvalidRecordError(f"{field} must be a number, got {value!r}") from e
    if not math.isfinite(number):
        raise InvalidRecordError(f"{field} must be finite, got {value!r}")
    return number


def require_text(value: str, field: str) -> str:
    if not isinstance(value, str) or not value.strip():
        raise InvalidRecordError(f"{field} must be a non-empty string, got {value!r}")
    return value


def require_idle(conn: psycopg.Connection, who: str) -> None:
    """``conn.transaction()`` is only the outermost (committing) transaction on an idle
    connection; inside an open one it would be a savepoint, committed by nobody."""
    status = conn.info.transaction_status
    if status != pq.TransactionStatus.IDLE:
        raise RuntimeError(
            f"{who} needs an idle connection, this one is {status.name}; "
            "use an autocommit connection, or commit or roll back first"
        )
