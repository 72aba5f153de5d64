"""Role matrix: trading_reader reads the trading views only; the app owns nothing."""

from __future__ import annotations

from datetime import UTC, date, datetime

import psycopg
import pytest

from storage.macro import record_macro_observation

TRADING_VIEWS = ["trading.target_positions", "trading.latest_target_positions"]
INTERNAL_TABLES = [
    "core.macro_observations",
    "core.market_observations",
    "core.factors",
    "core.evaluations",
    "core.alpha_pools",
    "core.allocations",
    "core.positions",
    "core.processed_events",
    "core.dead_letters",
    "core.outbox",
    "core.schema_migrations",
]
CONTRACT_COLUMNS = {
    "strategy_id": "text",
    "allocation_id": "text",
    "as_of": "date",
    "asset": "text",
    "weight": "double precision",
    "created_at": "timestamp with time zone",
    "trigger_event_id": "text",
}

FORBIDDEN_FOR_READER = [
    *[f"INSERT INTO {v} (strategy_id, asset) VALUES ('s', 'a')" for v in TRADING_VIEWS],
    *[f"UPDATE {v} SET weight = 0" for v in TRADING_VIEWS],
    *[f"DELETE FROM {v}" for v in TRADING_VIEWS],
    *[f"CREATE TABLE {schema}.intruder (id int)" for schema in ("trading", "public", "core")],
    "CREATE VIEW trading.intruder AS SELECT 1 AS one",
    "CREATE SCHEMA intruder",
    *[f"SELECT * FROM {table} LIMIT 1" for table in INTERNAL_TABLES],
]


@pytest.mark.parametrize("view", TRADING_VIEWS)
def test_trading_reader_selects_the_views_with_the_contract_columns(connect_as, view):
    conn = connect_as("trading")
    conn.execute(f"SELECT * FROM {view} LIMIT 1").fetchall()
    schema, name = view.split(".")
    columns = dict(
        conn.execute(
            "SELECT column_name, data_type FROM information_schema.columns "
            "WHERE table_schema = %s AND table_name = %s",
            (schema, name),
        ).fetchall()
    )
    assert {k: columns.get(k) for k in CONTRACT_COLUMNS} == CONTRACT_COLUMNS


@pytest.mark.parametrize("statement", FORBIDDEN_FOR_READER)
def test_trading_reader_is_denied(connect_as, statement):
    conn = connect_as("trading", autocommit=True)
    with pytest.raises(psycopg.Error) as caught:
        conn.execute(statement)
    assert caught.value.sqlstate == "42501", caught.value


def test_app_is_no_superuser_and_owns_nothing(connect_as, db_settings):
    conn = connect_as("owner")
    app = db_settings.app_user
    attributes = conn.execute(
        "SELECT rolsuper, rolcreaterole, rolcreatedb, rolbypassrls FROM pg_roles "
        "WHERE rolname = %s",
        (app,),
    ).fetchone()
    assert attributes == (False, False, False, False)
    owned = conn.execute(
        """
        SELECT 'relation ' || oid::regclass::text FROM pg_class WHERE relowner = %(r)s::regrole
        UNION ALL
        SELECT 'schema ' || nspname FROM pg_namespace WHERE nspowner = %(r)s::regrole
        UNION ALL
        SELECT 'database ' || datname FROM pg_database WHERE datdba = %(r)s::regrole
        """,
        {"r": app},
    ).fetchall()
    assert owned == []


@pytest.mark.parametrize("role", ["app", "trading"])
def test_logins_cannot_create_objects(connect_as, role):
    conn = connect_as(role, autocommit=True)
    for statement in ["CREATE TABLE public.t (id int)", "CREATE TABLE core.t (id int)"]:
        with pytest.raises(psycopg.Error) as caught:
            conn.execute(statement)
        assert caught.value.sqlstate == "42501", statement


def test_app_can_insert_an_observation_but_not_revise_it_in_place(connect_as, unique):
    conn = connect_as("app", autocommit=True)
    assert record_macro_observation(
        conn,
        series_id=unique("CPI"),
        period=date(2024, 1, 1),
        value=3.1,
        released_at=datetime(2024, 2, 13, 13, 30, tzinfo=UTC),
        event_id=unique("cpi"),
    )
    with pytest.raises(psycopg.Error) as caught:
        conn.execute(
            "UPDATE core.macro_observations SET value = 0 WHERE event_id = %s", (unique("cpi"),)
        )
    assert caught.value.sqlstate == "42501"


def test_every_internal_table_is_granted_to_the_app_and_hidden_from_the_reader(
    connect_as, db_settings
):
    """Guards the per-migration grant policy: a new core table must be granted to the app."""
    conn = connect_as("owner")
    rows = conn.execute(
        """
        SELECT c.oid::regclass::text,
               has_table_privilege(%(app)s, c.oid, 'SELECT'),
               has_table_privilege(%(reader)s, c.oid, 'SELECT')
        FROM pg_class c
        WHERE c.relnamespace = 'core'::regnamespace AND c.relkind IN ('r', 'v', 'p')
          AND c.relname <> 'schema_migrations'
        """,
        {"app": db_settings.app_user, "reader": db_settings.trading_user},
    ).fetchall()
    assert rows, "no tables found in schema core"
    assert [(name, app, reader) for name, app, reader in rows if not app or reader] == []
