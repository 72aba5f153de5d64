"""Roles and database: created by the admin (a superuser), idempotently.

Roles (names and passwords from :class:`PostgresSettings`):

- owner: owns the database, its schemas, tables and views; runs the migrations.
- app: the services' login; reads and writes rows, owns and creates nothing.
- trading: ``trading_reader``, SELECT on the views of schema ``trading`` and nothing else.

Re-running updates the passwords and attributes, so a changed setting takes effect.
Passwords are sent as SCRAM verifiers computed by libpq, never as plain text, so they do not
appear in the server's statement log.
"""

from __future__ import annotations

import logging

import psycopg
from psycopg import sql

from alphafactory.settings import PostgresSettings
from storage.db import connect
from storage.errors import BootstrapError
from storage.migrate import migrate

log = logging.getLogger(__name__)

# No role but the admin may create roles, databases or bypass row security.
BOOTSTRAP_LOCK_KEY = 0x616C_7068_615F_6273  # "alpha_bs"
_ATTRIBUTES = "LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE NOREPLICATION NOBYPASSRLS INHERIT"


def bootstrap_database(settings: PostgresSettings) -> None:
    """Create or update the owner, app and trading roles and the database."""
    roles = [
        (settings.owner_user, settings.password("owner")),
        (settings.app_user, settings.password("app")),
        (settings.trading_user, settings.password("trading")),
    ]
    if len({name for name, _ in roles} | {settings.admin_user}) != 4:
        raise BootstrapError(
            f"owner, app, trading and admin roles must be four different roles, got "
            f"{[name for name, _ in roles] + [settings.admin_user]}"
        )
    try:
        with connect(settings.dsn("admin", database="postgres"), autocommit=True) as conn:
            # Two concurrent `stack up` runs would otherwise race on CREATE ROLE.
            conn.execute("SELECT pg_advisory_lock(%s)", (BOOTSTRAP_LOCK_KEY,))
            for name, password in roles:
                _ensure_role(conn, name, password)
            _ensure_database(conn, settings)
        with connect(settings.dsn("admin"), autocommit=True) as conn:
            # PUBLIC may not create objects anywhere: only the owner builds the schema.
            conn.execute("REVOKE CREATE ON SCHEMA public FROM PUBLIC")
    except psycopg.Error as e:
        raise BootstrapError(
            f"bootstrapping database {settings.database!r} on {settings.host}:{settings.port} "
            f"as {settings.admin_user!r} failed: {e}"
        ) from e


def prepare_database(settings: PostgresSettings, *, bootstrap: bool = True) -> list[str]:
    """Bootstrap (unless ``bootstrap=False``, for servers whose admin we do not hold) and
    migrate; returns the migration versions applied now."""
    if bootstrap:
        bootstrap_database(settings)
    return migrate(settings)


def _ensure_role(conn: psycopg.Connection, name: str, password: str) -> None:
    exists = conn.execute("SELECT 1 FROM pg_roles WHERE rolname = %s", (name,)).fetchone()
    verb = sql.SQL("ALTER ROLE" if exists else "CREATE ROLE")
    statement = sql.SQL("{} {} WITH " + _ATTRIBUTES + " PASSWORD {}").format(
        verb, sql.Identifier(name), sql.Literal(_verifier(conn, name, password))
    )
    conn.execute(statement)
    log.info("%s role %s", "updated" if exists else "created", name)


def _verifier(conn: psycopg.Connection, name: str, password: str) -> str | None:
    """The password as the server will store it (SCRAM), or None for no password."""
    if not password:
        return None
    raw = conn.pgconn.encrypt_password(password.encode(), name.encode())
    return raw.decode("ascii")


def _ensure_database(conn: psycopg.Connection, settings: PostgresSettings) -> None:
    db = sql.Identifier(settings.database)
    owner = sql.Identifier(settings.owner_user)
    exists = conn.execute(
        "SELECT 1 FROM pg_database WHERE datname = %s", (settings.database,)
    ).fetchone()
    if exists:
        conn.execute(sql.SQL("ALTER DATABASE {} OWNER TO {}").format(db, owner))
    else:
        conn.execute(sql.SQL("CREATE DATABASE {} OWNER {}").format(db, owner))
        log.info("created database %s", settings.database)
    # Default PUBLIC rights (CONNECT, TEMPORARY) would let any cluster login in.
    conn.execute(sql.SQL("REVOKE ALL ON DATABASE {} FROM PUBLIC").format(db))
    conn.execute(
        sql.SQL("GRANT CONNECT ON DATABASE {} TO {}, {}").format(
            db, sql.Identifier(settings.app_user), sql.Identifier(settings.trading_user)
        )
    )
