"""Constructions and combination methods are declared once: a new one, registered in one
place, is a valid strategy setting and variant name, is in the help, and decides."""

from __future__ import annotations

import numpy as np
import pytest

from alphafactory.combinations import COMBINATIONS, Combination
from alphafactory.constructions import CONSTRUCTIONS, Construction
from alphafactory.data import synthetic_market
from alphafactory.decision import alpha_signals
from alphafactory.strategy import Strategy
from alphafactory.variant_names import VariantKind, names_help, parse
from alphafactory.variants import decide, derive
from app.cli.main import build_parser

PANEL = synthetic_market(n_assets=5, n_dates=80, seed=3, frequency="M").panel
FORMULAS = ["ts_mean(returns, 3)", "ts_mean(returns, 12)"]


class Equalise(Construction):
    """Equal weights whatever the signal: easy to recognise in a decision."""

    name = "equalise"
    summary = "equal weights whatever the signal"

    def positions(self, signals, sizing, benchmark):
        return np.full(np.shape(signals), 1.0 / np.shape(signals)[-1])

    def neutral(self, benchmark):
        return np.full_like(benchmark, 1.0 / np.shape(benchmark)[-1])


class FirstOnly(Combination):
    """All the weight on the pool's first alpha."""

    name = "first_only"
    summary = "the first alpha alone"

    def weights(self, signals, forward, ridge_alpha):
        return np.eye(len(signals))[0]


@pytest.fixture
def registered(monkeypatch):
    monkeypatch.setitem(CONSTRUCTIONS, Equalise.name, Equalise())
    monkeypatch.setitem(COMBINATIONS, FirstOnly.name, FirstOnly())


def _variants_help() -> str:
    commands = build_parser()._subparsers._group_actions[0].choices
    return commands["walkforward"].format_help()


def test_a_construction_and_a_method_added_in_one_place_are_settings_variants_and_help(
    registered,
):
    strategy = Strategy.model_validate(
        {
            "id": "s",
            "portfolio": {"kind": "equalise"},
            "combination": {"method": "first_only"},
            "variants": {"names": ["equalise", "combo_first_only", "tilt"]},
        }
    )
    assert strategy.portfolio.kind == "equalise"
    assert parse("equalise").kind is VariantKind.CONSTRUCTION
    assert parse("combo_first_only").kind is VariantKind.COMBINATION
    assert derive(strategy, "tilt").portfolio.kind == "tilt"
    assert derive(strategy, "combo_first_only").combination.method == "first_only"
    assert "equalise" in names_help() and "combo_first_only" in names_help()
    assert "equalise" in " ".join(_variants_help().split())


def test_without_registering_they_are_refused_by_name():
    with pytest.raises(ValueError, match="portfolio kind 'equalise' is not one of long_short"):
        Strategy.model_validate({"id": "s", "portfolio": {"kind": "equalise"}})
    with pytest.raises(ValueError, match="variant 'combo_first_only' is not one of"):
        parse("combo_first_only")
    assert "equalise" not in " ".join(_variants_help().split())


def test_the_decision_uses_the_registered_construction_and_method(registered):
    rules = {"probation": 0, "size": 2, "max_correlation": 1.0}
    strategy = Strategy.model_validate(
        {
            "id": "s",
            "alpha": {"training_months": 40},
            "pool": rules,
            "portfolio": {"kind": "equalise"},
            "combination": {"method": "first_only"},
        }
    )
    signals = alpha_signals(PANEL, strategy, FORMULAS)
    made = decide(PANEL, strategy, "", FORMULAS, [3.0, -2.5], signals=signals)
    np.testing.assert_allclose(list(made.weights.values()), 0.2)
    assert made.pool == {FORMULAS[0]: 1.0, FORMULAS[1]: 0.0}
    # the same alphas under a built-in construction move money
    tilted = derive(strategy, "long_short")
    made = decide(PANEL, tilted, "long_short", FORMULAS, [3.0, -2.5], signals=signals)
    assert np.ptp(list(made.weights.values())) > 0
