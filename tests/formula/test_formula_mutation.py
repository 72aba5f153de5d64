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
    mutation,
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
        "rank(close - ts_mean(volume, 20))",
        "close - ts_mean(volume, 20)",
        "close",
        "ts_mean(volume, 20)",
        "volume",
    ]
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


def _differences(a, b) -> list[tuple[str, str]]:
    return [(x, y) for x, y in zip(to_tokens(a), to_tokens(b), strict=True) if x != y]


def test_each_move_does_what_it_says():
    rng = np.random.default_rng(3)
    formula = parse("ts_mean(close, 20) - ts_std(volume, 10)", OPERANDS)
    literals = {str(w) for w in VOCAB.config.windows}
    for _ in range(30):
        moved = mutation._literal_move(formula, VOCAB, rng, 16)
        changed = _differences(formula, moved)  # one window, nothing else
        assert len(changed) == 1 and changed[0][0] in {"20", "10"} and changed[0][1] in literals
        swapped = mutation._operator_move(formula, VOCAB, rng, 16)
        changed = _differences(formula, swapped)  # one operator for a peer, same arguments
        assert len(changed) == 1 and changed[0][1] in VOCAB.operators
        replaced = mutation._subtree_move(formula, VOCAB, rng, 16)
        assert check(replaced, VOCAB.operands, VOCAB.config) == replaced
        assert len(to_tokens(replaced)) <= 16
