"""An ML alpha's signal over a window of dates, walked forward.

A formula has a value at every date; an ML alpha's value at a date is the prediction of
the model fitted as of that date or before. Scoring it on its in-sample fit would judge
it on the labels it learnt, so the signal over a scoring window is walked forward: a
model is fitted at the window's first row and every ``retrain_every`` rows after it
(:func:`.fit.fit_at`, the labels known at its row only), and predicts the rows up to the
next fit. Every value is out of sample, and no value at row ``t`` depends on a return
after ``t``: the same metrics and alpha definition as a formula's then judge it fairly.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from alphafactory.ml.features import FeatureCube
from alphafactory.ml.fit import MLFit, MLSpec, fit_at


@dataclass
class WalkedSignal:
    """``values`` (T, N), NaN outside the window; ``fits``: each fit's first row, with it."""

    values: np.ndarray
    fits: list[tuple[int, MLFit]]


def walk_forward(
    cube: FeatureCube,
    labels: np.ndarray,
    spec: MLSpec,
    *,
    first_row: int,
    last_row: int,
    retrain_every: int,
) -> WalkedSignal:
    """The signal on rows ``first_row .. last_row`` (module doc)."""
    if retrain_every < 1:
        raise ValueError(f"retrain_every must be >= 1 row, got {retrain_every}")
    if not 0 <= first_row <= last_row < cube.shape[0]:
        raise ValueError(
            f"rows {first_row}..{last_row} are not a window of the {cube.shape[0]} dates"
        )
    values = np.full(cube.shape[:2], np.nan)
    fits = []
    for start in range(first_row, last_row + 1, retrain_every):
        rows = np.arange(start, min(start + retrain_every, last_row + 1))
        fit = fit_at(cube, labels, start, spec)
        values[rows] = fit.predict(cube, rows)
        fits.append((start, fit))
    return WalkedSignal(values, fits)
