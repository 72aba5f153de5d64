"""Versioned schema migrations, applied in order by the owner role.

Files are ``storage/migrations/NNNN_name.sql``. Each pending file is applied in its own
transaction together with its row in ``core.schema_migrations``, so a failing file leaves
nothing behind. An applied file must never change: its SHA-256 is recorded and a mismatch
stops the run. The runner itself creates schema ``core`` and the bookkeeping table; the
files create everything else.

Inside a file, ``{app_role}``, ``{trading_role}`` and ``{owner_role}`` are replaced by the
roles named in the settings, quoted as identifiers by :mod:`psycopg.sql`; literal braces
must be doubled (``'{{}}'::jsonb``).
"""

from __future__ import annotations

import hashlib
import logging
import re
from dataclasses import dataclass
from pathlib import Path

import psycopg
from psycopg import sql

from alphafactory.settings import PostgresSettings
from storage.db import connect
from storage.errors import MigrationChecksumError, MigrationError

log = logging.getLogger(__name__)

MIGRATIONS_DIR = Path(__file__).resolve().parent / "migrations"
# An arbitrary constant shared by every migrating process: the advisory lock serialises
# concurrent `stack up` / `db migrate` runs against one database.
ADVISORY_LOCK_KEY = 0x616C_7068_615F_6D67  # "alpha_mg"
_FILE_NAME = re.compile(r"^(?P<version>\d{4})_(?P<name>[a-z0-9_]+)\.sql$")

_BOOKKEEPING = """
CREATE SCHEMA IF NOT EXISTS core;
CREATE TABLE IF NOT EXISTS core.schema_migrations (
    version    text PRIMARY KEY,
    name       text NOT NULL,
    checksum   text NOT NULL,
    applied_at timestamptz NOT NULL DEFAULT now()
);
"""


@dataclass(frozen=True)
class Migration:
    version: str
    name: str
    path: Path
    checksum: str

    @property
    def text(self) -> str:
        return self.path.read_text(encoding="utf-8")


def discover(directory: Path = MIGRATIONS_DIR) -> list[Migration]:
    """The migration files of ``directory`` in version order; malformed names are errors."""
    if not directory.is_dir():
        raise MigrationError(f"migrations directory {directory} does not exist")
    migrations: dict[str, Migration] = {}
    for path in sorted(directory.glob("*.sql")):
        match = _FILE_NAME.match(path.name)
        if match is None:
            raise MigrationError(
                f"migration file {path} is not named NNNN_lowercase_name.sql; rename it"
            )
        version = match["version"]
        if version in migrations:
            raise MigrationError(
                f"migration version {version} is used by both {migrations[version].path.name} "
                f"and {path.name}; give one of them the next free number"
            )
        checksum = hashlib.sha256(path.read_bytes()).hexdigest()
        migrations[version] = Migration(version, match["name"], path, checksum)
    return [migrations[v] for v in sorted(migrations)]


def migrate(settings: PostgresSettings, *, directory: Path = MIGRATIONS_DIR) -> list[str]:
    """Apply the pending migrations; returns the versions applied now (empty if none).

    Connects as the owner role (run :func:`storage.admin.bootstrap_database` first).
    Raises :class:`MigrationChecksumError` if an applied file was edited, and
    :class:`MigrationError` for unknown applied versions or a file that fails.
    """
    migrations = discover(directory)
    with connect(settings.dsn("owner"), autocommit=True) as conn:
        # Session-level lock: held across the per-file transactions below.
        conn.execute("SELECT pg_advisory_lock(%s)", (ADVISORY_LOCK_KEY,))
        try:
            conn.execute(_BOOKKEEPING)
            applied = _applied(conn)
            pending = _pending(migrations, applied)
            for migration in pending:
                _apply(conn, migration, _role_identifiers(settings))
        finally:
            conn.execute("SELECT pg_advisory_unlock(%s)", (ADVISORY_LOCK_KEY,))
    return [m.version for m in pending]


def applied_versions(settings: PostgresSettings) -> list[str]:
    """The versions recorded in the database, oldest first (empty before the first run)."""
    with connect(settings.dsn("owner"), autocommit=True) as conn:
        exists = conn.execute("SELECT to_regclass('core.schema_migrations')").fetchone()[0]
        if exists is None:
            return []
        return sorted(_applied(conn))


def _applied(conn: psycopg.Connection) -> dict[str, tuple[str, str]]:
    rows = conn.execute("SELECT version, name, checksum FROM core.schema_migrations").fetchall()
    return {version: (name, checksum) for version, name, checksum in rows}


def _pending(migrations: list[Migration], applied: dict[str, tuple[str, str]]) -> list[Migration]:
    """Check the applied history against the files and return the files still to apply."""
    by_version = {m.version: m for m in migrations}
    for version, (name, checksum) in sorted(applied.items()):
        migration = by_version.get(version)
        if migration is None:
            raise MigrationError(
                f"the database has migration {version}_{name} applied but no such file exists "
                f"here; this code is older than the database schema"
            )
        if migration.checksum != checksum:
            raise MigrationChecksumError(
                f"migration file {migration.path} changed after it was applied (recorded sha256 "
                f"{checksum}, file now {migration.checksum}); restore it and put the change in "
                f"a new migration"
            )
    pending = [m for m in migrations if m.version not in applied]
    newest = max(applied, default="")
    for migration in pending:
        if migration.version < newest:
            raise MigrationError(
                f"migration file {migration.path.name} is older than the applied version "
                f"{newest}; renumber it after {newest}"
            )
    return pending


def _role_identifiers(settings: PostgresSettings) -> dict[str, sql.Identifier]:
    return {
        "owner_role": sql.Identifier(settings.owner_user),
        "app_role": sql.Identifier(settings.app_user),
        "trading_role": sql.Identifier(settings.trading_user),
    }


def _apply(conn: psycopg.Connection, migration: Migration, roles: dict) -> None:
    try:
        statement = sql.SQL(migration.text).format(**roles)
    except (KeyError, ValueError, IndexError) as e:
        raise MigrationError(
            f"migration file {migration.path} has a bad placeholder ({e!r}); use "
            f"{{app_role}}, {{trading_role}} or {{owner_role}} and double literal braces"
        ) from e
    try:
        with conn.transaction():
            conn.execute(statement)
            conn.execute(
                "INSERT INTO core.schema_migrations (version, name, checksum) VALUES (%s, %s, %s)",
                (migration.version, migration.name, migration.checksum),
            )
    except psycopg.Error as e:
        raise MigrationError(f"migration file {migration.path} failed: {e}") from e
    log.info("applied migration %s_%s", migration.version, migration.name)
