"""Features and labels of the supervised alphas, as ``(T, N)`` panels stacked to a cube.

A feature at row ``t`` uses values dated ``t`` or earlier only (a lag ``k`` shifts it to
``t - k``): the panel's convention is that a value of date ``t`` is known at ``t``. Every
feature is standardised across the assets of each date (z-score, clipped at
:data:`CLIP`), so models see relative values, as the cross-sectional metrics judge them,
and a level drifting over decades does not dominate. The label is the forward return
over the horizon, ``prod_{k=1..h}(1 + r[t+k]) - 1`` (DESIGN.md contract 5), standardised
the same way: it is known only at ``t + h``, which :mod:`.cv` and :mod:`.fit` respect.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from alphafactory.evaluate.cross_section import zscore
from alphafactory.metrics._kernels import forward_returns as metric_forward_returns

CLIP = 5.0  # standard deviations: one bad print must not steer a linear model


class FeatureError(ValueError):
    """A feature that cannot be built: unknown name, wrong shape, bad lag."""


@dataclass(frozen=True)
class FeatureCube:
    """Standardised features: ``values[t, i, f]`` is feature ``names[f]`` of asset ``i``
    at date row ``t`` (NaN: missing)."""

    names: tuple[str, ...]
    values: np.ndarray  # (T, N, F) float64

    @property
    def shape(self) -> tuple[int, int, int]:
        return self.values.shape


def standardise(values: np.ndarray) -> np.ndarray:
    """Each row's z-score across its finite entries (the formula language's ``zscore``),
    clipped at ``CLIP``; a row with fewer than two finite values, or no spread, is NaN."""
    values = np.asarray(values, dtype=np.float64)
    return np.clip(zscore(np.where(np.isfinite(values), values, np.nan)), -CLIP, CLIP)


def lagged(values: np.ndarray, lag: int) -> np.ndarray:
    """``values`` shifted down ``lag`` rows: row ``t`` holds row ``t - lag``."""
    if lag < 0:
        raise FeatureError(f"a lag looks back, so it must be >= 0, got {lag}")
    if lag == 0:
        return values
    out = np.full_like(values, np.nan, dtype=np.float64)
    out[lag:] = values[:-lag]
    return out


def feature_cube(sources: Mapping[str, np.ndarray], *, lags: Sequence[int] = (0,)) -> FeatureCube:
    """Each ``(T, N)`` source at each lag, standardised across assets: features named
    ``source`` (lag 0) or ``source@lag``, in source order then lag order."""
    if not sources:
        raise FeatureError("no features: give at least one field or formula")
    if not lags:
        raise FeatureError("no lags: give at least one (0 is the value at the date)")
    shapes = {name: np.shape(values) for name, values in sources.items()}
    first = next(iter(shapes.values()))
    wrong = {name: shape for name, shape in shapes.items() if shape != first or len(shape) != 2}
    if wrong:
        raise FeatureError(f"features must share one (T, N) shape; got {shapes}")
    names, columns = [], []
    for name, values in sources.items():
        for lag in lags:
            names.append(name if lag == 0 else f"{name}@{lag}")
            columns.append(standardise(lagged(np.asarray(values, dtype=np.float64), lag)))
    return FeatureCube(tuple(names), np.stack(columns, axis=-1))


def forward_returns(returns: np.ndarray, horizon: int) -> np.ndarray:
    """``prod_{k=1..h}(1 + r[t+k]) - 1`` at each row ``t`` (the metrics' own); NaN where a
    return is missing or the window runs past the last row."""
    if horizon < 1:
        raise FeatureError(f"horizon must be >= 1, got {horizon}")
    return metric_forward_returns(np.asarray(returns, dtype=np.float64), horizon)


def labels(returns: np.ndarray, horizon: int) -> np.ndarray:
    """The standardised forward returns the models learn."""
    return standardise(forward_returns(returns, horizon))
