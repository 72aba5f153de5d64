"""The dashboard's viewer role: SELECT on every table and view of the app's schemas,
later ones included (the owner's default privileges), and nothing else."""

from __future__ import annotations

import psycopg
import pytest

from storage.migrate import migrate

CATALOGUE = """
    SELECT c.oid::regclass::text FROM pg_class AS c
    JOIN pg_namespace AS n ON n.oid = c.relnamespace
    WHERE n.nspname IN ('core', 'trading') AND c.relkind IN ('r', 'v', 'p', 'm')
    ORDER BY 1
"""
WRITES = [
    "INSERT INTO core.dead_letters (topic, payload, error) VALUES ('t', 'p', 'e')",
    "UPDATE core.allocations SET as_of = as_of",
    "DELETE FROM core.generation_requests",
    "TRUNCATE core.reconciler_actions",
    "INSERT INTO core.walkforward_reports (strategy_id, first_month, last_month, report) "
    "VALUES ('s', '2020-01', '2020-02', '{}')",
    "INSERT INTO trading.target_positions (strategy_id, asset) VALUES ('s', 'a')",
    "UPDATE trading.latest_target_positions SET weight = 0",
    "DELETE FROM trading.target_positions",
    "SELECT nextval('core.model_rollouts_rollout_id_seq')",
]
CREATES = [
    *[f"CREATE TABLE {schema}.intruder (id int)" for schema in ("core", "trading", "public")],
    "CREATE VIEW core.intruder AS SELECT 1 AS one",
    "CREATE SCHEMA intruder",
    "CREATE TEMPORARY TABLE intruder (id int)",
    "CREATE FUNCTION public.intruder() RETURNS int LANGUAGE sql AS 'SELECT 1'",
]


def test_the_viewer_reads_every_table_and_view(connect_as):
    relations = [name for (name,) in connect_as("owner").execute(CATALOGUE).fetchall()]
    assert "core.walkforward_reports" in relations and "trading.target_positions" in relations
    viewer = connect_as("viewer", autocommit=True)
    for relation in relations:
        viewer.execute(f"SELECT * FROM {relation} LIMIT 1").fetchall()


@pytest.mark.parametrize("statement", WRITES + CREATES)
def test_the_viewer_can_change_nothing(connect_as, statement):
    viewer = connect_as("viewer", autocommit=True)
    with pytest.raises(psycopg.errors.InsufficientPrivilege):
        viewer.execute(statement)


def test_the_viewer_is_no_superuser_and_owns_nothing(connect_as, db_settings):
    owner = connect_as("owner")
    attributes = owner.execute(
        "SELECT rolcanlogin, rolsuper, rolcreaterole, rolcreatedb, rolbypassrls, rolreplication "
        "FROM pg_roles WHERE rolname = %s",
        (db_settings.viewer_user,),
    ).fetchone()
    assert attributes == (True, False, False, False, False, False)
    owned = owner.execute(
        "SELECT count(*) FROM pg_class WHERE relowner = %(r)s::regrole UNION ALL "
        "SELECT count(*) FROM pg_namespace WHERE nspowner = %(r)s::regrole",
        {"r": db_settings.viewer_user},
    ).fetchall()
    assert owned == [(0,), (0,)]


def test_the_viewer_reads_what_later_migrations_create(fresh_db):
    """A table or view a later migration adds, in any schema the owner makes, is readable
    by the viewer without a grant of its own, and still not writable."""
    settings = fresh_db()
    migrate(settings)
    with psycopg.connect(settings.dsn("owner"), autocommit=True) as owner:
        owner.execute("CREATE TABLE core.added_later (id int)")
        owner.execute("INSERT INTO core.added_later VALUES (7)")
        owner.execute("CREATE SCHEMA reports")
        owner.execute("CREATE VIEW reports.later AS SELECT id FROM core.added_later")
    with psycopg.connect(settings.dsn("viewer"), autocommit=True) as viewer:
        assert viewer.execute("SELECT id FROM core.added_later").fetchall() == [(7,)]
        assert viewer.execute("SELECT id FROM reports.later").fetchall() == [(7,)]
        with pytest.raises(psycopg.errors.InsufficientPrivilege):
            viewer.execute("INSERT INTO core.added_later VALUES (8)")
