"""A risk-budgeted tilt: the active weights that best trade a forecast within a tracking
error budget (issue 31's ``tilt``).

The problem, at one decision, over active weights ``a`` around a benchmark ``b``::

    maximise    alpha' a  -  risk_aversion * a' S a  -  cost' |b + a - previous|
    subject to  sum(a) = 0                        (fully invested, as the benchmark)
                -min(limit, b) <= a <= min(limit, b)     (per-asset active limits)
                |sum of a over each class| <= class_limit
                a' S a <= tracking_error ** 2     (per period)

An asset moves at most its benchmark weight either way (or the asset limit, if smaller):
so nothing is shorted, and the feasible set is symmetric (``-a`` is feasible with ``a``),
so a forecast with no information (as likely ``-alpha`` as ``alpha``) tilts no class on
average. Without that symmetry the long-only bound truncates the shorts of small-weight
assets only, and the optimiser funds their longs from the large-weight ones: on random
signals over the bundled benchmark, 8 points into equity and out of bonds on average.
So an asset outside the benchmark (cash) is not bought either: with no forecast of its
own, selling others into it is a bet on the market that noise would make one way only
(on random signals, 2 points into cash on average). ``a = 0`` (the benchmark) is always
feasible. ``S`` is a shrunk covariance kept in factor
form (:class:`RiskModel`): the sample correlation of the window's returns shrunk toward
the identity by the Ledoit-Wolf intensity (scikit-learn's estimate on the standardised
returns), scaled back by each asset's volatility. With a window of ``T`` rows that is
``T`` loadings plus a diagonal, exactly, so the problem stays small for thousands of
assets. ``forecasts`` turns a standardised signal into expected active returns by
Grinold's rule (information coefficient times volatility times score).

The problem is written with cvxpy and solved by Clarabel. Pure: numpy, scikit-learn's
shrinkage estimate and the solver.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass

import numpy as np

from alphafactory.constructions import PortfolioError
from alphafactory.portfolio import RISKLESS_VOL


@dataclass(frozen=True)
class RiskModel:
    """Covariance ``loadings' loadings + diag(specific)`` of N assets."""

    loadings: np.ndarray  # (K, N)
    specific: np.ndarray  # (N,)
    usable: np.ndarray  # (N,) bool: assets with at least two returns in the window

    def covariance(self) -> np.ndarray:
        return self.loadings.T @ self.loadings + np.diag(self.specific)

    def volatility(self) -> np.ndarray:
        return np.sqrt((self.loadings**2).sum(axis=0) + self.specific)

    def variance(self, active: np.ndarray) -> np.ndarray:
        """``a' S a`` of each row of ``active`` (..., N)."""
        factor = np.asarray(active) @ self.loadings.T
        return (factor**2).sum(axis=-1) + (np.asarray(active) ** 2 * self.specific).sum(axis=-1)


def shrunk_risk(returns: np.ndarray) -> RiskModel:
    """The Ledoit-Wolf-shrunk covariance of a (T, N) window of returns (missing returns:
    the asset's mean; an asset with fewer than two is not usable and has no risk)."""
    from sklearn.covariance import ledoit_wolf_shrinkage

    returns = np.asarray(returns, dtype=np.float64)
    rows = len(returns)
    finite = np.isfinite(returns)
    count = finite.sum(axis=0)
    usable = count >= 2
    mean = np.where(finite, returns, 0.0).sum(axis=0) / np.maximum(count, 1)
    centred = np.where(finite, returns - mean, 0.0)
    vol = np.sqrt((centred**2).sum(axis=0) / np.maximum(count - 1, 1))
    risky = usable & (vol > RISKLESS_VOL)
    if rows < 2 or not risky.any():
        return RiskModel(np.zeros((1, returns.shape[1])), np.zeros(returns.shape[1]), usable)
    scores = np.divide(centred, vol, out=np.zeros_like(centred), where=risky)
    shrinkage = float(ledoit_wolf_shrinkage(scores[:, risky], assume_centered=True))
    loadings = np.sqrt((1.0 - shrinkage) / rows) * np.where(risky, centred, 0.0)
    return RiskModel(loadings, shrinkage * np.where(risky, vol**2, 0.0), usable)


def forecasts(signal: np.ndarray, risk: RiskModel, information_coefficient: float) -> np.ndarray:
    """Expected active return per asset and period from a standardised ``signal``
    (Grinold: IC x volatility x score); missing scores forecast nothing."""
    score = np.nan_to_num(np.asarray(signal, dtype=np.float64))
    return information_coefficient * risk.volatility() * score


@dataclass(frozen=True)
class TiltProblem:
    benchmark: np.ndarray  # (N,) weights summing to 1
    alpha: np.ndarray  # (N,) expected active return per period
    risk: RiskModel
    tracking_error: float  # per period (an annual budget / sqrt(periods per year))
    asset_limit: float  # the largest |active weight| of an asset
    risk_aversion: float = 1.0
    classes: np.ndarray | None = None  # (N,) class codes (negative: in no class)
    class_limit: float = 1.0  # the largest |active weight| of a class
    previous: np.ndarray | None = None  # (N,) the weights held before (None: no cost)
    costs: np.ndarray | None = None  # (N,) cost per unit of weight traded


def solve_tilt(problem: TiltProblem) -> np.ndarray:
    """The weights ``benchmark + a`` of the optimal active weights ``a`` (module doc)."""
    b = np.asarray(problem.benchmark, dtype=np.float64)
    upper = np.where(problem.risk.usable, np.minimum(problem.asset_limit, b), 0.0)
    held = b if problem.previous is None else np.asarray(problem.previous, dtype=np.float64)
    costs = np.zeros(len(b)) if problem.costs is None else np.broadcast_to(problem.costs, b.shape)
    active = _solve(problem, b, upper, held, np.asarray(costs, dtype=np.float64))
    # within the solver's tolerance the budget can be passed by a part in a thousand:
    # scaling the active weights down keeps every other limit (they are symmetric)
    used = problem.risk.variance(active) / max(problem.tracking_error**2, 1e-300)
    if used > 1.0:
        active = active / np.sqrt(used)
    weights = np.maximum(b + active, 0.0)  # -1e-9 is 0
    return weights / weights.sum()


def _class_matrix(classes: np.ndarray | None, n: int) -> np.ndarray:
    """(C, N): row c is 1 on the assets of class c."""
    if classes is None:
        return np.zeros((0, n))
    classes = np.asarray(classes)
    codes = np.unique(classes[classes >= 0])
    return (classes[None, :] == codes[:, None]).astype(np.float64)


def _solve(problem: TiltProblem, b, upper, held, costs) -> np.ndarray:
    """The active weights, written with cvxpy and solved by Clarabel. Written afresh at
    each decision: with the loadings as parameters, cvxpy's compiled map from parameters
    to the solver's data grows with their product (24 GB for 3,000 assets), while
    writing the problem anew costs 20 ms for 30 assets and 0.35 s for 3,000."""
    import cvxpy as cp

    n, risk = len(b), problem.risk
    a, exposure, traded = cp.Variable(n), cp.Variable(risk.loadings.shape[0]), cp.Variable(n)
    variance = cp.sum_squares(exposure) + cp.sum_squares(cp.multiply(np.sqrt(risk.specific), a))
    constraints = [
        exposure == risk.loadings @ a,
        cp.sum(a) == 0,
        a <= upper,
        a >= -upper,
        variance <= problem.tracking_error**2,
        traded >= b + a - held,
        traded >= held - b - a,
    ]
    members = _class_matrix(problem.classes, n)
    if len(members):
        constraints.append(cp.abs(members @ a) <= problem.class_limit)
    alpha = np.nan_to_num(np.asarray(problem.alpha, dtype=np.float64))
    objective = alpha @ a - problem.risk_aversion * variance - costs @ traded
    solved = cp.Problem(cp.Maximize(objective), constraints)
    try:
        with warnings.catch_warnings():  # "may be inaccurate": the status says so
            warnings.simplefilter("ignore", UserWarning)
            solved.solve(solver=cp.CLARABEL)
    except cp.error.SolverError as error:
        raise PortfolioError(f"the tilt's optimisation failed: {error}") from error
    if solved.status not in ("optimal", "optimal_inaccurate") or a.value is None:
        raise PortfolioError(f"the tilt's optimisation ended {solved.status!r}")
    return np.asarray(a.value, dtype=np.float64)
