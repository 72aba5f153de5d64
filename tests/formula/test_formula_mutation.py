"""MCMC proposals: always a different, valid formula within the limits."""

from __future__ import annotations

import numpy as np
import pytest

from alphafactory.formula import (
    FormulaTypeError,
    Kind,
    LanguageConfig,
    Vocabulary,
    check,
    parse,
    random_formula,
    to_tokens,
)
from alphafactory.formula.mutation import mutate, nodes_with_paths, replace_argument

OPERANDS = {"close": "panel", "volume": "panel", "cpi": "macro", "sector": "group"}
VOCAB = Vocabulary(OPERANDS, LanguageConfig.daily())


def test_nodes_are_listed_in_prefix_order_with_their_paths():
    formula = parse("rank(close - ts_mean(volume, 20))", OPERANDS)
    listed = [(path, str(node)) for path, node in nodes_with_paths(formula)]
    assert [text for _, text in listed] == [
        "rank(close - ts_mean(volume, 20))", "close - ts_mean(volume, 20)", "close",
        "ts_mean(volume, 20)", "volume",
    ]  # fmt: skip
    assert listed[3][0] == (0, 1)


def test_replace_argument_rebuilds_the_path_and_keeps_types():
    formula = parse("rank(close - ts_mean(volume, 20))", OPERANDS)
    swapped = replace_argument(formula, (0, 1), 1, 60)
    assert str(swapped) == "rank(close - ts_mean(volume, 60))"
    with pytest.raises(FormulaTypeError):  # rank of a macro series is a type error
        replace_argument(formula, (0,), None, parse("cpi", OPERANDS))


@pytest.mark.parametrize("seed", range(5))
def test_mutations_are_valid_distinct_and_fit_the_token_budget(seed):
    rng = np.random.default_rng(seed)
    formula = random_formula(VOCAB, rng, max_tokens=12)
    moved = 0
    for _ in range(60):
        proposal = mutate(formula, VOCAB, rng, max_tokens=12)
        assert proposal.canonical != formula.canonical
        assert check(proposal, VOCAB.operands, VOCAB.config) == proposal
        assert len(to_tokens(proposal)) <= 12
        assert proposal.kind in (Kind.PANEL, Kind.MACRO)
        moved += 1
        formula = proposal
    assert moved == 60


def test_all_three_moves_happen():
    rng = np.random.default_rng(3)
    formula = parse("ts_mean(close, 20) - ts_std(volume, 10)", OPERANDS)
    seen = set()
    for _ in range(200):
        text = str(mutate(formula, VOCAB, rng, max_tokens=16))
        if "ts_mean(close, 20)" in text and "volume, 10" not in text and "volume" in text:
            seen.add("operator-or-subtree")
        if "ts_mean(close, 20)" in text and "ts_std(volume" in text:
            seen.add("literal")
        seen.add(text)
    assert "literal" in seen and len(seen) > 50
