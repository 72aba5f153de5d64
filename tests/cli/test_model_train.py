"""`alphafactory model train --strategy ID [--until DATE]` on the real Postgres: the
generator is trained on the strategy's stored point-in-time data, nothing available on or
after ``--until`` included, and the errors say what is missing."""

from __future__ import annotations

import uuid
from datetime import date

import numpy as np
import psycopg
import pytest

from alphafactory.data import synthetic_market
from app.generator_setup import start_of_day
from inference.training import load_checkpoint
from storage.admin import prepare_database
from storage.loading import load_panel, load_releases

STRATEGY = """
id = "user_macro"
[universe]
data = "store"
[formulas]
root_kinds = ["macro"]
max_tokens = 10
"""


@pytest.fixture(scope="module")
def market():
    return synthetic_market(n_assets=5, n_dates=90, n_macro=3, seed=5, frequency="M")


@pytest.fixture
def settings(stack_settings, tmp_path, market):
    """The session stack on a new database holding ``market``, one strategy file."""
    postgres = stack_settings.postgres.model_copy(update={"database": f"m_{uuid.uuid4().hex[:10]}"})
    prepare_database(postgres)
    with psycopg.connect(postgres.dsn("app"), autocommit=True) as conn:
        load_panel(conn, market.panel)
        load_releases(conn, market.releases)
    (tmp_path / "strategies").mkdir()
    (tmp_path / "strategies" / "user.toml").write_text(STRATEGY)
    pipeline = stack_settings.pipeline.model_copy(
        update={
            "strategies_dir": tmp_path / "strategies",
            "generator_checkpoint": tmp_path / "generator.pt",
        }
    )
    return stack_settings.model_copy(update={"postgres": postgres, "pipeline": pipeline})


def _train(cli, settings, *extra: str):
    return cli(
        "model", "train", "--strategy", "user_macro", "--formulas", "60", "--steps", "3",
        "--no-serve", *extra, settings=settings,
    )  # fmt: skip


def test_trains_on_what_was_stored_before_until_only(cli, settings, market):
    dates = market.panel.dates
    until = date.fromisoformat(str(dates[60])[:10])
    code, out, err = _train(cli, settings, "--until", until.isoformat())
    assert code == 0, err
    checkpoint = load_checkpoint(settings.pipeline.generator_checkpoint)
    assert checkpoint.trained_until < start_of_day(until)
    # the last date trained on is the last one published before --until, held-out row aside
    visible = dates[dates < np.datetime64(until)]
    assert checkpoint.reward["split"] == str(visible[-1])[:10]
    assert f"..{str(visible[-2])[:10]}" in out
    operands = set(checkpoint.vocab.operands)
    assert set(market.panel.macro) <= operands and "returns" in operands

    later = date.fromisoformat(str(dates[-1])[:10])
    code, _, err = _train(cli, settings, "--until", later.isoformat())
    assert code == 0, err
    assert load_checkpoint(settings.pipeline.generator_checkpoint).trained_until > (
        checkpoint.trained_until
    )


def test_no_stored_data_before_until_and_an_unknown_strategy_are_named(cli, settings, market):
    first = str(market.panel.dates[0])[:10]
    code, _, err = _train(cli, settings, "--until", first)
    assert code == 2
    assert "strategy 'user_macro' cannot train a generator on the data stored before" in err
    assert "load data first" in err
    code, _, err = cli("model", "train", "--strategy", "nope", settings=settings)
    assert code == 2 and "no strategy 'nope'; known: ['user_macro']" in err
    code, _, err = cli("model", "train", "--steps", "3", settings=settings)
    assert code == 2 and "--strategy ID, or --trajectories, --data, --split, --out" in err
