"""`alphafactory factor eval` through the console script, against the Python API."""

from __future__ import annotations

import json
import math
import subprocess
import sys
from pathlib import Path

import pytest

from alphafactory.data.panel_files import save_panel
from alphafactory.data.synthetic import synthetic_market
from alphafactory.evaluate import evaluate
from alphafactory.metrics import CONTRACT_KEYS, factor_metrics

FORMULA = "-ts_mean(returns, 5)"


def alphafactory(*args: str) -> subprocess.CompletedProcess:
    script = Path(sys.executable).parent / "alphafactory"
    return subprocess.run([str(script), *args], capture_output=True, text=True, timeout=120)


@pytest.fixture(scope="module")
def market():
    return synthetic_market(n_assets=40, n_dates=260, seed=7, planted=(("reversal", 0.08),))


@pytest.fixture(scope="module", params=["parquet", "csv"])
def panel_file(request, market, tmp_path_factory):
    return save_panel(market.panel, tmp_path_factory.mktemp("panel") / f"p.{request.param}")


def test_json_metrics_equal_the_python_api(panel_file, market):
    result = alphafactory(
        "factor",
        "eval",
        FORMULA,
        "--data",
        str(panel_file),
        "--json",
        "--horizon",
        "2",
        "--quantiles",
        "4",
    )
    assert result.returncode == 0, result.stderr
    printed = json.loads(result.stdout)
    expected = factor_metrics(
        evaluate(FORMULA, market.panel),
        market.panel.returns,
        horizon=2,
        quantiles=4,
        dates=market.panel.dates,
    ).to_dict()
    assert set(CONTRACT_KEYS) <= set(printed)
    for key in CONTRACT_KEYS:
        if isinstance(expected[key], float) and math.isnan(expected[key]):
            assert printed[key] is None
        else:
            assert printed[key] == pytest.approx(expected[key], rel=1e-12, abs=1e-15), key
    assert printed["periods_per_year"] == 252
    assert printed["formula"] == FORMULA


STOCHASTIC = "zscore((close - ts_min(low, 14)) / (ts_max(high, 14) - ts_min(low, 14)))"


def test_a_user_window_outside_the_generator_s_set_is_evaluated(panel_file, market):
    # the 14-day stochastic, as a technician writes it (14 is not a generator window)
    result = alphafactory("factor", "eval", STOCHASTIC, "--data", str(panel_file), "--json")
    assert result.returncode == 0, result.stderr
    printed = json.loads(result.stdout)
    expected = factor_metrics(
        evaluate(STOCHASTIC, market.panel), market.panel.returns, dates=market.panel.dates
    )
    assert printed["ic"] == pytest.approx(expected.ic, rel=1e-12)
    assert printed["n_periods"] == expected.n_periods > 200


def test_a_bad_line_yields_an_error_object_and_the_batch_goes_on(panel_file, tmp_path):
    formulas = tmp_path / "formulas.txt"
    lines = [FORMULA, "# a comment", "ts_mean(close, 1001)", "__import__('os')", "rank(close)"]
    formulas.write_text("\n".join(lines) + "\n")
    result = alphafactory(
        "factor", "eval", "--formulas", str(formulas), "--data", str(panel_file), "--json"
    )
    assert result.returncode == 1
    lines = [json.loads(line) for line in result.stdout.splitlines()]
    assert [line["formula"] for line in lines] == [
        FORMULA,
        "ts_mean(close, 1001)",
        "__import__('os')",
        "rank(close)",
    ]
    assert "ic" in lines[0] and "ic" in lines[3]
    assert "from 1 to 1000" in lines[1]["error"] and "got 1001" in lines[1]["error"]
    assert "error" in lines[2]


def test_a_bad_panel_file_is_named(tmp_path):
    bad = tmp_path / "bad.csv"
    bad.write_text("when,asset,close\n2024-01-02,A,1.0\n")
    result = alphafactory("factor", "eval", FORMULA, "--data", str(bad))
    assert result.returncode == 2
    assert "date" in result.stderr and str(bad) in result.stderr


def test_periods_per_year_override_reaches_the_metrics(tmp_path, market):
    panel_file = save_panel(market.panel, tmp_path / "p.parquet")
    result = alphafactory(
        "factor", "eval", FORMULA, "--data", str(panel_file), "--json", "--periods-per-year", "12"
    )
    assert result.returncode == 0, result.stderr
    printed = json.loads(result.stdout)
    expected = factor_metrics(
        evaluate(FORMULA, market.panel), market.panel.returns, periods_per_year=12
    ).to_dict()
    assert printed["periods_per_year"] == 12
    assert printed["ls_sharpe"] == pytest.approx(expected["ls_sharpe"], rel=1e-12)


def test_an_ml_alpha_text_is_scored_like_a_formula_out_of_sample(panel_file, market):
    """The daily panel's planted reversal (returns over the last week) is learnt from the
    lagged returns: the ML alpha's text is scored like a formula, on its walked-forward
    predictions (from the first fit with enough history: the earlier dates are NaN)."""
    from alphafactory.ml.candidate import candidate_hash, canonical_candidate
    from alphafactory.ml.signal import MIN_TRAIN_ROWS

    text = "ml:ridge(features=[returns], lags=[0, 1, 2, 3, 4], retrain=20, folds=2)"
    result = alphafactory("factor", "eval", text, "--data", str(panel_file), "--json")
    assert result.returncode == 0, result.stderr
    printed = json.loads(result.stdout)
    assert printed["formula"] == canonical_candidate(text)
    assert printed["formula_hash"] == candidate_hash(text)
    assert printed["n_periods"] <= len(market.panel.dates) - MIN_TRAIN_ROWS - 1
    assert printed["ic"] > 0.03  # the planted reversal, learnt before each prediction
