"""Fixtures for the storage tests, on the Postgres server of the session's local stack.

No ``__init__.py`` here on purpose: a package ``tests.storage`` would be one more thing
named ``storage`` next to the real package.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator

import psycopg
import pytest

from alphafactory.settings import PostgresSettings
from storage.admin import bootstrap_database, prepare_database


@pytest.fixture(scope="session")
def pg_settings(stack_settings) -> PostgresSettings:
    """The Postgres server of the session's local stack (tests/conftest.py)."""
    return stack_settings.postgres


@pytest.fixture(scope="session")
def db_settings(pg_settings: PostgresSettings) -> PostgresSettings:
    """The default database, bootstrapped and migrated once for the session."""
    prepare_database(pg_settings)
    return pg_settings


@pytest.fixture
def fresh_db(pg_settings: PostgresSettings) -> Callable[[], PostgresSettings]:
    """Factory of settings naming a new, bootstrapped but unmigrated database."""

    def make() -> PostgresSettings:
        settings = pg_settings.model_copy(update={"database": f"t_{uuid.uuid4().hex[:12]}"})
        bootstrap_database(settings)
        return settings

    return make


@pytest.fixture
def connect_as(db_settings: PostgresSettings) -> Iterator[Callable[..., psycopg.Connection]]:
    """Factory of connections to the migrated database as a role; all closed afterwards."""
    opened: list[psycopg.Connection] = []

    def make(role: str = "app", *, autocommit: bool = False) -> psycopg.Connection:
        conn = psycopg.connect(db_settings.dsn(role), autocommit=autocommit)
        opened.append(conn)
        return conn

    yield make
    for conn in opened:
        conn.close()


@pytest.fixture
def app_conn(connect_as) -> psycopg.Connection:
    """An autocommit connection as the app role: each repository call commits."""
    return connect_as("app", autocommit=True)


@pytest.fixture
def unique() -> Callable[[str], str]:
    """Names unique to the test, so tests sharing the database never see each other's rows."""
    token = uuid.uuid4().hex[:10]
    return lambda name: f"{name}-{token}"
