"""Hypothesis strategies: random valid formulas drawn through the grammar state machine."""

from __future__ import annotations

import numpy as np
from hypothesis import strategies as st

from alphafactory.formula import GrammarState, Kind, LanguageConfig, Vocabulary

OPERANDS = {
    "close": "panel",
    "volume": "panel",
    "returns": "panel",
    "cpi": "macro",
    "oil": "macro",
    "sector": "group",
}
# small windows so that short test panels still give values
SMALL = LanguageConfig(windows=(2, 3, 5, 10), lags=(1, 2, 5), max_depth=8, max_nodes=24)


def vocabulary(operands=None, config: LanguageConfig = SMALL) -> Vocabulary:
    return Vocabulary(OPERANDS if operands is None else operands, config)


@st.composite
def token_walks(draw, vocab: Vocabulary, max_tokens: int = 16, root_kinds=None):
    """(state, tokens) of a completed walk; leaves are listed first so examples shrink to
    short formulas."""
    state = GrammarState(vocab, max_tokens=max_tokens, root_kinds=root_kinds)
    operators = np.zeros(len(vocab), dtype=bool)
    operators[[vocab.index[name] for name in vocab.operators]] = True
    while not state.done:
        valid = np.flatnonzero(state.valid_mask())
        assert valid.size, "a partial formula with no valid next token"
        choices = sorted(valid.tolist(), key=lambda i: bool(operators[i]))
        state.step(draw(st.sampled_from(choices)))
    return state


def formulas(vocab: Vocabulary, max_tokens: int = 16, root_kinds=None):
    return token_walks(vocab, max_tokens, root_kinds).map(lambda state: state.formula())


PANEL_ROOT = frozenset({Kind.PANEL})
MACRO_ROOT = frozenset({Kind.MACRO})
