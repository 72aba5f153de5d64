"""`alphafactory factor eval --plot`: PNG tear sheets through the console script."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from alphafactory.data.panel_files import save_panel
from alphafactory.data.synthetic import synthetic_market
from app.cli.tearsheet import write_tearsheet

FORMULA = "-ts_mean(returns, 5)"
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def alphafactory(*args: str) -> subprocess.CompletedProcess:
    script = Path(sys.executable).parent / "alphafactory"
    return subprocess.run([str(script), *args], capture_output=True, text=True, timeout=120)


def assert_png(path: Path) -> None:
    assert path.is_file(), path
    data = path.read_bytes()
    assert data.startswith(PNG_SIGNATURE)
    assert len(data) > 20_000, len(data)


@pytest.fixture(scope="module")
def panel_file(tmp_path_factory):
    market = synthetic_market(n_assets=30, n_dates=200, seed=3, planted=(("reversal", 0.08),))
    return save_panel(market.panel, tmp_path_factory.mktemp("panel") / "p.parquet")


def test_a_single_formula_writes_one_png_and_the_json_is_unchanged(panel_file, tmp_path):
    plot = tmp_path / "sheet.png"
    plain = alphafactory("factor", "eval", FORMULA, "--data", str(panel_file), "--json")
    plotted = alphafactory(
        "factor", "eval", FORMULA, "--data", str(panel_file), "--json", "--plot", str(plot)
    )
    assert plotted.returncode == 0, plotted.stderr
    assert json.loads(plotted.stdout) == json.loads(plain.stdout)
    assert_png(plot)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["sheet.png"]


def test_formulas_write_one_png_per_valid_formula(panel_file, tmp_path):
    formulas = tmp_path / "formulas.txt"
    formulas.write_text(f"{FORMULA}\n# a comment\n__import__('os')\nrank(close)\n")
    out = tmp_path / "out"
    result = alphafactory(
        "factor",
        "eval",
        "--formulas",
        str(formulas),
        "--data",
        str(panel_file),
        "--json",
        "--plot",
        str(out / "sheet.png"),
    )
    assert result.returncode == 1  # the bad line
    assert "error" in json.loads(result.stdout.splitlines()[1])
    assert sorted(p.name for p in out.iterdir()) == ["sheet-1.png", "sheet-3.png"]
    assert_png(out / "sheet-1.png")
    assert_png(out / "sheet-3.png")


def test_a_bad_single_formula_writes_nothing(panel_file, tmp_path):
    plot = tmp_path / "sheet.png"
    result = alphafactory(
        "factor", "eval", "__import__('os')", "--data", str(panel_file), "--plot", str(plot)
    )
    assert result.returncode == 1
    assert not plot.exists()


def test_all_nan_series_still_plot(tmp_path):
    t, q = 30, 5
    dates = np.arange("2020-01-01", t, dtype="datetime64[D]").astype("datetime64[ns]")
    nan = np.full(t, np.nan)
    series = {
        "ic": nan,
        "rank_ic": nan,
        "ls": nan,
        "turnover": nan,
        "quantile_returns": np.full((t, q), np.nan),
    }
    path = write_tearsheet(
        tmp_path / "empty.png",
        formula="close",
        dates=dates,
        series=series,
        metrics={"quantile_mean_returns": [None] * q},
    )
    assert path.read_bytes().startswith(PNG_SIGNATURE)
