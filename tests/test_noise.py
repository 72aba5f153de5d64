"""The noise twin (alphafactory.noise): each row's cross-section kept, the time order of
the market rows broken, the same permutation for every field and every chunk of a
request, and on a planted market the planted formulas lose their evidence there."""

from __future__ import annotations

from datetime import UTC, datetime

import numpy as np
import pandas as pd
import pytest

from alphafactory.data.macro_markets import CLASS_GROUP, macro_market
from alphafactory.decision import decision_panel, evaluate_formulas
from alphafactory.noise import noise_twin, twin_seed
from alphafactory.strategy import Strategy

STRATEGY = Strategy.model_validate(
    {
        "id": "twin",
        "alpha": {"definition": "hac_tstat >= 2", "training_months": 300},
        "portfolio": {"kind": "tilt", "risk_parity_group": CLASS_GROUP},
    }
)


@pytest.fixture(scope="module")
def planted_panel():
    market = macro_market(seed=2, n_planted=1, strength=0.5)
    at = datetime(2016, 12, 20, tzinfo=UTC)
    releases = market.releases[market.releases["released_at"] <= at]
    return market, decision_panel(market.panel, releases, at, 360)


def test_the_twin_permutes_whole_rows_of_every_field_and_keeps_the_rest(planted_panel):
    _, panel = planted_panel
    twin = noise_twin(panel, 7)
    returns, closes = panel.fields["returns"], panel.fields["close"]
    # each twin row is one original row, the same one for every field
    order = [
        int(np.flatnonzero(np.all(np.isclose(closes, row), axis=1))[0])
        for row in twin.fields["close"]
    ]
    assert sorted(order) == list(range(panel.shape[0])) and order != sorted(order)
    np.testing.assert_array_equal(twin.fields["returns"], returns[order])
    np.testing.assert_array_equal(twin.dates, panel.dates)
    assert twin.macro.keys() == panel.macro.keys()
    for name, values in panel.macro.items():
        np.testing.assert_array_equal(twin.macro[name], values)
    np.testing.assert_array_equal(twin.groups[CLASS_GROUP], panel.groups[CLASS_GROUP])


def test_one_request_gets_one_permutation_and_another_a_different_one(planted_panel):
    _, panel = planted_panel
    seed = twin_seed("req-1")
    assert seed == twin_seed("req-1") != twin_seed("req-2")
    first, again = noise_twin(panel, seed), noise_twin(panel, seed)
    np.testing.assert_array_equal(first.fields["returns"], again.fields["returns"])
    other = noise_twin(panel, twin_seed("req-2")).fields["returns"]
    assert not np.array_equal(np.nan_to_num(first.fields["returns"]), np.nan_to_num(other))


def test_a_planted_formula_loses_its_evidence_on_the_twin(planted_panel):
    """The planted formula's forecasts are strongly significant on the decision's panel
    and, over 40 twins, no more often significant than noise is."""
    market, panel = planted_panel
    formula = market.planted[0]
    real = evaluate_formulas(panel, STRATEGY, [formula])[0]
    assert real.metrics.hac_tstat > 4 and real.qualified
    on_twins = np.array(
        [
            evaluate_formulas(noise_twin(panel, seed), STRATEGY, [formula])[0].metrics.hac_tstat
            for seed in range(40)
        ]
    )
    assert np.isfinite(on_twins).all()
    assert np.mean(np.abs(on_twins) >= 2) <= 0.15
    assert abs(pd.Series(on_twins).median()) < 1
