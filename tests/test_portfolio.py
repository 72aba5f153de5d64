"""Pruning, combination and weights (alphafactory.portfolio), against direct formulas."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import stats

from alphafactory.combinations import combination_weights
from alphafactory.constructions import Market, Sizing, construction
from alphafactory.portfolio import (
    PortfolioError,
    combined_signal,
    in_sample_sharpe,
    positions,
    prune,
    risk_parity,
    risk_parity_rows,
    standardize,
)
from alphafactory.risk import risk_rows, shrunk_risk

RNG = np.random.default_rng(7)


def test_standardize_is_a_per_date_z_score_with_missing_values_neutral():
    values = np.array(
        [[1.0, 2.0, np.nan, 5.0], [3.0, 3.0, 3.0, 3.0], [np.nan, 1.0, np.nan, np.nan]]
    )
    z = standardize(values)
    np.testing.assert_allclose(z[0, [0, 1, 3]], stats.zscore([1.0, 2.0, 5.0], ddof=1))
    assert z[0, 2] == 0.0
    assert not z[1].any() and not z[2].any()  # constant row, single value


def test_prune_keeps_the_best_of_correlated_alphas_and_stops_at_the_pool_size():
    base = RNG.normal(size=(40, 8))
    near_copy = base + 0.05 * RNG.normal(size=base.shape)
    others = [RNG.normal(size=base.shape) for _ in range(3)]
    signals = np.stack([base, near_copy, *others])
    scores = np.array([1.0, 2.0, 0.5, 0.4, 0.3])
    assert prune(scores, signals, max_correlation=0.7, size=10) == [1, 2, 3, 4]
    assert prune(scores, signals, max_correlation=0.7, size=2) == [1, 2]
    assert prune(scores, signals, max_correlation=1.0, size=10) == [1, 0, 2, 3, 4]
    flat = np.stack([np.zeros_like(base), base])
    assert prune(np.array([9.0, 1.0]), flat, max_correlation=0.7, size=5) == [1]
    # a settled member is not pruned for its correlation with another; the size still binds
    settled = np.array([True, True, False, False, False])
    kept = prune(scores, signals, max_correlation=0.7, size=10, settled=settled)
    assert kept == [1, 0, 2, 3, 4]
    assert prune(scores, signals, max_correlation=0.7, size=1, settled=settled) == [1]
    new_copy = prune(scores, signals, max_correlation=0.7, size=10, settled=~settled)
    assert new_copy == [1, 2, 3, 4]  # a new alpha repeating a member still does not enter


def test_ic_weights_are_each_alphas_mean_ic_normalised_and_flip_backward_alphas():
    returns = RNG.normal(size=(60, 10))
    forward = np.vstack([returns[1:], np.full((1, 10), np.nan)])  # last row: decision date
    good = forward + RNG.normal(size=forward.shape)
    backward = -forward + 2 * RNG.normal(size=forward.shape)
    good[-1], backward[-1] = RNG.normal(size=10), RNG.normal(size=10)
    weights = combination_weights(np.stack([good, backward]), forward, "ic_weighted")
    ics = [
        np.mean([stats.pearsonr(s[t], forward[t])[0] for t in range(59)]) for s in (good, backward)
    ]
    np.testing.assert_allclose(weights, np.array(ics) / np.abs(ics).sum(), rtol=1e-10)
    assert weights[0] > 0 > weights[1]


def test_ridge_weights_solve_the_penalised_least_squares():
    k, dates, assets = 3, 50, 12
    signals = RNG.normal(size=(k, dates, assets))
    forward = 0.5 * signals[0] - 0.2 * signals[2] + RNG.normal(size=(dates, assets))
    forward[-1] = np.nan
    weights = combination_weights(signals, forward, "ridge", ridge_alpha=0.5)
    x = standardize(signals)[:, :-1].reshape(k, -1).T
    y = standardize(forward[:-1]).reshape(-1)
    lam = 0.5 * np.trace(x.T @ x) / k
    augmented_x = np.vstack([x, np.sqrt(lam) * np.eye(k)])  # ridge as ordinary least squares
    beta = np.linalg.lstsq(augmented_x, np.concatenate([y, np.zeros(k)]), rcond=None)[0]
    np.testing.assert_allclose(weights, beta / np.abs(beta).sum(), rtol=1e-8)
    assert weights[0] > 0 > weights[2]


def test_equal_weights_and_the_combined_signal_use_the_decision_date():
    signals = RNG.normal(size=(4, 5, 6))
    weights = combination_weights(signals, np.full((5, 6), np.nan), "equal")
    np.testing.assert_allclose(weights, 0.25)
    want = sum(0.25 * stats.zscore(signals[j, -1], ddof=1) for j in range(4))
    np.testing.assert_allclose(combined_signal(signals, weights), want)
    with pytest.raises(PortfolioError, match="'best' is not one of"):
        combination_weights(signals, signals[0], "best")


def test_long_short_is_dollar_neutral_with_the_given_gross():
    w = positions(np.array([3.0, 1.0, -2.0, 0.5]), "long_short", Sizing(gross=2.0))
    assert abs(w.sum()) < 1e-12 and np.isclose(np.abs(w).sum(), 2.0)
    assert np.argmax(w) == 0 and np.argmin(w) == 2


def test_long_only_truncates_the_shorts():
    w = positions(np.array([3.0, 1.0, -2.0, 0.5]), "long_only")
    assert np.isclose(w.sum(), 1.0) and (w >= 0).all() and w[2] == 0.0
    ls = positions(np.array([3.0, 1.0, -2.0, 0.5]), "long_short")
    np.testing.assert_allclose(w, np.maximum(ls, 0) / np.maximum(ls, 0).sum())


def test_the_tilt_follows_the_forecast_within_its_budget_and_limits():
    """Every row (the closed form a candidate is scored on) and the decision (the
    optimiser) move toward the forecast, stay fully invested, short nothing, move no
    asset by more than its limit or its benchmark weight, and spend at most the budget."""
    returns = RNG.normal(scale=[0.01, 0.02, 0.04, 0.08], size=(120, 4))
    bench = risk_parity(returns)
    vol = returns.std(axis=0, ddof=1)
    np.testing.assert_allclose(bench, (1 / vol) / (1 / vol).sum())
    risk = shrunk_risk(returns[-36:])
    sizing = Sizing(tilt_limit=0.05, tracking_error=0.002)
    market = Market(bench, [risk])
    signal = np.array([1.0, -1.0, 0.5, 0.0])
    for w in (
        positions(signal, "tilt", sizing, market),
        construction("tilt").decide(signal, sizing, market),
    ):
        assert w.sum() == pytest.approx(1.0, abs=1e-3) and (w >= 0).all()
        active = w - bench
        assert (np.abs(active) <= np.minimum(0.05, bench) + 1e-6).all()
        assert risk.variance(active) <= 0.002**2 * (1 + 1e-3)
        assert active[0] > 0 and active[1] < 0
    with pytest.raises(PortfolioError, match="a tilt needs a benchmark of 4 weights"):
        positions(np.ones(4), "tilt")
    with pytest.raises(PortfolioError, match="a tilt needs a risk model"):
        positions(np.ones(4), "tilt", sizing, Market(bench))


def test_risk_parity_by_class_gives_each_class_an_equal_share_of_risk():
    # three equity-like assets and one bond: by asset, equity would take 3/4 of the risk
    returns = RNG.normal(scale=[0.04, 0.04, 0.04, 0.01, 0.001], size=(240, 5))
    classes = np.array([0, 0, 0, 1, 2])
    held = np.array([True, True, True, True, False])  # the last is cash: outside the mix
    w = risk_parity(returns, classes, held=held)
    assert np.isclose(w.sum(), 1.0) and w[4] == 0.0
    risk = [np.std(returns[:, m] @ w[m], ddof=1) for m in (slice(0, 3), slice(3, 4))]
    assert risk[0] == pytest.approx(risk[1], rel=1e-9)
    np.testing.assert_allclose(w[:3] / w[:3].sum(), risk_parity(returns[:, :3]))


def test_risk_parity_holds_nothing_of_an_asset_without_two_returns():
    returns = RNG.normal(scale=0.02, size=(36, 3))
    returns[:-1, 2] = np.nan  # listed in the last month only
    w = risk_parity(returns)
    assert w[2] == 0.0 and np.isclose(w.sum(), 1.0)
    assert np.allclose(risk_parity(np.full((5, 2), np.nan)), 0.5)


def test_risk_parity_gives_a_riskless_asset_nothing_even_when_it_is_held():
    """Cash whose constant return rounds to a volatility of 1e-19 would otherwise take
    almost all of the mix (its inverse volatility)."""
    returns = RNG.normal(scale=0.03, size=(60, 3))
    returns[:, 2] = 0.003 + 1e-18 * RNG.standard_normal(60)
    classes = np.array([0, 0, 1])
    for grouped in (None, classes):
        w = risk_parity(returns, grouped)
        assert w[2] == 0.0 and np.isclose(w[:2].sum(), 1.0)


@pytest.mark.parametrize("grouped", [False, True])
def test_risk_parity_at_every_row_is_risk_parity_of_each_rows_window(grouped):
    returns = RNG.normal(scale=[0.04, 0.03, 0.02, 0.01, 0.05, 0.0], size=(50, 6))
    returns[:, 5] = 0.002  # cash: riskless
    returns[:20, 1] = np.nan  # listed later
    returns[30, 2] = np.nan  # a gap
    classes = np.tile([0, 0, 1, 1, 2, 3], (50, 1))
    classes[40:, 4] = 1  # reclassified
    held = np.array([True, True, True, True, True, False])
    groups = classes if grouped else None
    rows = risk_parity_rows(returns, 12, groups, held=held, first=0, block=7)
    for t in range(50):
        one = risk_parity(
            returns[max(0, t + 1 - 12) : t + 1], classes[t] if grouped else None, held=held
        )
        np.testing.assert_allclose(rows[t], one, rtol=1e-12, atol=1e-15, err_msg=f"row {t}")
    np.testing.assert_array_equal(
        risk_parity_rows(returns, 12, groups, held=held, first=45), rows[45:]
    )


@pytest.mark.parametrize("kind", ["long_short", "long_only", "tilt"])
def test_positions_build_every_row_as_they_build_one(kind):
    signals = RNG.normal(size=(3, 7, 5))
    signals[0, 2] = np.nan  # no signal at all: flat, the equal long-only mix, the benchmark
    signals[1, 3, 1] = np.nan  # one missing value: neutral
    benchmark = RNG.dirichlet(np.ones(5), size=7)  # one per row
    risks = risk_rows(RNG.normal(scale=0.04, size=(40, 5)), 24, first=33)  # one per row
    sizing = Sizing(gross=1.5, tilt_limit=0.04)
    built = positions(signals, kind, sizing, Market(benchmark, risks))
    for k, row in np.ndindex(3, 7):
        one = positions(signals[k, row], kind, sizing, Market(benchmark[row], [risks[row]]))
        np.testing.assert_allclose(built[k, row], one, atol=1e-15)
    assert np.isfinite(built).all()
    with pytest.raises(PortfolioError, match="'momentum' is not one of"):
        positions(signals, "momentum")


def test_the_in_sample_sharpe_rebuilds_the_position_at_every_row_and_holds_it():
    """Like for like: each known row's position is the one ``positions`` builds from
    that row's combined signal, earning that row's forward return; the decision row (its
    return not known) is left out; with no signal the position is the benchmark."""
    rng = np.random.default_rng(11)
    forward = rng.normal(0.005, 0.04, (30, 6))
    forward[-1] = np.nan
    signals = rng.standard_normal((2, 30, 6))
    weights = np.array([0.7, -0.3])
    benchmark = np.full(6, 1 / 6)
    market = Market(benchmark, [shrunk_risk(rng.normal(0.005, 0.04, (36, 6)))])
    sizing = Sizing(tilt_limit=0.05)
    got = in_sample_sharpe(
        signals, weights, forward, "tilt", periods_per_year=12, sizing=sizing, market=market
    )
    held = []
    for row in range(29):
        combined = weights @ standardize(signals[:, row, :])
        position = positions(combined, "tilt", sizing, market)
        held.append(position @ forward[row])
    held = np.array(held)
    assert got == pytest.approx(held.mean() / held.std(ddof=1) * np.sqrt(12), rel=1e-12)
    bench = forward[:-1] @ benchmark
    none = in_sample_sharpe(
        np.empty((0, 30, 6)), np.zeros(0), forward, "tilt", periods_per_year=12, market=market
    )
    assert none == pytest.approx(bench.mean() / bench.std(ddof=1) * np.sqrt(12), rel=1e-12)
    # a signal that knew each row's return: a long-short book far above any noise
    foresight = in_sample_sharpe(
        forward[None], np.ones(1), forward, "long_short", periods_per_year=12
    )
    assert foresight > 5
    flat = in_sample_sharpe(
        np.empty((0, 30, 6)), np.zeros(0), forward, "long_short", periods_per_year=12
    )
    assert np.isnan(flat)
