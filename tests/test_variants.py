"""Variant names, the strategies they derive, and the plain benchmarks' weights."""

from __future__ import annotations

import numpy as np
import pytest

from alphafactory.data import synthetic_market
from alphafactory.strategy import Strategy
from alphafactory.variants import (
    VariantError,
    allocation_variants,
    base_id,
    benchmark_allocation,
    derive,
    generator_variants,
    variant_alphas,
)

PANEL = synthetic_market(n_assets=4, n_dates=30, seed=1, frequency="M").panel
ASSETS = [str(a) for a in PANEL.assets]


def strategy(**variants) -> Strategy:
    return Strategy.model_validate({"id": "s", "variants": variants})


def test_variants_derive_their_own_strategies():
    base = strategy(names=["pool10", "random", "risk_parity", "pool10"])
    assert base.variants.names == ("pool10", "random", "risk_parity")  # each once
    (random,) = generator_variants(base)
    assert (random.id, random.generation.source, random.variants.names) == (
        "s@random",
        "random",
        (),
    )
    assert [(n, v.id, v.pool.size) for n, v in allocation_variants(base)] == [
        ("pool10", "s@pool10", 10),
        ("risk_parity", "s@risk_parity", 25),
    ]
    assert base_id("s@pool10") == "s" and base_id("s") == "s"
    assert derive(base, "combo_ridge").combination.method == "ridge"
    assert derive(base, "long_short").portfolio.kind == "long_short"
    assert derive(base, "combo_ridge").pool == base.pool


def test_bad_variant_names_and_an_unconfigured_60_40_are_refused():
    with pytest.raises(ValueError, match=r"unknown variants \['pool0', 'best'\]"):
        strategy(names=["pool0", "best"])
    with pytest.raises(ValueError, match="60_40 variant needs"):
        strategy(names=["60_40"], stocks=["A"])
    with pytest.raises(VariantError, match="no 60_40 variant"):
        derive(strategy(), "60_40")
    with pytest.raises(VariantError, match="is not one of poolN"):
        derive(strategy(), "pool")


def test_an_ml_variant_allocates_its_model_s_alpha_and_baselines_have_none():
    base = Strategy.model_validate(
        {"id": "s", "ml": {"models": ["ridge", "lightgbm"]}, "variants": {"names": ["ridge"]}}
    )
    ridge, lightgbm = base.ml.candidates()
    formulas = ["rank(close)", lightgbm, ridge]
    assert variant_alphas("ridge", formulas) == [2]
    assert variant_alphas("lightgbm", formulas) == [1]
    assert variant_alphas("pool10", formulas) == [0, 1, 2]  # pools: every qualified alpha
    assert derive(base, "ridge").ml == base.ml
    assert derive(base, "random").ml.candidates() == ()  # formulas at equal count only
    assert derive(base, "combo_lightgbm").combination.method == "lightgbm"
    with pytest.raises(VariantError, match="add 'mlp' to its \\[ml\\] models"):
        derive(base, "mlp")


def test_the_plain_benchmarks_weights():
    risk_parity = np.array([0.1, 0.2, 0.3, 0.4])
    base = strategy(stocks=ASSETS[:1], bonds=ASSETS[1:3])
    assert benchmark_allocation(PANEL, base, "risk_parity", risk_parity) is risk_parity
    np.testing.assert_allclose(
        benchmark_allocation(PANEL, base, "60_40", risk_parity), [0.6, 0.2, 0.2, 0.0]
    )
    excluded = base.model_copy(
        update={"portfolio": base.portfolio.model_copy(update={"benchmark_excludes": (ASSETS[3],)})}
    )
    np.testing.assert_allclose(
        benchmark_allocation(PANEL, excluded, "equal_weight", risk_parity), [1 / 3] * 3 + [0.0]
    )
    missing = strategy(stocks=["NOPE"], bonds=ASSETS[:1])
    with pytest.raises(VariantError, match=r"none of \['NOPE'\]"):
        benchmark_allocation(PANEL, missing, "60_40", risk_parity)


def test_a_baseline_trades_the_classic_signals_as_the_strategy_trades():
    """``tsmom`` and ``classic`` combine the published signals the panel can compute (its
    series are not the bundled ones: the two momentum signals) by the strategy's method,
    traded with its construction, every one from the first decision, no pool record."""
    from alphafactory.decision import allocate, alpha_signals
    from alphafactory.library import TIME_SERIES_MOMENTUM
    from alphafactory.variants import baseline_formulas, decide

    panel = synthetic_market(n_assets=6, n_dates=120, seed=2, frequency="M").panel
    base = Strategy.model_validate(
        {
            "id": "s",
            "alpha": {"training_months": 48},
            "portfolio": {"kind": "long_only"},
            "variants": {"names": ["tsmom", "classic"]},
        }
    )
    tsmom = derive(base, "tsmom")
    assert (tsmom.pool.size, tsmom.pool.probation, tsmom.portfolio) == (1, 0, base.portfolio)
    assert baseline_formulas("tsmom") == [TIME_SERIES_MOMENTUM]
    empty = np.empty((0, *panel.shape))
    alone = decide(panel, tsmom, "tsmom", [], [], signals=empty, members=())
    assert list(alone.pool) == [TIME_SERIES_MOMENTUM]
    assert alone.entered == {} and alone.retired == {} and alone.probation == ()
    direct = allocate(
        panel,
        tsmom,
        [TIME_SERIES_MOMENTUM],
        [1.0],
        signals=alpha_signals(panel, tsmom, [TIME_SERIES_MOMENTUM]),
    )
    assert alone.weights == pytest.approx(direct.weights, abs=1e-12)
    classic = decide(panel, derive(base, "classic"), "classic", [], [], signals=empty)
    assert len(classic.pool) == 2 and TIME_SERIES_MOMENTUM in classic.pool
    assert sum(classic.weights.values()) == pytest.approx(1.0)
    with pytest.raises(VariantError, match="'best' is not a baseline variant"):
        baseline_formulas("best")
