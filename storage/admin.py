"""Roles and database: created by the admin (a superuser), idempotently.

Roles (names and passwords from :class:`PostgresSettings`):

- owner: owns the database, its schemas, tables and views; runs the migrations.
- app: the services' login; reads and writes rows, owns and creates nothing.
- trading: ``trading_reader``, SELECT on the views of schema ``trading`` and nothing else.
- viewer: the web dashboard's login, SELECT on every table and view of the owner's
  schemas (later ones too, through the owner's default privileges) and nothing else.

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
    """Create or update the owner, app, trading and viewer roles and the database."""
    roles = [
        (settings.user(role), settings.password(role))
        for role in ("owner", "app", "trading", "viewer")
    ]
    if len({name for name, _ in roles} | {settings.admin_user}) != len(roles) + 1:
        raise BootstrapError(
            f"owner, app, trading, viewer and admin roles must be five different roles, got "
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
            _grant_viewer(conn, settings)
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
    logins = [settings.app_user, settings.trading_user, settings.viewer_user]
    conn.execute(
        sql.SQL("GRANT CONNECT ON DATABASE {} TO {}").format(
            db, sql.SQL(", ").join(map(sql.Identifier, logins))
        )
    )


def _grant_viewer(conn: psycopg.Connection, settings: PostgresSettings) -> None:
    """SELECT for the viewer on every table and view the owner has made or will make.

    The owner's default privileges cover what later migrations create, in any schema, so
    no migration has to remember the dashboard; the grants on what exists now cover a
    database migrated before the viewer role did. USAGE on a schema and SELECT are all it
    gets: no sequence, function, TEMPORARY or CREATE right."""
    owner, viewer = sql.Identifier(settings.owner_user), sql.Identifier(settings.viewer_user)
    for kind in ("USAGE ON SCHEMAS", "SELECT ON TABLES"):
        conn.execute(
            sql.SQL("ALTER DEFAULT PRIVILEGES FOR ROLE {} GRANT " + kind + " TO {}").format(
                owner, viewer
            )
        )
    schemas = conn.execute(
        "SELECT nspname FROM pg_namespace WHERE nspowner = %s::regrole ORDER BY nspname",
        (settings.owner_user,),
    ).fetchall()
    for (name,) in schemas:
        schema = sql.Identifier(name)
        conn.execute(sql.SQL("GRANT USAGE ON SCHEMA {} TO {}").format(schema, viewer))
        conn.execute(
            sql.SQL("GRANT SELECT ON ALL TABLES IN SCHEMA {} TO {}").format(schema, viewer)
        )
