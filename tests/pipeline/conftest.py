"""Fixtures for the pipeline tests: a fresh migrated database with a small market loaded,
a strategy on it and an untrained (but grammar-valid) generator.

No ``__init__.py``: these test modules are not importable packages.
"""

from __future__ import annotations

import tomllib
import uuid

import psycopg
import pytest

from alphafactory.data import synthetic_market
from alphafactory.strategy import Strategy
from inference.sampling import InProcessPolicy
from storage.admin import bootstrap_database, prepare_database
from storage.loading import load_panel, load_releases


@pytest.fixture(scope="module")
def market():
    return synthetic_market(n_assets=6, n_dates=120, n_macro=4, seed=21, frequency="M")


@pytest.fixture(scope="module")
def pipeline_db(stack_settings, market):
    """Postgres settings of a new database holding ``market`` (all of it: every read is
    point-in-time, so data after a decision time is present but never visible)."""
    settings = stack_settings.postgres.model_copy(update={"database": f"p_{uuid.uuid4().hex[:12]}"})
    bootstrap_database(settings)
    prepare_database(settings)
    with psycopg.connect(settings.dsn("app"), autocommit=True) as conn:
        load_panel(conn, market.panel)
        load_releases(conn, market.releases)
    return settings


@pytest.fixture
def conn(pipeline_db):
    with psycopg.connect(pipeline_db.dsn("app"), autocommit=True) as connection:
        yield connection


@pytest.fixture(scope="module")
def strategy() -> Strategy:
    return Strategy.model_validate(tomllib.loads(STRATEGY_TOML))


@pytest.fixture(scope="module")
def generator(market):
    from tests.stack_support import untrained_generator

    model, vocab = untrained_generator(market.panel, context=8, d_model=16)
    return InProcessPolicy(model), vocab


@pytest.fixture
def unique_trigger() -> str:
    return f"trigger-{uuid.uuid4().hex[:10]}"


STRATEGY_TOML = """
id = "pipeline_test"
[formulas]
root_kinds = ["macro"]
max_tokens = 8
[alpha]
definition = "hac_tstat >= 0"
# plumbing, not statistics: every candidate that meets the definition is admitted
control = "none"
target = "hac_tstat=3"
training_months = 48
[generation]
candidates = 12
chunk_size = 5
[pool]
probation = 0  # plumbing: traded from admission
size = 4
max_correlation = 0.95
[portfolio]
kind = "long_only"
[triggers]
series = ["M0000"]
[rebalance]
min_days_between = 0
[universe]
data = "store"
"""


@pytest.fixture(scope="module")
def strategies_dir(tmp_path_factory, strategy):
    """The ``strategy`` fixture as a strategy file, for the service processes."""
    from alphafactory.strategy import load_strategies

    directory = tmp_path_factory.mktemp("strategies")
    (directory / "pipeline_test.toml").write_text(STRATEGY_TOML)
    assert load_strategies(directory) == [strategy]  # the services read the same strategy
    return directory


@pytest.fixture(scope="module")
def pipeline_settings(stack_settings, pipeline_db, strategies_dir):
    """Settings of the session stack pointed at the pipeline database and strategy."""
    return stack_settings.model_copy(
        update={
            "postgres": pipeline_db,
            "pipeline": stack_settings.pipeline.model_copy(
                update={"strategies_dir": strategies_dir, "visibility_timeout_s": 8}
            ),
        }
    )


@pytest.fixture(scope="module")
def service_env(pipeline_settings) -> dict[str, str]:
    """The environment that gives a service process ``pipeline_settings``."""
    from tests.stack_support import settings_env

    return settings_env(pipeline_settings)
