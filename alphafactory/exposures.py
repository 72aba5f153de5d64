"""What an allocation exposes per class, for the trading desk (issue 31, item 7).

For each stored group of the panel (an asset class, a sector...) and each of its classes
on the decision row: the allocation's weight in the class, its active weight (beyond
what the construction holds with no information: the benchmark for a tilt or long-only
book, nothing for a long-short one) and the forecast return behind that active weight,
``sum over the class of active_i x forecast_i``, where ``forecast_i`` is the expected
active return of asset ``i`` per period the combined signal stands for (Grinold:
information coefficient x volatility x z-score, ``alphafactory.risk.forecasts``). NaN
where the allocation traded no signal (a benchmark, an empty pool). Desks size options
overlays on these. Pure numpy.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class ClassExposure:
    group: str  # the panel group
    code: int  # the class's code in it
    weight: float
    active_weight: float
    forecast_return: float  # per period; NaN: no forecast


def class_exposures(
    groups: Mapping[str, np.ndarray],
    weights: np.ndarray,
    neutral: np.ndarray,
    forecast: np.ndarray | None = None,
) -> tuple[ClassExposure, ...]:
    """The exposures of ``weights`` (N,) per class of each of ``groups`` (name -> (N,)
    codes on the decision row; negative: in no class), ``neutral`` (N,) the weights with
    no information, ``forecast`` (N,) each asset's expected active return (None: none)."""
    weights = np.asarray(weights, dtype=np.float64)
    active = weights - np.asarray(neutral, dtype=np.float64)
    expected = None if forecast is None else active * np.nan_to_num(forecast)
    out = []
    for name in sorted(groups):
        codes = np.asarray(groups[name])
        for code in np.unique(codes[codes >= 0]):
            members = codes == code
            out.append(
                ClassExposure(
                    name,
                    int(code),
                    float(weights[members].sum()),
                    float(active[members].sum()),
                    float("nan") if expected is None else float(expected[members].sum()),
                )
            )
    return tuple(out)
