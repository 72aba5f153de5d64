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


def naive_macro_scores(factor, returns, min_periods, classes=None):
    """Per date and asset: the OLS slope of r_s on f_{s-1} over every row s <= t where
    both are known, shrunk toward the class mean by the James-Stein weight, times f_t
    minus the mean of those f_{s-1}; written out with polyfit, one regression at a time."""
    rows, assets = returns.shape
    classes = np.full((rows, assets), -1) if classes is None else classes
    out = np.full((rows, assets), np.nan)
    for t in range(1, rows):
        if not np.isfinite(factor[t]):
            continue
        slope, noise, centre = np.full(assets, np.nan), np.full(assets, np.nan), np.zeros(assets)
        for i in range(assets):
            x, y = factor[:t], returns[1 : t + 1, i]
            known = np.isfinite(x) & np.isfinite(y)
            x, y = x[known], y[known]
            if len(x) < min_periods or np.ptp(x) == 0:
                continue
            b, a = np.polyfit(x, y, 1)
            slope[i] = b
            noise[i] = np.sum((y - a - b * x) ** 2) / (len(x) - 2) / np.sum((x - x.mean()) ** 2)
            centre[i] = x.mean()
        shrunk = slope.copy()
        for c in set(classes[t][classes[t] >= 0]):
            members = (classes[t] == c) & np.isfinite(slope)
            if members.sum() < 2:
                continue
            dispersion = np.var(slope[members], ddof=1)
            weight = min(1.0, noise[members].mean() / dispersion) if dispersion > 0 else 1.0
            shrunk[members] = (1 - weight) * slope[members] + weight * slope[members].mean()
        out[t] = shrunk * (factor[t] - centre)
    return out


def _level_market(seed):
    rng = np.random.default_rng(seed)
    factor = 300 + np.cumsum(rng.standard_normal(90))  # a level series: cancellation-prone
    factor[[7, 30]] = np.nan
    loading = np.array([0.004, 0.002, -0.001, 0.003, 0.0])
    returns = (
        0.01 * rng.standard_normal((90, 5)) + np.r_[np.nan, factor[:-1] - 300][:, None] * loading
    )
    returns[rng.random(returns.shape) < 0.03] = np.nan
    return factor, returns


@pytest.mark.parametrize("min_periods", [3, 12, 40])
def test_macro_mapping_matches_per_date_regressions(min_periods):
    factor, returns = _level_market(min_periods)
    classes = np.broadcast_to(np.array([0, 0, 1, 1, -1]), returns.shape)
    for grouping in (None, classes):
        expected = naive_macro_scores(factor, returns, min_periods, grouping)
        got = macro_scores(factor, returns, min_periods=min_periods, classes=grouping)
        assert np.isfinite(got).sum() > 100
        np.testing.assert_allclose(got, expected, rtol=1e-7, atol=1e-12, equal_nan=True)
    got = macro_scores(factor, returns, min_periods=min_periods)
    many = macro_scores(np.stack([factor, -factor] * 20, axis=1), returns, min_periods=min_periods)
    assert many.shape == (90, 40, 5)
    np.testing.assert_array_equal(many[:, 0], got)
    np.testing.assert_allclose(many[:, 1], got, equal_nan=True)  # slope and level both flip


@pytest.mark.parametrize("shift, scale", [(1000.0, 1.0), (0.0, 37.5), (-5.0, -0.01)])
def test_forecasts_do_not_change_when_a_constant_is_added_or_the_factor_scaled(shift, scale):
    factor, returns = _level_market(5)
    classes = np.broadcast_to(np.array([0, 0, 1, 1, -1]), returns.shape)
    base = macro_scores(factor, returns, min_periods=24, classes=classes)
    moved = macro_scores(shift + scale * factor, returns, min_periods=24, classes=classes)
    assert np.isfinite(base).sum() > 200
    np.testing.assert_allclose(moved, base, rtol=1e-6, atol=1e-12, equal_nan=True)


def test_a_factor_that_never_changes_sign_still_moves_money_between_assets():
    """A positive spread whose swings predict one class up and the other down: the
    forecasts change sign with the spread around its mean, not with its (fixed) sign."""
    rng = np.random.default_rng(2)
    spread = 2.0 + np.sin(np.arange(200) / 6.0) + 0.1 * rng.standard_normal(200)
    assert (spread > 0).all()
    previous = np.r_[np.nan, spread[:-1] - 2.0][:, None]
    returns = 0.01 * rng.standard_normal((200, 4)) + 0.01 * previous * np.array([1, 1, -1, -1])
    forecasts = macro_scores(spread, returns, min_periods=60, classes=np.array([0, 0, 1, 1]))
    late = forecasts[100:]
    assert (np.sign(late[:, 0]) == -np.sign(late[:, 2])).mean() > 0.95
    assert 0.3 < (late[:, 0] > 0).mean() < 0.7  # both directions, as the spread moves
    realised = returns[101:]
    hits = np.sign(late[:-1, 0] - late[:-1, 2]) == np.sign(realised[:, 0] - realised[:, 2])
    assert hits.mean() > 0.6


def test_asset_scores_dispatch():
    scores = asset_scores("ts_zscore(cpi, 5)", PANEL, min_periods=12, class_group="sector")
    factor = evaluate("ts_zscore(cpi, 5)", PANEL)
    expected = macro_scores(factor, PANEL.returns, min_periods=12, classes=PANEL.groups["sector"])
    np.testing.assert_array_equal(scores, expected)
    np.testing.assert_array_equal(
        asset_scores("rank(close)", PANEL), evaluate("rank(close)", PANEL)
    )
    with pytest.raises(ValueError):
        macro_scores(factor, PANEL.returns, min_periods=2)
