"""Portfolio constructions: how a strategy turns a combined signal into target weights.

Each construction is declared once, here, as a small class registered under its name;
the strategy schema (``[portfolio] kind``) and its error message, the variant names and
the CLI's help, the decision, the scoring of what is traded (``alphafactory.traded``) and
the walk-forward report all read :data:`CONSTRUCTIONS`. Adding a construction is a class
here (or in a module that calls :func:`register`) and its test.

What a construction knows:

- ``positions``: the weights built from signals (..., N), every row at once (what a
  candidate is scored on, and the in-sample record); a missing signal value is neutral;
- ``decide``: the weights of the decision row, against the :class:`Market` there (the
  holdings before, what trading costs): each built-in construction optimises the same
  forecasts under its own constraints (``alphafactory.optimiser``), where ``positions``
  is the closed form pointing the same way;
- ``neutral``: what a signal with no information would hold (the benchmark for a tilt,
  equal weights for long-only, nothing for long-short): what a candidate is judged
  beyond, and what the allocation holds with no alpha (``without_alpha``);
- ``judged_on_position``: whether a candidate is scored on the active return of the
  position built from it alone (False: DESIGN.md contract 5's quantile long-short, the
  book a long-short strategy stands for);
- ``excess_over_cash``: whether the report measures its excess over cash (a self-financed
  book) rather than over the strategy's risk-parity benchmark.

Pure: numpy and the core's risk model and optimiser.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import ClassVar

import numpy as np

from alphafactory.closed_form import budgeted_tilts
from alphafactory.optimiser import (
    BookProblem,
    OptimisationError,
    TiltProblem,
    solve_book,
    solve_tilt,
)
from alphafactory.registry import Registry
from alphafactory.risk import RiskModel, forecasts


class PortfolioError(ValueError):
    """Inputs the allocation cannot use (a construction not registered, a tilt without a
    benchmark...); the message names them."""


@dataclass(frozen=True)
class Sizing:
    """A strategy's ``[portfolio]`` sizes a construction reads (alphafactory.strategy
    documents each)."""

    gross: float = 1.0  # long_short: the sum of absolute weights (at most, when optimised)
    net: float = 0.0  # long_short's decision: the sum of weights
    name_limit: float = 1.0  # the books' decisions: the largest |weight| of one asset
    tilt_limit: float = 0.1  # tilt: the largest move of an asset from the benchmark
    tracking_error: float = 0.03 / np.sqrt(12)  # tilt: the active risk budget, per period
    class_limit: float = 0.1  # tilt: the largest move of a class from the benchmark
    risk_aversion: float = 1.0
    information_coefficient: float = 0.05  # a standardised signal's forecast (Grinold)
    # tilt, every row at once: rounds raising the closed form toward the budget (0 for
    # scoring candidates, where only its direction counts; more where its size does)
    budget_rounds: int = 0


@dataclass(frozen=True)
class Market:
    """What positions are built against. For ``positions``: the benchmark per row (...,
    N) or one for all (N,), and the risk model per row of the signals (or one for all).
    For ``decide``, one row: the benchmark (N,), its risk model, the class of each asset
    (negative: none), the weights held before (None: the benchmark) and the cost of
    trading a unit of each asset's weight."""

    benchmark: np.ndarray | None = None
    risks: Sequence[RiskModel] = ()
    classes: np.ndarray | None = None
    previous: np.ndarray | None = None
    costs: np.ndarray | None = None


class Construction:
    name: ClassVar[str]
    summary: ClassVar[str]  # one line for the docs and the help
    needs_benchmark: ClassVar[bool] = False
    needs_risk: ClassVar[bool] = False  # its Market needs a risk model per row
    judged_on_position: ClassVar[bool] = True
    excess_over_cash: ClassVar[bool] = False

    def positions(self, signals: np.ndarray, sizing: Sizing, market: Market) -> np.ndarray:
        raise NotImplementedError

    def decide(self, signal: np.ndarray, sizing: Sizing, market: Market) -> np.ndarray:
        """The decision row's weights from its combined ``signal`` (N,)."""
        return self.positions(np.asarray(signal, dtype=np.float64), sizing, market)

    def neutral(self, benchmark: np.ndarray) -> np.ndarray:
        """What a signal with no information holds (``benchmark``: (..., N))."""
        raise NotImplementedError

    def without_alpha(self, benchmark: np.ndarray) -> np.ndarray:
        """The allocation with no alpha to trade."""
        return np.broadcast_to(self.neutral(benchmark), np.shape(benchmark)).copy()


def standardize(values: np.ndarray) -> np.ndarray:
    """Cross-sectional z-score along the last axis; NaN and constant rows become 0."""
    values = np.asarray(values, dtype=np.float64)
    valid = np.isfinite(values)
    count = valid.sum(axis=-1, keepdims=True)
    filled = np.where(valid, values, 0.0)
    mean = filled.sum(axis=-1, keepdims=True) / np.maximum(count, 1)
    centred = np.where(valid, values - mean, 0.0)
    std = np.sqrt((centred**2).sum(axis=-1, keepdims=True) / np.maximum(count - 1, 1))
    with np.errstate(invalid="ignore", divide="ignore"):
        z = np.where(std > 1e-12, centred / std, 0.0)
    return np.where(count >= 2, z, 0.0)


def unit_long_short(signals: np.ndarray) -> np.ndarray:
    """The demeaned signal scaled to a sum of absolute weights of 1 per row (0 where the
    row has no spread); missing values neutral."""
    signals = np.asarray(signals, dtype=np.float64)
    valid = np.isfinite(signals)
    count = valid.sum(axis=-1, keepdims=True)
    mean = np.where(valid, signals, 0.0).sum(axis=-1, keepdims=True) / np.maximum(count, 1)
    centred = np.where(valid, signals - mean, 0.0)
    spread = np.abs(centred).sum(axis=-1, keepdims=True)
    return np.divide(centred, spread, out=np.zeros_like(centred), where=spread > 0)


class LongShort(Construction):
    name = "long_short"
    summary = (
        "a book of gross at most and net weight, optimised on the forecasts; every row "
        "scored: the demeaned signal"
    )
    judged_on_position = False
    excess_over_cash = True

    def positions(self, signals, sizing, market):
        return sizing.gross * unit_long_short(signals)

    def decide(self, signal, sizing, market):
        return _optimised_book(signal, sizing, market, long_only=False)

    def neutral(self, benchmark):
        return np.zeros_like(benchmark)


class LongOnly(Construction):
    name = "long_only"
    summary = (
        "a fully invested book without shorts, optimised on the forecasts; every row "
        "scored: the long side of the demeaned signal"
    )

    def positions(self, signals, sizing, market):
        longs = np.maximum(unit_long_short(signals), 0.0)
        total = longs.sum(axis=-1, keepdims=True)
        equal = np.full_like(longs, 1.0 / longs.shape[-1])
        return np.divide(longs, total, out=equal, where=total > 0)

    def decide(self, signal, sizing, market):
        return _optimised_book(signal, sizing, market, long_only=True)

    def neutral(self, benchmark):
        return np.full_like(benchmark, 1.0 / np.shape(benchmark)[-1])

    def without_alpha(self, benchmark):
        # an allocation with nothing to trade holds the strategy's benchmark
        return np.array(benchmark, dtype=np.float64)


class Tilt(Construction):
    name = "tilt"
    summary = (
        "the benchmark tilted by the forecasts within a tracking-error budget "
        "(alphafactory.optimiser)"
    )
    needs_benchmark = True
    needs_risk = True

    def positions(self, signals, sizing, market):
        signals = np.asarray(signals, dtype=np.float64)
        benchmark = _benchmark_of(market, signals.shape[-1])
        if not market.risks:
            raise PortfolioError("a tilt needs a risk model for its rows")
        batch = (
            signals.reshape((-1, *signals.shape[-2:])) if signals.ndim > 1 else signals[None, None]
        )
        if len(market.risks) == 1:  # one for every row
            volatility = market.risks[0].volatility()
        else:
            volatility = np.stack([r.volatility() for r in market.risks])
        alpha = sizing.information_coefficient * volatility * standardize(batch)
        active = budgeted_tilts(
            alpha,
            benchmark,
            list(market.risks),
            tracking_error=sizing.tracking_error,
            asset_limit=sizing.tilt_limit,
            rounds=sizing.budget_rounds,
        )
        return (np.maximum(benchmark + active, 0.0)).reshape(signals.shape)

    def decide(self, signal, sizing, market):
        benchmark = _benchmark_of(market, np.shape(signal)[-1])
        risk = _decision_risk(market, "a tilt")
        problem = TiltProblem(
            benchmark=benchmark,
            alpha=forecasts(standardize(signal), risk, sizing.information_coefficient),
            risk=risk,
            tracking_error=sizing.tracking_error,
            asset_limit=sizing.tilt_limit,
            risk_aversion=sizing.risk_aversion,
            classes=market.classes,
            class_limit=sizing.class_limit,
            previous=market.previous,
            costs=market.costs,
        )
        return _solved(solve_tilt, problem)

    def neutral(self, benchmark):
        return np.array(benchmark, dtype=np.float64)


def _optimised_book(signal, sizing: Sizing, market: Market, *, long_only: bool) -> np.ndarray:
    risk = _decision_risk(market, "a long-only book" if long_only else "a long-short book")
    problem = BookProblem(
        alpha=forecasts(standardize(signal), risk, sizing.information_coefficient),
        risk=risk,
        long_only=long_only,
        gross=sizing.gross,
        net=sizing.net,
        name_limit=sizing.name_limit,
        risk_aversion=sizing.risk_aversion,
        previous=market.previous,
        costs=market.costs,
    )
    return _solved(solve_book, problem)


def _solved(solve, problem) -> np.ndarray:
    try:
        return solve(problem)
    except OptimisationError as error:
        raise PortfolioError(str(error)) from error


def _decision_risk(market: Market, what: str) -> RiskModel:
    if len(market.risks) != 1:
        raise PortfolioError(f"{what}'s decision needs the risk model of its row")
    return market.risks[0]


def _benchmark_of(market: Market, assets: int) -> np.ndarray:
    if market.benchmark is None or np.shape(market.benchmark)[-1] != assets:
        raise PortfolioError(f"a tilt needs a benchmark of {assets} weights")
    return np.asarray(market.benchmark, dtype=np.float64)


CONSTRUCTIONS: Registry[Construction] = Registry("portfolio kind", PortfolioError)
register = CONSTRUCTIONS.register
construction = CONSTRUCTIONS.lookup
for _builtin in (LongShort, LongOnly, Tilt):
    register(_builtin)
