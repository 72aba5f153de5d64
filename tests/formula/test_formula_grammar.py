"""Token sequences and the grammar state machine (the generator's action mask)."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from alphafactory.formula import (
    FormulaError,
    FormulaLimitError,
    FormulaSyntaxError,
    FormulaTypeError,
    GrammarState,
    Kind,
    LanguageConfig,
    Vocabulary,
    batch_masks,
    check,
    from_tokens,
    parse,
    random_formula,
    to_tokens,
)
from tests.formula.strategies import (
    MACRO_ROOT,
    OPERANDS,
    PANEL_ROOT,
    SMALL,
    formulas,
    token_walks,
    vocabulary,
)

VOCAB = vocabulary()
SLOW = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def test_vocabulary_layout():
    vocab = Vocabulary(OPERANDS, SMALL, specials=("<pad>",))
    assert vocab.tokens[0] == "<pad>"
    assert vocab.tokens[1:4] == ("neg", "abs", "sign")
    assert {"close", "cpi", "sector", "2", "-1", "0.5", "10"} <= set(vocab.tokens)
    assert vocab.decode(vocab.encode(["rank", "close"])) == ["rank", "close"]
    with pytest.raises(FormulaError):
        Vocabulary({"rank": "panel"})  # an operand may not be spelled like an operator
    with pytest.raises(FormulaSyntaxError):
        vocab.encode(["close", "nope"])
    assert not GrammarState(vocab).valid_mask()[0]  # specials are never valid


def test_prefix_tokens():
    formula = parse("rank(close - ts_mean(close, 10))", OPERANDS, SMALL)
    tokens = ["rank", "sub", "close", "ts_mean", "close", "10"]
    assert to_tokens(formula) == tokens
    assert from_tokens(tokens, VOCAB) == formula
    assert from_tokens(VOCAB.encode(tokens), VOCAB) == formula
    assert to_tokens(parse("winsorize(close, 3) * -1", OPERANDS)) == [
        "mul",
        "-1",
        "winsorize",
        "close",
        "3",
    ]


@pytest.mark.parametrize(
    ("tokens", "error", "column"),
    [
        (["rank"], FormulaSyntaxError, 2),
        (["rank", "close", "close"], FormulaSyntaxError, 3),
        (["ts_mean", "close", "close"], FormulaSyntaxError, 3),
        (["ts_mean", "close", "7"], FormulaSyntaxError, 3),
        (["rank", "cpi"], FormulaTypeError, 1),
        (["2"], FormulaTypeError, None),
        (["group_demean", "close", "close"], FormulaSyntaxError, 3),
        ([], FormulaSyntaxError, 1),
        (["nope"], FormulaSyntaxError, 1),
        ([10_000], FormulaSyntaxError, 1),
    ],
)
def test_from_tokens_errors(tokens, error, column):
    with pytest.raises(error) as caught:
        from_tokens(tokens, VOCAB)
    assert caught.value.column == column


def test_from_tokens_enforces_limits():
    with pytest.raises(FormulaLimitError):
        from_tokens(["abs"] * 20 + ["close"], VOCAB)


def test_mask_follows_kinds():
    state = GrammarState(VOCAB, root_kinds=MACRO_ROOT)
    valid = set(state.valid_tokens())
    assert {"cpi", "oil", "ts_mean", "add", "abs"} <= valid
    assert not {"close", "rank", "group_demean", "sector", "2"} & valid
    state.step("add")
    state.step("2")  # a constant first: the other side must then be a macro series
    assert "2" not in state.valid_tokens() and "cpi" in state.valid_tokens()
    state = GrammarState(VOCAB, root_kinds=PANEL_ROOT)
    state.step("add")
    state.step("cpi")  # a macro series first: the sum can only be a panel through the other side
    assert "close" in state.valid_tokens() and "oil" not in state.valid_tokens()
    state.step("close")
    assert state.done and state.formula() == parse("close + cpi", OPERANDS)
    assert not state.valid_mask().any()


def test_literal_slots_offer_only_the_action_space():
    state = GrammarState(VOCAB)
    state.step("ts_mean")
    state.step("close")
    assert state.valid_tokens() == ["2", "3", "5", "10"]  # text may use any window, tokens not
    state.step("5")
    assert state.done
    state = GrammarState(VOCAB)
    for token in ["group_demean", "close"]:
        state.step(token)
    assert state.valid_tokens() == ["sector"]


def test_tight_budget_forces_completion():
    state = GrammarState(VOCAB, max_tokens=3)
    state.step("ts_mean")  # needs 2 more tokens: exactly the budget
    assert set(state.valid_tokens()) == {"close", "volume", "returns", "cpi", "oil"}
    state = GrammarState(VOCAB, max_tokens=1)
    assert set(state.valid_tokens()) == {"close", "volume", "returns", "cpi", "oil"}
    with pytest.raises(FormulaSyntaxError):
        state.step("rank")


def test_operators_whose_literals_are_all_disallowed_are_never_offered():
    vocab = Vocabulary(OPERANDS, LanguageConfig(winsorize_ks=()))
    rng = np.random.default_rng(0)
    made = [random_formula(vocab, rng, max_tokens=8, root_kinds=PANEL_ROOT) for _ in range(300)]
    assert not any("winsorize" in str(f) for f in made)
    with pytest.raises(FormulaError):
        Vocabulary(OPERANDS, LanguageConfig(operators=("rank", "no_such_operator")))


def test_unreachable_root_kind_is_an_error():
    with pytest.raises(FormulaTypeError):
        GrammarState(Vocabulary({"cpi": "macro"}), root_kinds=PANEL_ROOT)


@SLOW
@given(token_walks(VOCAB, max_tokens=20))
def test_walks_finish_valid_and_round_trip(state):
    formula = state.formula()
    assert len(state.tokens) <= 20
    # a walk may list commutative arguments in any order; to_tokens gives the canonical one
    assert from_tokens(state.tokens, VOCAB) == formula
    assert sorted(to_tokens(formula)) == sorted(state.tokens)
    assert from_tokens(to_tokens(formula), VOCAB) == formula
    assert check(formula, OPERANDS, SMALL) == formula
    assert parse(str(formula), OPERANDS, SMALL) == formula
    assert formula.depth <= SMALL.max_depth and formula.size <= SMALL.max_nodes


@SLOW
@given(
    st.data(),
    st.integers(1, 30),
    st.sampled_from([None, PANEL_ROOT, MACRO_ROOT]),
    st.integers(2, 6),
    st.integers(3, 12),
)
def test_every_offered_token_keeps_completion_possible(data, max_tokens, roots, depth, nodes):
    """Any masked-valid token, then the cheapest completion, fits every budget and types."""
    config = LanguageConfig(windows=(2, 5), lags=(1,), max_depth=depth, max_nodes=nodes)
    vocab = Vocabulary(OPERANDS, config)
    state = GrammarState(vocab, max_tokens=max_tokens, root_kinds=roots)
    while not state.done:
        valid = np.flatnonzero(state.valid_mask())
        assert valid.size
        assert state.open_slots <= state.remaining_tokens
        token = data.draw(st.sampled_from(valid.tolist()))
        probe = state.copy()
        probe.step(token)
        _complete_with_leaves(probe)  # never dead-ends
        state.step(token)
    formula = state.formula()
    assert len(state.tokens) <= max_tokens
    assert formula.depth <= depth and formula.size <= nodes
    assert roots is None or formula.kind in roots
    assert from_tokens(state.tokens, vocab) == formula


def _complete_with_leaves(state: GrammarState) -> None:
    operators = set(state.vocab.operators)
    while not state.done:
        leaves = [t for t in state.valid_tokens() if t not in operators]
        assert leaves, f"no leaf can follow {state.tokens}"
        state.step(leaves[0])
    assert len(state.tokens) <= state.max_tokens


@SLOW
@given(formulas(VOCAB, max_tokens=20))
def test_tokens_of_any_formula_replay_through_the_state_machine(formula):
    state = GrammarState(VOCAB, max_tokens=len(to_tokens(formula)))
    for token in to_tokens(formula):
        state.step(token)
    assert state.formula() == formula


@settings(max_examples=200, deadline=None)
@given(
    st.lists(st.one_of(st.sampled_from(VOCAB.tokens), st.integers(-2, 80), st.text()), max_size=12)
)
def test_from_tokens_fuzz_only_formula_errors(tokens):
    try:
        formula = from_tokens(tokens, VOCAB)
    except FormulaError:
        return
    assert from_tokens(to_tokens(formula), VOCAB) == formula
    assert sorted(to_tokens(formula)) == sorted(VOCAB.words(tokens))


def test_batch_masks_and_random_formulas():
    states = [GrammarState(VOCAB), GrammarState(VOCAB, root_kinds=MACRO_ROOT)]
    masks = batch_masks(states)
    assert masks.shape == (2, len(VOCAB)) and masks.dtype == bool
    assert masks[0, VOCAB.index["close"]] and not masks[1, VOCAB.index["close"]]
    rng = np.random.default_rng(1)
    made = [random_formula(VOCAB, rng, max_tokens=12, root_kinds=PANEL_ROOT) for _ in range(200)]
    assert all(f.kind is Kind.PANEL and len(to_tokens(f)) <= 12 for f in made)
    assert len({str(f) for f in made}) > 100
