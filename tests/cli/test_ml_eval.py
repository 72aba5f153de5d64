"""`alphafactory ml eval` through the console script (DESIGN.md contract 10)."""

from __future__ import annotations

import json
import math
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from alphafactory.data.panel_files import save_panel
from alphafactory.metrics import CONTRACT_KEYS
from alphafactory.ml.holdout import Holdout, holdout_metrics
from alphafactory.ml.models import MODEL_NAMES
from alphafactory.panel import Panel
from app.cli.ml_cmd import MODELS

SPLIT = "2015-01-01"


def alphafactory(*args: str) -> subprocess.CompletedProcess:
    script = Path(sys.executable).parent / "alphafactory"
    return subprocess.run([str(script), *args], capture_output=True, text=True, timeout=300)


@pytest.fixture(scope="module")
def panel() -> Panel:
    """Monthly, 40 assets; next month's return loads on ``value``, not on ``size``."""
    rng = np.random.default_rng(11)
    dates = np.arange("2005-01", "2020-01", dtype="datetime64[M]").astype("datetime64[ns]")
    t, n = len(dates), 40
    value, size = rng.normal(size=(t, n)), rng.normal(size=(t, n))
    returns = rng.normal(0.005, 0.05, size=(t, n))
    returns[1:] += 0.03 * value[:-1]
    assets = np.array([f"A{i:02d}" for i in range(n)])
    fields = {"returns": returns, "value": value, "size": size}
    return Panel(dates=dates, assets=assets, fields=fields)


@pytest.fixture(scope="module")
def panel_file(panel, tmp_path_factory) -> Path:
    return save_panel(panel, tmp_path_factory.mktemp("ml") / "panel.parquet")


def test_json_is_the_contract_metrics_from_the_split_on(panel, panel_file):
    result = alphafactory(
        "ml", "eval", "--data", str(panel_file), "--model", "ridge", "--split", SPLIT,
        "--horizon", "2", "--json",
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    printed = json.loads(result.stdout)
    expected = holdout_metrics(panel, Holdout("ridge", np.datetime64(SPLIT), horizon=2))
    assert set(CONTRACT_KEYS) <= set(printed)
    for key in CONTRACT_KEYS:
        value = expected[key]
        assert printed[key] == (None if isinstance(value, float) and math.isnan(value) else value)
    assert printed["split"] == "2015-01-01" and printed["features"] == ["value", "size"]
    assert printed["n_periods"] == 59  # 60 months from the split, the last has no next return
    assert printed["feature_importances"]["value"] > printed["feature_importances"]["size"]
    assert printed["ic"] > 0.2 and printed["hyperparameters"] in [
        {"alpha": a} for a in (1.0, 100.0, 10_000.0)
    ]


def test_an_unknown_feature_is_named_with_the_panels_fields(panel_file):
    result = alphafactory(
        "ml", "eval", "--data", str(panel_file), "--model", "lasso", "--split", SPLIT,
        "--features", "value,momentum", "--json",
    )  # fmt: skip
    assert result.returncode == 2
    assert "['momentum']" in result.stderr and "'size'" in result.stderr


def test_a_split_with_nothing_after_it_is_refused(panel_file):
    result = alphafactory(
        "ml", "eval", "--data", str(panel_file), "--model", "ridge", "--split", "2030-01-01"
    )
    assert result.returncode == 2 and "split 2030-01-01 leaves fewer than 2 dates" in result.stderr


def test_the_command_offers_every_model():
    assert MODELS == MODEL_NAMES
