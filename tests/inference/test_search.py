"""Search under a budget: every method, the report, and nothing after the split used."""

from __future__ import annotations

import json
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from alphafactory.data.panel_files import save_panel
from alphafactory.metrics import parse_definition
from inference.model import ModelConfig
from inference.search import SearchConfig, SearchError, run_search, search_report
from inference.trajectories import RewardSpec

pytestmark = pytest.mark.slow
SPLIT_ROW = 90
REPORT_KEYS = {"method", "n_evaluated", "n_valid", "n_unique", "n_qualified", "hit_rate", "best"}


def config(method: str, **overrides) -> SearchConfig:
    small = ModelConfig(vocab_size=1, d_model=16, n_head=2, n_layer=1)
    base = SearchConfig(
        method=method,
        budget=60,
        seed=3,
        reward=RewardSpec("ic"),
        max_tokens=10,
        root_kinds=("macro",),
        train_steps=30,
        model=small,
    )
    return replace(base, **overrides)


@pytest.mark.parametrize("method", ["random", "mcmc", "dt", "bc"])
def test_every_method_stays_within_its_budget_and_reports(panel, vocab, method):
    candidates = run_search(panel.head(SPLIT_ROW), vocab, config(method))
    assert 0 < candidates.n_evaluated <= 60
    assert len(candidates.formulas) <= candidates.n_valid <= candidates.n_evaluated
    definition = parse_definition("ic > 0")
    report = search_report(candidates, config(method), panel, SPLIT_ROW, definition, vocab, top=5)
    assert set(report) >= REPORT_KEYS
    assert report["hit_rate"] == report["n_qualified"] / report["n_evaluated"]
    assert len(report["best"]) == min(5, len(candidates.formulas))
    trains = [entry["train"]["ic"] for entry in report["best"]]
    assert trains == sorted(trains, reverse=True)  # ranked by what the search could see
    qualified = [e for e in report["best"] if (e["test"].get("ic") or 0) > 0]
    assert len(qualified) <= report["n_qualified"]


@pytest.mark.parametrize("method", ["random", "dt"])
def test_data_after_the_split_cannot_change_the_search(panel, vocab, method):
    rng = np.random.default_rng(0)
    changed = replace(
        panel,
        fields={k: v.copy() for k, v in panel.fields.items()},
        macro={k: v.copy() for k, v in panel.macro.items()},
    )
    for values in (*changed.fields.values(), *changed.macro.values()):
        values[SPLIT_ROW:] = rng.normal(size=values[SPLIT_ROW:].shape)
    first = run_search(panel.head(SPLIT_ROW), vocab, config(method))
    second = run_search(changed.head(SPLIT_ROW), vocab, config(method))
    assert [str(f) for f in first.formulas] == [str(f) for f in second.formulas]
    np.testing.assert_array_equal(first.rewards, second.rewards)


def test_bad_settings_are_named():
    with pytest.raises(SearchError, match="'sa' is not one of dt, random, mcmc, bc"):
        SearchConfig(method="sa", budget=100)
    with pytest.raises(SearchError, match="at least 20"):
        SearchConfig(method="random", budget=5)
    with pytest.raises(SearchError, match="target_quantile must be in"):
        SearchConfig(method="dt", budget=100, target_quantile=1.5)
    with pytest.raises(SearchError, match="top_weight must be >= 1"):
        SearchConfig(method="dt", budget=100, top_weight=0.5)


def test_rank_weights_rise_geometrically_from_the_worst_to_the_best():
    from inference.search import _rank_weights

    weights = _rank_weights(np.array([0.5, -1.0, 2.0]), top_weight=16.0)
    np.testing.assert_allclose(weights, [4.0, 1.0, 16.0])
    assert _rank_weights(np.array([0.5, -1.0]), top_weight=1.0) is None


@pytest.mark.parametrize("method", ["random", "mcmc", "dt", "bc"])
def test_the_search_command_prints_one_json_object(panel, tmp_path, method):
    data = save_panel(panel, tmp_path / "macro.parquet")
    macro = [arg for name in sorted(panel.macro) for arg in ("--macro", name)]
    script = Path(sys.executable).parent / "alphafactory"
    result = subprocess.run(
        [
            str(script),
            "search",
            "--data",
            str(data),
            *macro,
            "--method",
            method,
            "--budget",
            "40",
            "--seed",
            "1",
            "--roots",
            "macro",
            "--metric",
            "ic",
            "--train-steps",
            "20",
            "--definition",
            "ic > 0 and n_periods >= 10",
            "--json",
        ],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    assert set(report) >= REPORT_KEYS and report["method"] == method
    assert 0 < report["n_evaluated"] <= 40  # MCMC chains round down to whole steps
    assert report["split"] == str(panel.dates[int(0.7 * (len(panel.dates) - 1))])[:10]
    for entry in report["best"]:
        assert entry["test"]["n_periods"] <= len(panel.dates) - int(0.7 * (len(panel.dates) - 1))
