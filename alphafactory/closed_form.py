"""The risk-budgeted tilt in closed form, at every row a candidate is scored on.

Scoring a candidate builds its position at each of some 120 training rows, for hundreds
of candidates a decision: too many of ``alphafactory.optimiser``'s solves.
:func:`budgeted_tilts` is the tilt's closed form where the constraints allow it: the
mean-variance direction ``S^-1 alpha`` made to sum to zero, scaled to the
tracking-error budget, then moved to the nearest point inside the same symmetric boxes
that still sums to zero (and scaled down where that is still over the budget), with no
class limit and no cost. It costs about half a millisecond a candidate over 120 rows of
the bundled universe, as much again as evaluating the formula. So a candidate is judged
on a position pointing the way the decision's would from it alone: on random signals
over the bundled shape the two correlate at 0.64 on average (tests/test_optimiser.py),
the optimiser spending the class limits and choosing again which assets sit at their
bounds.

Pure: numpy and numba (the projection).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numba import njit

from alphafactory.risk import RISKLESS_VOL, RiskModel

# bisection steps of the closed form's projection onto the boxes (to tell which assets sit
# at a bound; the last step is exact)
PROJECTION_STEPS = 20
# the diagonal a solve keeps at least, relative to the mean variance: with no shrinkage
# and fewer rows than assets the sample covariance is singular
SOLVE_FLOOR = 1e-4


def budgeted_tilts(
    alpha: np.ndarray,
    benchmarks: np.ndarray,
    risks: list[RiskModel],
    *,
    tracking_error: float,
    asset_limit: float,
    rounds: int = 0,
) -> np.ndarray:
    """The closed-form tilt (module doc) of each row of ``alpha`` (F, T, N) expected
    active returns: (F, T, N) active weights, row ``t`` against ``benchmarks[t]`` with
    risk ``risks[t]`` (one model and one benchmark (N,) for every row: solved at once).
    ``rounds``: times the scale is raised by what the boxes cut from the budget, so the
    position spends more of it, as the optimiser does (each costs another projection)."""
    alpha = np.nan_to_num(np.asarray(alpha, dtype=np.float64))
    benchmarks = np.asarray(benchmarks, dtype=np.float64)
    if benchmarks.ndim == 1 and len(risks) == 1:  # one row for all: rows as candidates
        flat = alpha.reshape(-1, 1, alpha.shape[-1])
        one = budgeted_tilts(
            flat,
            benchmarks[None],
            risks,
            tracking_error=tracking_error,
            asset_limit=asset_limit,
            rounds=rounds,
        )
        return one.reshape(alpha.shape)
    if len(risks) != alpha.shape[-2] or len(benchmarks) != len(risks):
        raise ValueError(
            f"{len(risks)} risk models and {len(benchmarks)} benchmarks for {alpha.shape[-2]} rows"
        )
    upper = np.minimum(asset_limit, benchmarks)
    usable = np.stack([r.usable & (r.volatility() > RISKLESS_VOL) for r in risks])
    movable = usable & (upper > 0) & ((usable & (upper > 0)).sum(axis=1) >= 2)[:, None]
    stack = _Stack.of(risks)
    # each row's mean-variance direction over its movable assets, made to sum to zero
    direction = stack.solve(alpha, movable)
    ones = stack.solve(movable.astype(np.float64), movable)
    total = ones.sum(axis=-1, keepdims=True)
    share = np.divide(ones, total, out=np.zeros_like(ones), where=total > 0)
    direction -= direction.sum(axis=-1, keepdims=True) * share
    # scaled to the budget, moved into the boxes, scaled down where still over it
    bound = np.where(movable, upper, 0.0)
    scale = _budget_scale(stack.variance(direction), tracking_error)
    for _ in range(rounds):
        used = np.sqrt(stack.variance(_project(direction * scale, bound)))[..., None]
        missed = np.divide(tracking_error, used, out=np.ones_like(used), where=used > 0)
        scale *= np.clip(missed, 1.0, 10.0)
    boxed = _project(direction * scale, bound)
    used = stack.variance(boxed) / max(tracking_error**2, 1e-300)
    return boxed / np.sqrt(np.maximum(used, 1.0))[..., None]


@dataclass(frozen=True)
class _Stack:
    """The risk models of T rows as arrays, so every row's variance is one product."""

    loadings: np.ndarray  # (T, K, N), rows with fewer factors padded with zeros
    specific: np.ndarray  # (T, N)

    @classmethod
    def of(cls, risks: list[RiskModel]) -> _Stack:
        factors = max(r.loadings.shape[0] for r in risks)
        loadings = np.zeros((len(risks), factors, risks[0].loadings.shape[1]))
        for t, risk in enumerate(risks):
            loadings[t, : risk.loadings.shape[0]] = risk.loadings
        return cls(loadings, np.stack([r.specific for r in risks]))

    def variance(self, active: np.ndarray) -> np.ndarray:
        """``a' S_t a`` of (..., T, N) active weights, row t on model t: (..., T)."""
        factor = self._per_row(active, self.loadings.transpose(0, 2, 1))
        return (factor**2).sum(axis=-1) + (active**2 * self.specific).sum(axis=-1)

    def solve(self, vectors: np.ndarray, columns: np.ndarray) -> np.ndarray:
        """``S_t^-1 v`` of (..., T, N) vectors over each row's ``columns`` (T, N) (zero
        elsewhere), every row at once: the Woodbury identity on the factor form, the
        diagonal floored at ``SOLVE_FLOOR`` of the row's mean variance."""
        loadings = self.loadings * columns[:, None, :]
        variance = (loadings**2).sum(axis=1) + self.specific * columns
        count = columns.sum(axis=1, keepdims=True)
        mean = np.divide(
            variance.sum(axis=1, keepdims=True),
            count,
            where=count > 0,
            out=np.zeros((len(count), 1)),
        )
        diagonal = np.maximum(self.specific, SOLVE_FLOOR * np.maximum(mean, 1e-300))
        inverse = np.where(columns, 1.0 / diagonal, 0.0)
        scaled = np.where(columns, vectors, 0.0) * inverse
        inner = np.eye(loadings.shape[1]) + (loadings * inverse[:, None, :]) @ loadings.transpose(
            0, 2, 1
        )
        projected = self._per_row(scaled, loadings.transpose(0, 2, 1))  # (..., T, K)
        lead = projected.shape[:-2]
        rhs = projected.reshape(-1, *projected.shape[-2:]).transpose(1, 2, 0)  # (T, K, M)
        correction = (
            np.linalg.solve(inner, rhs).transpose(2, 0, 1).reshape(*lead, *projected.shape[-2:])
        )
        return scaled - self._per_row(correction, loadings) * inverse

    @staticmethod
    def _per_row(vectors: np.ndarray, matrices: np.ndarray) -> np.ndarray:
        """Row t of (..., T, A) times ``matrices[t]`` (T, A, B): (..., T, B), batched."""
        lead = vectors.shape[:-2]
        rows = vectors.reshape(-1, *vectors.shape[-2:]).transpose(1, 0, 2)  # (T, M, A)
        out = np.matmul(rows, matrices).transpose(1, 0, 2)
        return out.reshape(*lead, *out.shape[-2:])


def _budget_scale(variance: np.ndarray, tracking_error: float) -> np.ndarray:
    """Per row, the multiple of a position of this ``variance`` whose tracking error is
    the budget (0 for a position with none)."""
    variance = variance[..., None]
    return np.divide(
        tracking_error, np.sqrt(variance), out=np.zeros_like(variance), where=variance > 0
    )


def _project(active: np.ndarray, bound: np.ndarray) -> np.ndarray:
    """The nearest point to each row of ``active`` (..., N) with ``|a| <= bound`` summing
    to zero (:func:`_project_rows`)."""
    shape = active.shape
    rows = np.ascontiguousarray(active.reshape(-1, shape[-1]))
    bounds = np.ascontiguousarray(np.broadcast_to(bound, shape).reshape(-1, shape[-1]))
    return _project_rows(rows, bounds, PROJECTION_STEPS).reshape(shape)


@njit(cache=True, nogil=True)
def _project_rows(active: np.ndarray, bound: np.ndarray, steps: int) -> np.ndarray:
    """Row by row, ``clip(active - shift, -bound, bound)`` with the shift that makes it
    sum to zero. The clipped sum falls as the shift grows: bisection finds which assets
    sit at a bound, then the shift over the others is exact."""
    out = np.empty_like(active)
    rows, n = active.shape
    for r in range(rows):
        x, u = active[r], bound[r]
        low, high = np.min(x - u), np.max(x + u)
        for _ in range(steps):
            shift = 0.5 * (low + high)
            total = 0.0
            for i in range(n):
                total += min(max(x[i] - shift, -u[i]), u[i])
            if total > 0:
                low = shift
            else:
                high = shift
        shift = 0.5 * (low + high)
        total, inside = 0.0, 0
        for i in range(n):
            moved = x[i] - shift
            out[r, i] = min(max(moved, -u[i]), u[i])
            total += out[r, i]
            inside += abs(moved) < u[i]
        if inside:
            rest = total / inside
            for i in range(n):
                if abs(x[i] - shift) < u[i]:
                    out[r, i] = min(max(out[r, i] - rest, -u[i]), u[i])
    return out
