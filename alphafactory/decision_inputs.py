"""What a decision builds its weights against: the strategy's benchmark, risk model,
asset classes, costs and the weights it holds (:func:`decision_market`), its
``[portfolio]`` as the rule that trades one signal (:func:`position_rule`), and the
exposures per class of what it decides (:func:`exposures_of`). Pure; the decision
(``alphafactory.decision``) and the reports read them.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np

from alphafactory.constructions import Market, Sizing, construction
from alphafactory.costs import cost_rates
from alphafactory.exposures import ClassExposure, class_exposures
from alphafactory.panel import Panel
from alphafactory.risk import shrunk_risk
from alphafactory.strategy import Strategy
from alphafactory.traded import BenchmarkError, PositionRule


class DecisionError(ValueError):
    """A decision that cannot be made with the data given; the message says why."""


def benchmark_weights(panel: Panel, strategy: Strategy, rows: int) -> np.ndarray:
    """The strategy's risk-parity benchmark from the ``volatility_months`` up to row
    ``rows`` (exclusive) of ``panel``."""
    try:
        return position_rule(strategy).benchmark(panel, rows)
    except BenchmarkError as error:
        raise DecisionError(str(error)) from error


def position_rule(strategy: Strategy, periods_per_year: float = 12.0) -> PositionRule:
    """The strategy's ``[portfolio]`` as what it trades from one signal (the tracking
    error budget per period of ``periods_per_year``)."""
    rules = strategy.portfolio
    return PositionRule(
        kind=rules.kind,
        sizing=Sizing(
            gross=rules.gross,
            net=rules.net,
            name_limit=rules.name_limit,
            tilt_limit=rules.tilt_limit,
            tracking_error=rules.tracking_error / np.sqrt(periods_per_year),
            class_limit=rules.class_limit,
            risk_aversion=rules.risk_aversion,
            information_coefficient=rules.information_coefficient,
        ),
        volatility_months=rules.volatility_months,
        group=rules.risk_parity_group,
        excludes=tuple(rules.benchmark_excludes),
    )


def exposures_of(
    panel: Panel,
    strategy: Strategy,
    weights: np.ndarray,
    benchmark: np.ndarray,
    forecast: np.ndarray | None = None,
) -> tuple[ClassExposure, ...]:
    """``weights``' exposures per class of each stored group on the decision row, active
    beyond what the strategy's construction holds with no information."""
    neutral = construction(strategy.portfolio.kind).neutral(benchmark)
    rows = {name: codes[-1] for name, codes in panel.groups.items()}
    return class_exposures(rows, weights, neutral, forecast)


def decision_market(
    panel: Panel,
    strategy: Strategy,
    benchmark: np.ndarray,
    previous: Mapping[str, float] | None = None,
) -> Market:
    """What the decision row's weights are built against: the benchmark, the shrunk
    risk of the benchmark's window (for a construction that needs one), the assets'
    classes (``risk_parity_group``), the weights held before and the costs."""
    rules = strategy.portfolio
    # every construction's forecasts (its exposures) read the risk model; the tilt trades on it
    risks = (shrunk_risk(panel.returns[-rules.volatility_months :]),)
    classes = panel.groups[rules.risk_parity_group][-1] if rules.risk_parity_group else None
    assets = panel.assets.astype(str)
    held = None if previous is None else np.array([previous.get(a, 0.0) for a in assets])
    return Market(benchmark, risks, classes, held, trading_costs(panel, strategy))


def trading_costs(panel: Panel, strategy: Strategy) -> np.ndarray:
    """Cost per unit of weight traded, per asset of ``panel`` (``alphafactory.costs``),
    classes by their codes on the last row."""
    costs = strategy.costs
    if costs.group and costs.group not in panel.groups:
        raise DecisionError(
            f"costs.group {costs.group!r} is not a group of the panel; it has "
            f"{sorted(panel.groups) or 'none'}"
        )
    return cost_rates(
        panel.assets.astype(str).tolist(),
        default_bps=costs.default_bps,
        asset_bps=costs.asset_bps,
        group_bps=costs.group_bps,
        codes=panel.groups[costs.group][-1] if costs.group else None,
    )
