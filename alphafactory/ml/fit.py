"""Fit an ML alpha at a decision and predict: hyperparameters chosen by purged
cross-validation on the labels known at the decision, then one refit on all of them.

The training window is rows ``0 .. decision_row - h`` (a label is known ``h`` rows after
its date, :func:`.cv.known_label_rows`); nothing after it enters a fold, the choice or
the refit, and the predicted rows use their own features only. A grid point is scored by
the mean over its test dates of the cross-sectional correlation between prediction and
label (the IC the alpha definition judges), averaged over the folds; ties go to the first
grid point, so the choice is reproducible.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from alphafactory.metrics._kernels import MIN_ASSETS, masked_pearson
from alphafactory.ml.cv import Fold, known_label_rows, purged_folds
from alphafactory.ml.features import FeatureCube
from alphafactory.ml.models import GRIDS, FittedModel, ModelError, fit_model


@dataclass(frozen=True)
class MLSpec:
    """What to fit: a model of :data:`~.models.MODEL_NAMES`, the label horizon, the folds
    and the embargo of the cross-validation (default: the horizon), the seed."""

    model: str
    horizon: int = 1
    folds: int = 3
    embargo: int | None = None
    seed: int = 0
    grid: Sequence[dict[str, Any]] | None = None  # default: GRIDS[model]
    threads: int = 1

    def candidates(self) -> Sequence[dict[str, Any]]:
        if self.grid is not None:
            return self.grid
        if self.model not in GRIDS:
            raise ModelError(f"unknown model {self.model!r}; expected one of {', '.join(GRIDS)}")
        return GRIDS[self.model]


@dataclass
class MLFit:
    """The refitted model, what the cross-validation chose and saw, the rows it trained on."""

    model: FittedModel
    params: dict[str, Any]
    cv_scores: list[float]  # mean IC of each grid point, in grid order
    train_rows: int  # rows 0 .. train_rows - 1
    folds: list[Fold] = field(default_factory=list)

    def predict(self, cube: FeatureCube, rows: np.ndarray) -> np.ndarray:
        return predict_rows(self.model, cube, rows)


def predict_rows(model: FittedModel, cube: FeatureCube, rows: np.ndarray) -> np.ndarray:
    """Predictions ``(len(rows), N)`` at ``rows`` from their features; an asset with no
    feature at a row gets NaN there."""
    values = cube.values[rows]
    missing = ~np.isfinite(values).any(axis=-1)
    flat = np.nan_to_num(values.reshape(-1, values.shape[-1]), nan=0.0)
    out = model.predict(flat).reshape(values.shape[:2])
    return np.where(missing, np.nan, out)


def fit_at(cube: FeatureCube, labels: np.ndarray, decision_row: int, spec: MLSpec) -> MLFit:
    """Choose, refit and return the model of ``spec`` as of ``decision_row`` (module doc)."""
    known = known_label_rows(decision_row, spec.horizon)
    folds = purged_folds(known, folds=spec.folds, horizon=spec.horizon, embargo=spec.embargo)
    grid = list(spec.candidates())
    scores = []
    for params in grid:
        per_fold = []
        for fold in folds:
            fitted = _fit_rows(cube, labels, fold.train, spec, params)
            per_fold.append(_mean_ic(predict_rows(fitted, cube, fold.test), labels[fold.test]))
        scores.append(float(np.nanmean(per_fold)) if np.isfinite(per_fold).any() else np.nan)
    finite = [s if np.isfinite(s) else -np.inf for s in scores]
    params = grid[int(np.argmax(finite))]
    model = _fit_rows(cube, labels, np.arange(known), spec, params)
    return MLFit(model, dict(params), scores, known, folds)


def samples(cube: FeatureCube, labels: np.ndarray, rows: np.ndarray):
    """The (asset, date) samples of ``rows`` with a label and at least one feature, dates
    with fewer than ``MIN_ASSETS`` labelled assets left out: ``x`` (S, F), ``y`` (S,)."""
    values, y = cube.values[rows], labels[rows]
    usable = np.isfinite(y) & np.isfinite(values).any(axis=-1)
    usable &= usable.sum(axis=1, keepdims=True) >= MIN_ASSETS
    return np.nan_to_num(values[usable], nan=0.0), y[usable]


def _fit_rows(cube, labels, rows, spec: MLSpec, params) -> FittedModel:
    x, y = samples(cube, labels, rows)
    if len(y) == 0:
        raise ModelError(f"no labelled samples in rows {rows[:1]}..{rows[-1:]} to fit on")
    return fit_model(spec.model, params, x, y, seed=spec.seed, threads=spec.threads)


def _mean_ic(prediction: np.ndarray, label: np.ndarray) -> float:
    """Mean over dates of the Pearson correlation across assets with both values (the
    metrics' kernel: dates with fewer than 3 of them, or either side constant, skipped)."""
    both = np.isfinite(prediction) & np.isfinite(label)
    ics = masked_pearson(prediction, label, both)
    return float(np.nanmean(ics)) if np.isfinite(ics).any() else np.nan
