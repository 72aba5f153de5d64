"""`alphafactory strategy list` through the console script, on the real local Postgres.

Each test writes its strategy files to a temporary directory and points the command at a
private database, so "nothing stored yet" really is nothing.
"""

from __future__ import annotations

import json
import subprocess
import sys
import uuid
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import psycopg
import pytest

from storage.admin import prepare_database
from storage.macro import MacroObservation, record_macro_observations
from tests.stack_support import free_ports, settings_env

RELEASED = datetime(2024, 1, 1, tzinfo=UTC)


STORE = '[universe]\ndata = "store"\n'  # series of the tests' own, not the bundled data


@pytest.fixture(scope="module")
def database(stack_settings):
    settings = stack_settings.postgres.model_copy(update={"database": f"t_{uuid.uuid4().hex[:12]}"})
    prepare_database(settings)
    return settings


@pytest.fixture
def strategies_dir(tmp_path) -> Path:
    """Three strategies: two active (one scheduled, without trigger series), one inactive."""
    files = {
        "rates.toml": f'id = "rates"\n{STORE}[triggers]\nseries = ["us_cpi", "us_payrolls"]\n',
        "monthly.toml": 'id = "monthly"\n[triggers]\nschedule = "monthly"\n',
        "old.toml": f'id = "old"\nactive = false\n{STORE}[triggers]\nseries = ["us_cpi"]\n',
    }
    for name, text in files.items():
        (tmp_path / name).write_text(text)
    return tmp_path


def alphafactory(stack_settings, database, strategies_dir, *args, **env_overrides):
    env = settings_env(stack_settings)
    env.update(
        ALPHAFACTORY_POSTGRES__DATABASE=database.database,
        ALPHAFACTORY_PIPELINE__STRATEGIES_DIR=str(strategies_dir),
        # no generator trained yet, whatever a demo left in the working directory
        ALPHAFACTORY_PIPELINE__GENERATOR_CHECKPOINT=str(strategies_dir / "generator.pt"),
        **env_overrides,
    )
    script = Path(sys.executable).parent / "alphafactory"
    return subprocess.run(
        [str(script), "strategy", "list", *args],
        capture_output=True,
        text=True,
        timeout=120,
        env=env,
    )


def test_json_lists_active_strategies_with_null_coverage_before_any_release(
    stack_settings, database, strategies_dir
):
    result = alphafactory(stack_settings, database, strategies_dir, "--json")

    assert result.returncode == 0, result.stderr
    nothing = ["a generator (alphafactory init)"]
    assert json.loads(result.stdout) == {
        "strategies": [
            {
                "strategy_id": "monthly",
                "trigger_series": [],
                "missing": [
                    "market data: nothing is stored (alphafactory data load --bundled)",
                    *nothing,
                ],
                "stale_series": [],
            },
            {
                "strategy_id": "rates",
                "trigger_series": [
                    {"series_id": "us_cpi", "last_period": None, "frequency": None},
                    {"series_id": "us_payrolls", "last_period": None, "frequency": None},
                ],
                "missing": [
                    "market data: nothing is stored (alphafactory data load --panel FILE)",
                    *nothing,
                ],
                "stale_series": [],
            },
        ]
    }


def test_json_reports_the_newest_stored_period_and_the_inferred_frequency(
    stack_settings, database, tmp_path
):
    # series unique to this test: the module's database keeps the other tests' rows
    cpi, claims, gdp = (f"{name}_{uuid.uuid4().hex[:8]}" for name in ("cpi", "claims", "gdp"))
    (tmp_path / "s.toml").write_text(
        f'id = "s"\n{STORE}[triggers]\nseries = {json.dumps([cpi, claims, gdp])}\n'
    )
    months = [date(2023, m, 1) for m in range(1, 13)]
    weeks = [date(2024, 1, 5) + timedelta(weeks=w) for w in range(8)]
    observations = [
        *(
            MacroObservation(cpi, p, 1.0, RELEASED + timedelta(days=i), f"{cpi}:{i}")
            for i, p in enumerate(months)
        ),
        MacroObservation(cpi, months[-1], 2.0, RELEASED + timedelta(days=99), f"{cpi}:rev"),
        *(
            MacroObservation(claims, p, 1.0, RELEASED + timedelta(days=i), f"{claims}:{i}")
            for i, p in enumerate(weeks)
        ),
        MacroObservation(gdp, date(2023, 10, 1), 1.0, RELEASED, f"{gdp}:0"),
    ]
    with psycopg.connect(database.dsn("app"), autocommit=True) as conn:
        record_macro_observations(conn, observations=observations)

    result = alphafactory(stack_settings, database, tmp_path, "--json")

    assert result.returncode == 0, result.stderr
    (listed,) = json.loads(result.stdout)["strategies"]
    assert listed["strategy_id"] == "s"
    assert listed["trigger_series"] == [
        {"series_id": cpi, "last_period": "2023-12-01", "frequency": "M"},
        {"series_id": claims, "last_period": "2024-02-23", "frequency": "W"},
        {"series_id": gdp, "last_period": "2023-10-01", "frequency": None},
    ]
    # released in 2024 and not since: more than 3 cadences ago, so decisions read the
    # monthly and weekly series as missing; a single period has no cadence to outlive
    stale = {s["series_id"]: s for s in listed["stale_series"]}
    assert {cpi, claims} <= set(stale) and gdp not in stale
    assert stale[cpi]["last_released_at"].startswith("2024-04-09")  # the revision's date
    assert stale[claims]["cadence_days"] == 7.0
    text = alphafactory(stack_settings, database, tmp_path).stdout
    assert "stopped series read as missing" in text and cpi in text


def test_without_json_a_table_with_one_row_per_trigger_series(
    stack_settings, database, strategies_dir
):
    result = alphafactory(stack_settings, database, strategies_dir)

    assert result.returncode == 0, result.stderr
    table, readiness = result.stdout.split("\n\n")
    lines = [line.split() for line in table.splitlines()]
    assert lines == [
        ["STRATEGY", "SERIES", "LAST", "PERIOD", "FREQ"],
        ["monthly", "(no", "trigger", "series)", "-", "-"],
        ["rates", "us_cpi", "-", "-"],
        ["rates", "us_payrolls", "-", "-"],
    ]
    assert readiness.splitlines()[1] == (
        "rates: cannot run yet; missing market data: nothing is stored "
        "(alphafactory data load --panel FILE); a generator (alphafactory init)"
    )


def test_what_a_strategy_on_loaded_data_still_lacks_is_listed(stack_settings, tmp_path):
    """A store strategy naming assets, a group, an operand and a trigger series: each one
    not stored is listed, and the list empties once the data and a generator are there."""
    from alphafactory.data import synthetic_market
    from alphafactory.observations import MarketObservations
    from storage.loading import load_observations, load_releases

    database = stack_settings.postgres.model_copy(update={"database": f"t_{uuid.uuid4().hex[:12]}"})
    prepare_database(database)
    market = synthetic_market(n_assets=3, n_dates=30, n_macro=2, seed=1, frequency="M")
    wanted = '[universe]\ndata = "store"\nassets = ["A00000", "ZZZ"]\ngroup = "region"\n'
    (tmp_path / "s.toml").write_text(
        f'id = "s"\n{wanted}group_codes = [1]\n[formulas]\noperands = ["M0000", "pmi"]\n'
        '[triggers]\nseries = ["M0001", "nfp"]\n'
        '[ml]\nmodels = ["ridge"]\nfeatures = ["library", "M0001", "gdp"]\n'
    )
    with psycopg.connect(database.dsn("app"), autocommit=True) as conn:
        load_observations(conn, MarketObservations.from_panel(market.panel))
        load_releases(conn, market.releases)

    result = alphafactory(stack_settings, database, tmp_path, "--json")

    assert result.returncode == 0, result.stderr
    (listed,) = json.loads(result.stdout)["strategies"]
    assert listed["missing"] == [
        "universe assets not stored: ZZZ",
        "universe group 'region' not stored (a group:region column)",
        "operands neither a stored field nor series: pmi",
        "[ml] features neither a stored field nor series: gdp",
        "trigger series with no stored release: nfp",
        "a generator (alphafactory init, or model train --strategy s)",
    ]
    (tmp_path / "s.toml").write_text(
        'id = "s"\n[universe]\ndata = "store"\nassets = ["A00000"]\ngroup = "sector"\n'
        'group_codes = [0, 1]\n[triggers]\nseries = ["M0001"]\n'
    )
    (tmp_path / "generator.pt").write_bytes(b"present")
    result = alphafactory(stack_settings, database, tmp_path, "--json")
    assert json.loads(result.stdout)["strategies"][0]["missing"] == []


def test_an_invalid_strategy_file_exits_2_naming_it(stack_settings, database, strategies_dir):
    (strategies_dir / "broken.toml").write_text('id = "broken"\n[generation]\ncandidates = 0\n')

    result = alphafactory(stack_settings, database, strategies_dir, "--json")

    assert result.returncode == 2
    assert "broken.toml" in result.stderr and "generation.candidates" in result.stderr
    assert result.stdout == ""


def test_an_unreachable_database_exits_1(stack_settings, database, strategies_dir):
    (closed,) = free_ports(1)

    result = alphafactory(
        stack_settings, database, strategies_dir, "--json", ALPHAFACTORY_POSTGRES__PORT=str(closed)
    )

    assert result.returncode == 1
    assert "cannot read the stored releases" in result.stderr and str(closed) in result.stderr
    assert result.stdout == ""
