"""The risk-budgeted tilt (alphafactory.optimiser) on independent random signals over a
benchmark shaped like the bundled one, and its shrunk covariance against a direct one."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.covariance import LedoitWolf

from alphafactory.optimiser import TiltProblem, forecasts, shrunk_risk, solve_tilt
from alphafactory.portfolio import risk_parity

RNG = np.random.default_rng(31)
# 22 equity portfolios, two bonds, oil and cash: four classes, as the bundled universe
CLASSES = np.array([0] * 22 + [1, 1, 2, 3])
VOLS = np.array([0.05] * 22 + [0.012, 0.015, 0.09, 0.0])
BUDGET = 0.015 / np.sqrt(12)  # 1.5% a year, monthly (the text of the first test says why)
LIMIT, CLASS_LIMIT = 0.05, 0.20


def _market(rows: int = 36) -> np.ndarray:
    """Monthly returns: equities share a factor, the rest are independent, cash fixed."""
    equity = RNG.normal(size=(rows, 1))
    noise = RNG.normal(size=(rows, len(VOLS)))
    loading = np.where(CLASSES == 0, 0.8, 0.0)
    shocks = loading * equity + np.sqrt(1 - loading**2) * noise
    returns = 0.005 + VOLS * shocks
    returns[:, -1] = 0.002
    return returns


def _problem(returns: np.ndarray, signal: np.ndarray, **changes) -> TiltProblem:
    risk = shrunk_risk(returns)
    held = np.arange(len(VOLS)) < len(VOLS) - 1  # cash is outside the benchmark
    benchmark = risk_parity(returns, CLASSES, held=held)
    settings = {
        "benchmark": benchmark,
        "alpha": forecasts(signal, risk, 0.05),
        "risk": risk,
        "tracking_error": BUDGET,
        "asset_limit": LIMIT,
        "classes": CLASSES,
        "class_limit": CLASS_LIMIT,
        "risk_aversion": 0.1,
    }
    return TiltProblem(**(settings | changes))


def test_on_random_signals_the_tilt_is_class_neutral_on_average_and_keeps_every_limit():
    """An asset moves at most its benchmark weight either way (the symmetry that keeps
    noise from tilting classes), so on random signals the 22 small equity weights cap
    what the tilt can spend: about 1.7% a year of tracking error at these limits. The
    budget here is one the limits leave reachable, so the test shows that the tilt uses
    it and that the shrunk covariance predicts the active risk realised."""
    shifts, realised = [], []
    for _ in range(8):  # markets
        returns = _market()
        for _ in range(100):  # independent random signals on each
            problem = _problem(returns, RNG.standard_normal(len(VOLS)))
            weights = solve_tilt(problem)
            active = weights - problem.benchmark
            assert np.isclose(weights.sum(), 1.0) and (weights >= 0).all()
            assert np.abs(active).max() <= LIMIT + 1e-6
            by_class = np.bincount(CLASSES, weights=active)
            assert np.abs(by_class).max() <= CLASS_LIMIT + 1e-6
            assert problem.risk.variance(active) <= BUDGET**2 * (1 + 1e-3)  # solver tolerance
            shifts.append(by_class)
            # the active return over the next months, drawn from the same market
            realised.extend(_market(3) @ active)
    shifts = np.array(shifts)
    assert np.abs(shifts.mean(axis=0)).max() < 0.005  # under half a point per class
    assert np.abs(shifts).mean() > 0.01  # while it does move money between classes
    assert np.std(realised, ddof=1) == pytest.approx(BUDGET, rel=0.2)


def test_costs_hold_the_previous_weights_unless_the_forecast_pays_for_trading():
    returns = _market()
    signal = RNG.standard_normal(len(VOLS))
    free = solve_tilt(_problem(returns, signal))
    before = _problem(returns, signal).benchmark
    costly = solve_tilt(_problem(returns, signal, previous=before, costs=np.full(26, 0.05)))
    np.testing.assert_allclose(costly, before, atol=1e-6)  # 5% a trade: nothing pays
    cheap = solve_tilt(_problem(returns, signal, previous=before, costs=np.full(26, 1e-5)))
    assert np.abs(cheap - free).max() < 0.01 < np.abs(free - before).max()


def test_an_asset_without_two_returns_is_not_traded():
    returns = _market()
    returns[:-1, 3] = np.nan
    weights = solve_tilt(_problem(returns, RNG.standard_normal(len(VOLS))))
    assert weights[3] == pytest.approx(0.0, abs=1e-9)


def test_the_shrunk_covariance_is_the_ledoit_wolf_correlation_scaled_by_volatility():
    returns = _market(60)[:, :-1]  # cash (riskless) aside
    risk = shrunk_risk(returns)
    vol = returns.std(axis=0, ddof=1)
    scores = (returns - returns.mean(axis=0)) / vol
    fitted = LedoitWolf(assume_centered=True).fit(scores)
    direct = (1 - fitted.shrinkage_) * (scores.T @ scores) / len(scores)
    direct += fitted.shrinkage_ * np.eye(len(vol))
    np.testing.assert_allclose(risk.covariance(), direct * np.outer(vol, vol), rtol=1e-10)
    assert risk.loadings.shape == (60, 25)  # the window's rows: small for many assets
