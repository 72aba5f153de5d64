"""What is judged is what is traded (alphafactory.traded): a tilt or long-only strategy's
candidates are scored on the position it would build from each alone, beyond what a
signal with no information would hold, and that score is centred where there is nothing."""

from __future__ import annotations

from datetime import UTC, datetime

import numpy as np
import pytest

from alphafactory.data.macro_markets import CLASS_GROUP, macro_market
from alphafactory.decision import decision_panel, evaluate_formulas, scoring_options
from alphafactory.noise import noise_twin
from alphafactory.strategy import Strategy


def strategy(kind: str) -> Strategy:
    return Strategy.model_validate(
        {
            "id": f"traded-{kind}",
            "alpha": {"definition": "hac_tstat >= 2", "training_months": 120},
            "portfolio": {
                "kind": kind,
                "risk_parity_group": CLASS_GROUP,
                "benchmark_excludes": ["CASH"],
            },
        }
    )


@pytest.fixture(scope="module")
def null_panel():
    market = macro_market(seed=2, n_planted=1, null=True)
    at = datetime(2016, 12, 20, tzinfo=UTC)
    releases = market.releases[market.releases["released_at"] <= at]
    formulas = [
        template.format(series)
        for series in market.series["series_id"]
        for template in ("ts_zscore({}, 12)", "delta({}, 3)", "{}", "-ts_mean({}, 6)")
    ]
    return decision_panel(market.panel, releases, at, 360), formulas


def test_only_a_long_short_strategy_keeps_the_quantile_long_short():
    assert scoring_options(strategy("long_short")).position is None
    for kind in ("tilt", "long_only"):
        rule = scoring_options(strategy(kind)).position
        assert rule.kind == kind and rule.group == CLASS_GROUP and rule.excludes == ("CASH",)


@pytest.mark.parametrize("kind", ["tilt", "long_only"])
def test_on_noise_twins_the_judged_t_is_centred_and_about_normal(null_panel, kind):
    """Over 40 formulas on 20 noise twins of a null market: a mean t near 0 (a long-only
    book judged against risk parity instead of its own equal weights averaged +0.26, the
    volatile assets' premium) and about the normal share beyond 2."""
    panel, formulas = null_panel
    t = np.array(
        [
            e.metrics.hac_tstat
            for seed in range(20)
            for e in evaluate_formulas(noise_twin(panel, seed), strategy(kind), formulas)
        ]
    )
    assert np.isfinite(t).all() and len(t) == 800
    assert abs(t.mean()) < 0.2
    assert 0.02 <= np.mean(np.abs(t) >= 2) <= 0.09
