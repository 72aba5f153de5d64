"""Trading costs: what moving a unit of an asset's weight costs, and returns net of it.

A strategy's ``[costs]`` prices each asset in basis points of the weight traded, one way:
an asset's own rate (``asset_bps``) where it has one, else its class's (``group_bps``,
by the code of the panel group ``group`` on the decision row), else ``default_bps``. The
tilt's optimiser pays these rates when it trades away from the weights held before
(``alphafactory.optimiser``); the walk-forward and the demo report every out-of-sample
figure gross and net of them (:func:`net_returns`).

What is traded: at each decision, the absolute change from the previous allocation's
target weights to the new ones, summed over the assets (the first allocation trades
from nothing into its weights). Drift between decisions is not traded back: the net
return is the gross one minus that traded weight times each asset's rate, charged in
the first period the new weights are held. Pure numpy.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np

BASIS_POINT = 1e-4


def cost_rates(
    assets: Sequence[str],
    *,
    default_bps: float,
    asset_bps: Mapping[str, float] | None = None,
    group_bps: Mapping[int, float] | None = None,
    codes: np.ndarray | None = None,
) -> np.ndarray:
    """Cost per unit of weight traded, per asset (module doc); ``codes``: each asset's
    class code (negative: none), needed when ``group_bps`` prices classes."""
    asset_bps = asset_bps or {}
    group_bps = group_bps or {}
    if group_bps and codes is None:
        raise ValueError("costs by class (group_bps) need each asset's class code")
    rates = np.full(len(assets), float(default_bps))
    for k, asset in enumerate(assets):
        if str(asset) in asset_bps:
            rates[k] = asset_bps[str(asset)]
        elif codes is not None and int(codes[k]) in group_bps:
            rates[k] = group_bps[int(codes[k])]
    return rates * BASIS_POINT


def traded_weights(weights: np.ndarray) -> np.ndarray:
    """(D, N) target weights per decision -> (D, N) weight traded into each (the first
    from nothing)."""
    weights = np.asarray(weights, dtype=np.float64)
    before = np.vstack([np.zeros((1, weights.shape[1])), weights[:-1]])
    return np.abs(weights - before)


def decision_costs(weights: np.ndarray, rates: np.ndarray) -> np.ndarray:
    """(D,) what each decision's trades cost, as a fraction of the portfolio."""
    return traded_weights(weights) @ np.asarray(rates, dtype=np.float64)


def describe_costs(costs) -> str:
    """A strategy's ``[costs]`` in words, for reports."""
    parts = [f"{costs.default_bps:g} bp a unit of weight traded"]
    if costs.group_bps:
        classes = ", ".join(f"{code}: {bps:g}" for code, bps in sorted(costs.group_bps.items()))
        parts.append(f"by {costs.group} class ({classes} bp)")
    if costs.asset_bps:
        assets = ", ".join(f"{a}: {bps:g}" for a, bps in sorted(costs.asset_bps.items()))
        parts.append(f"by asset ({assets} bp)")
    return "; ".join(parts)
