"""Admission accounts for the search (alphafactory.admission): on candidates of pure noise
the control admits something in at most about ``level`` of the decisions, while the
definition alone admits something at nearly every one; a planted signal still gets in."""

from __future__ import annotations

import numpy as np
import pytest
from statsmodels.stats.multitest import multipletests

from alphafactory.admission import CONTROLS, admit, describe, two_sided_p_values
from alphafactory.data.synthetic import synthetic_market
from alphafactory.metrics import parse_definition
from alphafactory.scoring import FormulaScorer, metric_values
from alphafactory.strategy import Strategy, StrategyError

DEFINITION = parse_definition("hac_tstat >= 2 or hac_tstat <= -2")
WINDOWS = (1, 3, 6, 12)
# a small generator's worth of formulas over every field: many share inputs, so the
# trials are dependent, as a generator's are
TEMPLATES = (
    "ts_mean({x}, {w})",
    "-ts_mean({x}, {w})",
    "ts_zscore({x}, {w2})",
    "delta({x}, {w})",
    "rank(ts_std({x}, {w2}))",
)


def _formulas() -> list[str]:
    out = []
    for field in ("returns", "volume", "close"):
        for template in TEMPLATES:
            for w in WINDOWS:
                out.append(template.format(x=field, w=w, w2=max(w, 3)))
    return out


def _decisions_with_noise_admissions(control: str, decisions: int) -> tuple[int, int, int]:
    """Over ``decisions`` independent noise markets (no planted signal), the decisions at
    which the definition alone admits something, those at which the control does, and
    the trials of one decision."""
    formulas = _formulas()
    any_qualified = any_admitted = 0
    for seed in range(decisions):
        market = synthetic_market(n_assets=30, n_dates=140, seed=1000 + seed, frequency="M")
        metrics = FormulaScorer(market.panel, score_from=20).score(formulas)
        qualified = [m is not None and bool(DEFINITION.evaluate(m)) for m in metrics]
        outcome = admit(metric_values(metrics, "hac_tstat"), qualified, control, 0.10)
        any_qualified += outcome.n_qualified > 0
        any_admitted += outcome.n_admitted > 0
    return any_qualified, any_admitted, len(formulas)


def test_on_noise_candidates_the_control_admits_something_in_at_most_about_q_of_decisions():
    decisions = 40
    any_qualified, any_admitted, trials = _decisions_with_noise_admissions("by", decisions)
    # the definition alone "finds" alphas at most decisions of a 60-formula search
    assert any_qualified >= 0.6 * decisions, (any_qualified, trials)
    # q = 0.10 of 40 decisions is 4; a binomial(40, 0.1) exceeds 9 with probability < 0.2%
    assert any_admitted <= 9, any_admitted


def test_a_planted_signal_is_admitted_among_noise_trials():
    market = synthetic_market(
        n_assets=30, n_dates=140, seed=7, frequency="M", planted=[("reversal", 0.25)]
    )
    formulas = [*_formulas(), "-ts_mean(returns, 5)"]
    metrics = FormulaScorer(market.panel, score_from=20).score(formulas)
    qualified = [m is not None and bool(DEFINITION.evaluate(m)) for m in metrics]
    outcome = admit(metric_values(metrics, "hac_tstat"), qualified, "by", 0.10)
    assert outcome.trials == len(formulas)
    assert outcome.admitted[-1], metric_values(metrics, "hac_tstat")[-1]


def test_by_agrees_with_the_textbook_step_up_rule():
    rng = np.random.default_rng(3)
    t = np.concatenate([rng.standard_normal(190), rng.normal(5.0, 1.0, 10)])
    outcome = admit(t, np.ones(len(t), bool), "by", 0.10)
    p = two_sided_p_values(t)
    m = len(p)
    c = np.sum(1.0 / np.arange(1, m + 1))
    order = np.argsort(p)
    below = p[order] <= np.arange(1, m + 1) * 0.10 / (m * c)
    k = np.max(np.flatnonzero(below)) + 1 if below.any() else 0
    expected = np.zeros(m, bool)
    expected[order[:k]] = True
    np.testing.assert_array_equal(outcome.admitted, expected)
    assert outcome.n_admitted >= 8


def test_admission_needs_both_the_definition_and_the_control():
    t = np.array([8.0, 8.0, 2.1, -2.5, np.nan])
    qualified = np.array([True, False, True, True, False])
    outcome = admit(t, qualified, "bonferroni", 0.05)
    # 8.0 survives Bonferroni over 5 trials but the second one fails the definition;
    # 2.1 and -2.5 meet the definition but not the control; NaN counts as a trial, p = 1
    assert outcome.admitted.tolist() == [True, False, False, False, False]
    assert (outcome.trials, outcome.n_qualified, outcome.n_admitted) == (5, 3, 1)
    assert outcome.adjusted_p[-1] == 1.0
    none = admit(t, qualified, "none", 0.05)
    assert none.admitted.tolist() == qualified.tolist()


@pytest.mark.parametrize("control", [c for c in CONTROLS if c != "none"])
def test_each_control_is_statsmodels_method(control):
    rng = np.random.default_rng(11)
    t = rng.normal(1.0, 2.0, 300)
    outcome = admit(t, np.ones(300, bool), control, 0.1)
    method = {"by": "fdr_by", "bh": "fdr_bh"}.get(control, control)
    reject, adjusted, _, _ = multipletests(two_sided_p_values(t), alpha=0.1, method=method)
    np.testing.assert_array_equal(outcome.admitted, reject)
    np.testing.assert_allclose(outcome.adjusted_p, adjusted)


def test_bad_control_or_level_is_named():
    with pytest.raises(ValueError, match="'fdr' is not one of by, bh"):
        admit([1.0], [True], "fdr", 0.1)
    with pytest.raises(ValueError, match=r"level must be in \(0, 1\), got 1.5"):
        admit([1.0], [True], "by", 1.5)
    with pytest.raises(ValueError, match="one length"):
        admit([1.0, 2.0], [True], "by", 0.1)


def test_a_strategy_that_says_nothing_is_controlled_by_default_and_none_says_so(tmp_path):
    plain = Strategy(id="s")
    assert (plain.alpha.control, plain.alpha.level) == ("by", 0.10)
    assert "Benjamini-Yekutieli" in describe(plain.alpha.control, plain.alpha.level)
    assert "no multiple-testing control" in describe("none", 0.1)
    path = tmp_path / "bad.toml"
    path.write_text('id = "s"\n[alpha]\ncontrol = "fdr"\n')
    from alphafactory.strategy import load_strategy

    with pytest.raises(StrategyError, match="alpha.control.*'fdr'"):
        load_strategy(path)
    path.write_text('id = "s"\n[alpha]\nlevel = 0\n')
    with pytest.raises(StrategyError, match="alpha.level"):
        load_strategy(path)
