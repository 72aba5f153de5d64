"""report.json is strict JSON (a metric that is undefined, such as the Sharpe of a flat
series, is null, not NaN) and report.html is one file with its plots embedded."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd

from app.walkforward_html import write_report


def _report() -> dict:
    record = {
        "kind": "pool",
        "n_rebalances": 3,
        "cumulative_return": 0.01,
        "cagr": 0.04,
        "volatility": 0.0,
        "sharpe": float("nan"),
        "max_drawdown": 0.0,
        "turnover": 0.1,
        "excess_return": np.float64(0.002),
        "information_ratio": float("inf"),
        "excess_hac_tstat": 1.5,
        "in_sample_sharpe": 0.8,
        "mean_pool_size": 2.0,
        "alpha_survival": {"runs": 2, "mean": 1.5, "median": 1.5, "share_12": 0.0},
    }
    return {
        "strategy": "s",
        "from": "2001-01",
        "to": "2001-03",
        "variants": {"pool10": record},
        "models": [
            {
                "version": 1,
                "cutoff": "2001-01-01T00:00:00+00:00",
                "trained_until": "2000-12-01T00:00:00+00:00",
                "first_decision": "2001-01-15T00:00:00+00:00",
                "requests": 3,
                "candidates": 30,
                "alphas": np.int64(2),
                "hit_rate": 2 / 30,
                "ic_decay": {"alphas": 2, "in_sample": 0.05, "months": [0.03, float("nan")]},
            }
        ],
        "pool_sizes": {"rows": []},
        "settings": {
            "candidates": 10,
            "retrain_every_months": 1,
            "alpha_definition": "hac_tstat >= 2",
            "benchmark": "risk parity",
        },
    }


def test_undefined_metrics_are_null_and_the_page_embeds_its_plots(tmp_path):
    index = pd.date_range("2001-01-31", periods=3, freq="ME", tz="UTC")
    series = {"pool10": pd.Series([0.01, -0.02, 0.015], index=index)}
    json_path, html_path = write_report(tmp_path, _report(), series)
    text = json_path.read_text()
    assert "NaN" not in text and "Infinity" not in text
    loaded = json.loads(text)
    assert loaded["variants"]["pool10"]["sharpe"] is None
    assert loaded["variants"]["pool10"]["information_ratio"] is None
    assert loaded["variants"]["pool10"]["excess_return"] == 0.002
    assert loaded["models"][0]["ic_decay"]["months"] == [0.03, None]
    page = html_path.read_text()
    assert page.count('src="data:image/png;base64,') == 3
    assert "<td>pool10</td>" in page


def test_the_run_strategy_keeps_its_chunks_per_request_at_another_candidate_count(tmp_path):
    """2,000 candidates of the bundled strategy (200 in chunks of 50) are 4 chunks of 500,
    not 40 of 50; the count of its own is left as it is."""
    from datetime import UTC, datetime
    from pathlib import Path

    import alphafactory
    from app.walkforward_run import Plan, write_strategy

    source = Path(alphafactory.__file__).parent / "strategies" / "macro_allocation.toml"

    def plan(candidates):
        start = datetime(2001, 1, 1, tzinfo=UTC)
        return Plan("macro_allocation", start, start, tmp_path, ("pool10",), 12, candidates)

    own = write_strategy(plan(None), source).generation
    assert (own.candidates, own.chunk_size) == (200, 50)
    scaled = write_strategy(plan(2000), source).generation
    assert (scaled.candidates, scaled.chunk_size) == (2000, 500)
    odd = write_strategy(plan(333), source).generation
    assert (odd.candidates, odd.chunk_size) == (333, 84)  # 4 chunks: 84, 84, 84, 81


def test_an_ml_variant_asks_the_run_strategy_for_its_model(tmp_path):
    from datetime import UTC, datetime
    from pathlib import Path

    import alphafactory
    from app.walkforward_run import Plan, write_strategy

    source = Path(alphafactory.__file__).parent / "strategies" / "macro_allocation.toml"
    start = datetime(2001, 1, 1, tzinfo=UTC)
    variants = ("pool10", "lightgbm", "combo_lightgbm")
    written = write_strategy(Plan("macro_allocation", start, start, tmp_path, variants, 12), source)
    assert written.variants.names == variants
    assert written.ml.models == ("lightgbm",) and len(written.ml.candidates()) == 1
    plain = write_strategy(
        Plan("macro_allocation", start, start, tmp_path, ("pool10",), 12), source
    )
    assert plain.ml.models == ()


def test_the_command_accepts_an_ml_variant_the_strategy_does_not_have_yet():
    from pathlib import Path

    import pytest

    import alphafactory
    from alphafactory.variant_names import VariantError
    from app.cli.walkforward_cmd import _variants

    source = Path(alphafactory.__file__).parent / "strategies" / "macro_allocation.toml"
    assert _variants("pool10, lightgbm", source) == ("pool10", "lightgbm")
    with pytest.raises(VariantError, match="'forest' is not one of"):
        _variants("pool10,forest", source)
