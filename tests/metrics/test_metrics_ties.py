"""Heavy ties, end to end: formulas with tied values, evaluated by us and by pandas, must be
the same bits, and their quantiles, rank IC and long-short series those of the reference.

Ties are where two implementations part: ``rank(a) + rank(b)`` ties exactly only if every
rank is pandas' ``average / count`` to the last bit (``3 * (1/10) != 3/10``), and a tie at
a quantile boundary decides which asset is long. The factors here are discrete (few
distinct values), sums and differences of ranks, and have missing values; the reference
(:mod:`tests.metrics._reference`) reads DESIGN.md contract 5 literally with pandas' ordinal
ranks for quantiles (alphalens-style: ties by order of appearance) and scipy for the IC.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from alphafactory.evaluate import Evaluator
from alphafactory.formula import LanguageConfig
from alphafactory.metrics import FactorScorer
from alphafactory.panel import Panel
from tests.metrics import _reference as ref

ROWS, ASSETS = 80, 37  # more than 32 assets: the radix path of the ordering kernel


@pytest.fixture(scope="module")
def panel() -> Panel:
    rng = np.random.default_rng(23)
    shape = (ROWS, ASSETS)
    level = rng.integers(0, 4, shape).astype(float)  # 4 values: ties everywhere
    grade = np.round(rng.normal(size=shape), 1)  # a few dozen values
    returns = np.round(rng.normal(0.0, 0.02, shape), 3)  # tied returns too
    for values in (level, grade, returns):
        values[rng.random(shape) < 0.06] = np.nan
    return Panel(
        dates=np.datetime64("2015-01-01") + np.arange(ROWS).astype("timedelta64[D]"),
        assets=np.array([f"A{i:02d}" for i in range(ASSETS)]),
        fields={"level": level, "grade": grade, "returns": returns},
    )


def pct(frame: pd.DataFrame) -> pd.DataFrame:
    return frame.rank(axis=1, pct=True)


FORMULAS = {
    "level": lambda f: f["level"],
    "rank(level)": lambda f: pct(f["level"]),
    "rank(level) + rank(grade)": lambda f: pct(f["level"]) + pct(f["grade"]),
    "rank(grade) - rank(level)": lambda f: pct(f["grade"]) - pct(f["level"]),
    "rank(rank(level) + rank(grade))": lambda f: pct(pct(f["level"]) + pct(f["grade"])),
    "rank(level) * rank(returns)": lambda f: pct(f["level"]) * pct(f["returns"]),
    "sign(grade)": lambda f: np.sign(f["grade"]),
}


def pandas_values(panel: Panel, formula: str) -> np.ndarray:
    frames = {name: pd.DataFrame(values) for name, values in panel.fields.items()}
    return FORMULAS[formula](frames).to_numpy(dtype=np.float64)


@pytest.mark.parametrize("formula", list(FORMULAS))
def test_tied_factors_are_pandas_bit_for_bit(panel, formula):
    ours = Evaluator(panel, config=LanguageConfig.daily()).evaluate(formula)
    theirs = pandas_values(panel, formula)
    np.testing.assert_array_equal(np.isnan(ours), np.isnan(theirs))
    valid = ~np.isnan(theirs)
    np.testing.assert_array_equal(ours[valid].view(np.uint64), theirs[valid].view(np.uint64))


@pytest.mark.parametrize("quantiles", [3, 5])
@pytest.mark.parametrize("formula", list(FORMULAS))
def test_quantiles_rank_ic_and_long_short_match_the_reference(panel, formula, quantiles):
    factor = pandas_values(panel, formula)
    returns = panel.fields["returns"]
    ours = FactorScorer(returns, quantiles=quantiles, periods_per_year=252).series(factor)
    ics = ref.ic_by_date(factor, returns, 1)
    rank_ic = np.full(ROWS, np.nan)
    rank_ic[list(ics)] = [spearman for _pearson, spearman in ics.values()]
    np.testing.assert_allclose(ours["rank_ic"], rank_ic, rtol=1e-12, atol=1e-14)
    long_short = ref.long_short_by_date(factor, returns, quantiles)
    ls, means = np.full(ROWS, np.nan), np.full((ROWS, quantiles), np.nan)
    for t, (value, _weights, quantile_means) in long_short.items():
        ls[t], means[t] = value, quantile_means
    # the same dates, the same members in each quantile: equal up to summation order
    np.testing.assert_array_equal(np.isnan(ours["ls"]), np.isnan(ls))
    np.testing.assert_allclose(ours["ls"], ls, rtol=1e-12, atol=1e-15)
    np.testing.assert_allclose(ours["quantile_returns"], means, rtol=1e-12, atol=1e-15)
    weights = [w for _value, w, _means in long_short.values()]
    turnover = [0.5 * np.abs(b - a).sum() for a, b in zip(weights, weights[1:], strict=False)]
    defined = np.flatnonzero(np.isfinite(ours["turnover"]))
    np.testing.assert_allclose(ours["turnover"][defined], turnover, rtol=1e-12)


def test_ties_at_a_quantile_boundary_go_by_order_of_appearance():
    # five assets, Q = 2: sorted positions 0-2 are the bottom, 3-4 the top; the value 1.0
    # straddles the boundary, so its first two holders (assets 1 and 3) are bottom
    factor = np.array([[0.0, 1.0, 2.0, 1.0, 1.0], [0.0] * 5])
    returns = np.array([[0.0] * 5, [0.01, 0.02, 0.03, 0.04, 0.05]])
    series = FactorScorer(returns, quantiles=2, periods_per_year=252).series(factor)
    assert ref.quantiles_of(factor[0], 2).tolist() == [1, 1, 2, 1, 2]
    np.testing.assert_allclose(
        series["quantile_returns"][0], [(0.01 + 0.02 + 0.04) / 3, (0.03 + 0.05) / 2]
    )


def test_a_factor_alone_or_in_a_stack_scores_the_same(panel):
    """One factor runs its dates in parallel blocks, a stack of many one block each; the
    turnover across a block boundary must not notice (dates with no portfolio included)."""
    returns = panel.fields["returns"]
    factors = [pandas_values(panel, formula) for formula in FORMULAS]
    factors[2][30:34] = np.nan  # no long-short portfolio on these dates
    scorer = FactorScorer(returns, quantiles=4, periods_per_year=252)
    stacked = scorer.score_batch(np.stack(factors * 5))[: len(factors)]
    alone = [scorer.score(factor) for factor in factors]
    listed = scorer.score_batch(factors)
    assert stacked == alone == listed
