"""Migrations: from empty, idempotent re-runs, refused edits, concurrent runners; bootstrap."""

from __future__ import annotations

import shutil
import threading
import uuid

import psycopg
import pytest
from pydantic import SecretStr

from storage.admin import bootstrap_database
from storage.errors import MigrationChecksumError, MigrationError
from storage.migrate import MIGRATIONS_DIR, applied_versions, discover, migrate

CATALOG_QUERIES = {
    "columns": """
        SELECT table_schema, table_name, column_name, ordinal_position, data_type,
               is_nullable, column_default, generation_expression
        FROM information_schema.columns WHERE table_schema IN ('core', 'trading')
        ORDER BY 1, 2, 4""",
    "views": """
        SELECT schemaname, viewname, viewowner, definition FROM pg_views
        WHERE schemaname IN ('core', 'trading') ORDER BY 1, 2""",
    "indexes": """
        SELECT schemaname, tablename, indexname, indexdef FROM pg_indexes
        WHERE schemaname IN ('core', 'trading') ORDER BY 1, 2, 3""",
    "constraints": """
        SELECT conrelid::regclass::text, conname, pg_get_constraintdef(oid) FROM pg_constraint
        WHERE connamespace IN ('core'::regnamespace, 'trading'::regnamespace) ORDER BY 1, 2""",
    "relations": """
        SELECT n.nspname, c.relname, c.relkind, pg_get_userbyid(c.relowner), c.relacl::text
        FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
        WHERE n.nspname IN ('core', 'trading') ORDER BY 1, 2""",
    "schemas": """
        SELECT nspname, pg_get_userbyid(nspowner), nspacl::text FROM pg_namespace
        WHERE nspname IN ('core', 'trading', 'public') ORDER BY 1""",
    "triggers": """
        SELECT tgrelid::regclass::text, tgname, pg_get_triggerdef(oid) FROM pg_trigger
        WHERE NOT tgisinternal ORDER BY 1, 2""",
    "functions": """
        SELECT p.oid::regprocedure::text, pg_get_userbyid(p.proowner), p.proacl::text,
               md5(p.prosrc)
        FROM pg_proc p WHERE p.pronamespace IN ('core'::regnamespace, 'trading'::regnamespace)
        ORDER BY 1""",
    "default_acl": "SELECT defaclnamespace::regnamespace::text, defaclobjtype, defaclacl::text "
    "FROM pg_default_acl ORDER BY 1, 2",
}


def catalog_dump(settings) -> dict[str, list[tuple]]:
    with psycopg.connect(settings.dsn("owner")) as conn:
        return {name: conn.execute(q).fetchall() for name, q in CATALOG_QUERIES.items()}


def test_migrations_apply_from_empty_and_rerun_changes_nothing(fresh_db):
    settings = fresh_db()
    expected = [m.version for m in discover()]

    assert applied_versions(settings) == []
    assert migrate(settings) == expected
    first = catalog_dump(settings)
    assert migrate(settings) == []
    assert catalog_dump(settings) == first
    assert applied_versions(settings) == expected
    views = {(schema, name) for schema, name, _, _ in first["views"]}
    assert {("trading", "target_positions"), ("trading", "latest_target_positions")} <= views


def test_edited_applied_migration_is_refused_naming_the_file(fresh_db, tmp_path):
    settings = fresh_db()
    directory = tmp_path / "migrations"
    shutil.copytree(MIGRATIONS_DIR, directory)
    migrate(settings, directory=directory)
    edited = discover(directory)[0].path
    edited.write_text(edited.read_text() + "\n-- an innocent-looking edit\n")

    with pytest.raises(MigrationChecksumError, match=edited.name):
        migrate(settings, directory=directory)


def test_applied_version_without_a_file_is_refused(fresh_db, tmp_path):
    settings = fresh_db()
    directory = tmp_path / "migrations"
    shutil.copytree(MIGRATIONS_DIR, directory)
    migrate(settings, directory=directory)
    for path in directory.glob("*.sql"):
        path.unlink()

    with pytest.raises(MigrationError, match="no such file"):
        migrate(settings, directory=directory)


@pytest.mark.parametrize("name", ["1_short.sql", "0002-dash.sql", "0002_Upper.sql"])
def test_badly_named_file_is_refused(tmp_path, name):
    (tmp_path / name).write_text("SELECT 1;")
    with pytest.raises(MigrationError, match=name):
        discover(tmp_path)


def test_failing_migration_leaves_nothing_behind(fresh_db, tmp_path):
    settings = fresh_db()
    directory = tmp_path / "migrations"
    shutil.copytree(MIGRATIONS_DIR, directory)
    migrate(settings, directory=directory)
    (directory / "9999_broken.sql").write_text(
        "CREATE TABLE core.half_done (id int);\nSELECT no_such_column FROM core.factors;\n"
    )

    with pytest.raises(MigrationError, match="9999_broken.sql"):
        migrate(settings, directory=directory)
    with psycopg.connect(settings.dsn("owner")) as conn:
        assert conn.execute("SELECT to_regclass('core.half_done')").fetchone()[0] is None
    assert "9999" not in applied_versions(settings)


def test_concurrent_runs_apply_each_migration_once(fresh_db):
    settings = fresh_db()
    results: list[list[str]] = []
    errors: list[BaseException] = []
    barrier = threading.Barrier(3)

    def run() -> None:
        barrier.wait()
        try:
            results.append(migrate(settings))
        except BaseException as e:
            errors.append(e)

    threads = [threading.Thread(target=run) for _ in range(3)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)

    assert errors == []
    assert sorted(v for r in results for v in r) == [m.version for m in discover()]


def test_bootstrap_is_idempotent_and_updates_passwords(pg_settings):
    token = uuid.uuid4().hex[:8]
    settings = pg_settings.model_copy(
        update={
            "database": f"boot_{token}",
            "owner_user": f"owner_{token}",
            "app_user": f"app_{token}",
            "trading_user": f"reader_{token}",
        }
    )
    bootstrap_database(settings)
    bootstrap_database(settings)
    changed = settings.model_copy(update={"app_password": SecretStr("a-new-secret")})
    bootstrap_database(changed)

    with psycopg.connect(changed.dsn("app")) as conn:
        assert conn.execute("SELECT current_user").fetchone()[0] == f"app_{token}"
    with pytest.raises(psycopg.OperationalError, match="password authentication failed"):
        psycopg.connect(settings.dsn("app"))
    with psycopg.connect(settings.dsn("admin")) as conn:
        owner = conn.execute(
            "SELECT pg_get_userbyid(datdba) FROM pg_database WHERE datname = %s",
            (settings.database,),
        ).fetchone()[0]
    assert owner == settings.owner_user
