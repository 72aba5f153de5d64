"""Point-in-time: values at rows <= t never depend on rows after t, nor on rows before the
formula's lookback. Both proved on random formulas from the grammar state machine."""

from __future__ import annotations

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from alphafactory.evaluate import Evaluator, asset_scores
from alphafactory.formula import Vocabulary
from tests.evaluate.panels import assert_bit_identical, make_panel, scrambled_after
from tests.formula.strategies import SMALL, formulas

PANEL = make_panel(rows=48, assets=6, seed=11)
VOCAB = Vocabulary(PANEL.operand_kinds, SMALL)
FULL = Evaluator(PANEL, config=SMALL)
PROPERTY = settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@PROPERTY
@given(formulas(VOCAB, max_tokens=16), st.integers(0, 47))
def test_truncating_after_t_changes_nothing_up_to_t(formula, t):
    full = FULL.evaluate(formula)
    head = Evaluator(PANEL.head(t + 1), config=SMALL).evaluate(formula)
    assert_bit_identical(head, full[: t + 1], str(formula))


@PROPERTY
@given(formulas(VOCAB, max_tokens=16), st.integers(0, 46), st.integers(0, 2**32 - 1))
def test_random_data_after_t_changes_nothing_up_to_t(formula, t, seed):
    full = FULL.evaluate(formula)
    other = Evaluator(scrambled_after(PANEL, t, seed), config=SMALL).evaluate(formula)
    assert_bit_identical(other[: t + 1], full[: t + 1], str(formula))


@PROPERTY
@given(formulas(VOCAB, max_tokens=16), st.integers(0, 47))
def test_lookback_rows_are_enough(formula, t):
    """The value at t from only rows t - lookback .. t equals the full-history value."""
    start = max(0, t - formula.lookback)
    last = Evaluator(PANEL.rows(start, t + 1), config=SMALL).evaluate(formula)[-1:]
    assert_bit_identical(last, FULL.evaluate(formula)[t : t + 1], str(formula))


@PROPERTY
@given(formulas(VOCAB, max_tokens=12, root_kinds={"macro"}), st.integers(0, 46), st.integers(0, 9))
def test_macro_scores_are_point_in_time(formula, t, seed):
    full = asset_scores(formula, PANEL, min_periods=12, class_group="sector")
    other = asset_scores(
        formula, scrambled_after(PANEL, t, seed), min_periods=12, class_group="sector"
    )
    assert_bit_identical(other[: t + 1], full[: t + 1], str(formula))
