"""Batch evaluation with shared sub-expressions, float32, the evaluator API, macro mapping."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from alphafactory.evaluate import Evaluator, asset_scores, evaluate, evaluate_batch, macro_scores
from alphafactory.evaluate import evaluator as evaluator_module
from alphafactory.formula import FormulaTypeError, UnknownOperandError, Vocabulary, parse
from tests.evaluate.panels import assert_bit_identical, make_panel
from tests.formula.strategies import SMALL, formulas

PANEL = make_panel(rows=50, assets=8, seed=5)
VOCAB = Vocabulary(PANEL.operand_kinds, SMALL)
ROOMY = dataclasses.replace(SMALL, max_depth=16, max_nodes=64)  # room for derived formulas


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(formulas(VOCAB, max_tokens=10), min_size=1, max_size=6), st.integers(1, 4))
def test_batch_with_shared_parts_equals_one_by_one(parts, chunk_size):
    # derived formulas share whole sub-expressions with each other and with the parts
    batch = []
    for a, b in zip(parts, parts[1:] + parts[:1], strict=True):
        batch += [a, f"{a} - {b}", f"ts_mean({a}, 3) * {b}", str(a)]
    single = Evaluator(PANEL, config=ROOMY)
    expected = [single.evaluate(f) for f in batch]
    for cache_bytes in (1 << 30, PANEL.shape[0] * PANEL.shape[1] * 8 + 1, 0):  # also evicting
        got = list(
            evaluate_batch(
                batch, PANEL, config=ROOMY, chunk_size=chunk_size, cache_bytes=cache_bytes
            )
        )
        assert len(got) == len(expected)
        for formula, value, reference in zip(batch, got, expected, strict=True):
            assert_bit_identical(value, reference, str(formula))


def test_shared_sub_expressions_are_computed_once(monkeypatch):
    calls: list[str] = []
    original = evaluator_module.KERNELS.copy()

    def counting(node_type):
        def kernel(*args):
            calls.append(node_type.name)
            return original[node_type](*args)

        return kernel

    monkeypatch.setattr(evaluator_module, "KERNELS", {node: counting(node) for node in original})
    shared = "ts_std(returns, 10)"
    batch = [f"rank({shared})", f"{shared} * 2", f"zscore({shared}) - rank({shared})"]
    list(Evaluator(PANEL).evaluate_many(batch))
    assert calls.count("ts_std") == 1
    assert calls.count("rank") == 1


def test_results_are_fresh_writable_arrays():
    evaluator = Evaluator(PANEL)
    close = evaluator.evaluate("close")
    assert close.flags.writeable and close is not PANEL.fields["close"]
    close[:] = 0.0
    assert not np.all(PANEL.fields["close"] == 0.0)
    values = list(evaluator.evaluate_many(["rank(close)", "rank(close) + 1", "rank(close)"]))
    assert all(v.flags.writeable for v in values)
    values[0][:] = -5.0
    np.testing.assert_allclose(values[2], evaluator.evaluate("rank(close)"))


def test_shapes_types_and_errors():
    assert evaluate("ts_mean(cpi, 5) - cpi", PANEL).shape == (50,)
    assert evaluate("rank(close * cpi)", PANEL).shape == (50, 8)
    assert evaluate(parse("volume + 1"), PANEL).shape == (50, 8)
    with pytest.raises(UnknownOperandError):
        evaluate("ts_mean(nope, 5)", PANEL)
    with pytest.raises(FormulaTypeError):
        evaluate(parse("rank(cpi)"), PANEL)  # parsed without schema, typed on binding
    with pytest.raises(ValueError):
        Evaluator(PANEL, dtype=np.int32)


def test_overflow_is_missing_not_infinite():
    values = evaluate("square(square(square(square(square(square(volume))))))", PANEL)
    assert (
        not np.isinf(values).any()
        and np.isnan(values).sum() > np.isnan(PANEL.fields["volume"]).sum()
    )


WELL_CONDITIONED = [
    "rank(close - ts_mean(close, 10))",
    "ts_zscore(volume, 10) * ts_std(returns, 5)",
    "ts_corr(close, volume, 10) + decay_linear(returns, 5)",
    "zscore(ts_max(close, 5) / ts_min(close, 5))",
    "ema(returns, 10) - delay(returns, 2) + ts_sum(returns, 3) * cpi",
    "group_demean(log(volume), sector) + winsorize(returns, 2)",
    "ts_rank(close, 10) + ts_argmax(close, 5) - scale(returns)",
]


@pytest.mark.parametrize("formula", WELL_CONDITIONED)
def test_float32_is_close_to_float64(formula):
    wide = evaluate(formula, PANEL, config=SMALL)
    narrow = evaluate(formula, PANEL, config=SMALL, dtype=np.float32)
    assert narrow.dtype == np.float32
    np.testing.assert_allclose(narrow, wide, rtol=2e-4, atol=2e-5, equal_nan=True)


def naive_macro_scores(factor, returns, window):
    """Per date and asset: OLS slope of r_s on f_{s-1} over the window, times f_t."""
    rows, assets = returns.shape
    out = np.full((rows, assets), np.nan)
    for t in range(window, rows):
        s = np.arange(t - window + 1, t + 1)
        for i in range(assets):
            x, y = factor[s - 1], returns[s, i]
            if np.isnan(x).any() or np.isnan(y).any() or np.ptp(x) == 0:
                continue
            out[t, i] = np.polyfit(x, y, 1)[0] * factor[t]
    return out


@pytest.mark.parametrize("window", [3, 5, 12])
def test_macro_mapping_matches_per_date_regressions(window):
    rng = np.random.default_rng(window)
    factor = 300 + np.cumsum(rng.standard_normal(60))  # a level series: cancellation-prone
    factor[[7, 30]] = np.nan
    returns = 0.01 * rng.standard_normal((60, 4)) + 0.002 * np.r_[np.nan, factor[:-1]][:, None]
    returns[rng.random(returns.shape) < 0.03] = np.nan
    expected = naive_macro_scores(factor, returns, window)
    got = macro_scores(factor, returns, window=window)
    assert np.isfinite(got).sum() > 20
    np.testing.assert_allclose(got, expected, rtol=1e-8, atol=1e-12, equal_nan=True)
    many = macro_scores(np.stack([factor, -factor] * 20, axis=1), returns, window)
    assert many.shape == (60, 40, 4)
    np.testing.assert_array_equal(many[:, 0], got)
    np.testing.assert_allclose(many[:, 1], got, equal_nan=True)  # beta and f_t both flip


def test_asset_scores_dispatch():
    scores = asset_scores("ts_zscore(cpi, 5)", PANEL, window=12)
    factor = evaluate("ts_zscore(cpi, 5)", PANEL)
    np.testing.assert_array_equal(scores, macro_scores(factor, PANEL.returns, window=12))
    np.testing.assert_array_equal(
        asset_scores("rank(close)", PANEL), evaluate("rank(close)", PANEL)
    )
    with pytest.raises(ValueError):
        macro_scores(factor, PANEL.returns, window=2)
