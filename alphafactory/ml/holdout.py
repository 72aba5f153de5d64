"""An ML alpha judged out of sample: fitted as of a split date, scored from it on.

What ``alphafactory ml eval`` prints (DESIGN.md contract 10). The model is chosen and
fitted at the split's row with the labels known there (:func:`.fit.fit_at`: rows whose
forward return ended by the split), then predicts every date from the split on from that
date's features; the predictions are scored like a formula's values (contract 5 metrics
on the dates from the split on, :class:`~alphafactory.metrics.FactorScorer`).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from alphafactory.metrics import FactorScorer
from alphafactory.ml.features import FeatureError, feature_cube, labels
from alphafactory.ml.fit import MLSpec, fit_at
from alphafactory.panel import Panel


@dataclass(frozen=True)
class Holdout:
    """The options of an out-of-sample evaluation."""

    model: str
    split: np.datetime64
    features: Sequence[str] | None = None  # None: every field but returns
    horizon: int = 1
    quantiles: int = 5
    folds: int = 3
    lags: Sequence[int] = (0,)
    seed: int = 0


def default_features(panel: Panel) -> list[str]:
    """Every field of the panel but ``returns`` (contract 10's default)."""
    return [name for name in panel.fields if name != "returns"]


def holdout_metrics(panel: Panel, options: Holdout) -> dict:
    """The metrics of the model's predictions from the split on, with what was chosen:
    ``hyperparameters``, ``feature_importances`` (summing to 1), the cross-validated IC of
    each grid point, the dates trained on and the first date scored."""
    names = list(options.features or default_features(panel))
    unknown = [name for name in names if name not in panel.fields]
    if unknown or not names:
        raise FeatureError(
            f"features {unknown or names} are not fields of the panel; its fields are "
            f"{sorted(panel.fields)}"
        )
    split_row = int(np.searchsorted(panel.dates, np.datetime64(options.split, "ns")))
    if split_row >= len(panel.dates) - 1:
        raise FeatureError(
            f"split {np.datetime_as_string(options.split, 'D')} leaves fewer than 2 dates "
            f"to score; the panel ends {np.datetime_as_string(panel.dates[-1], 'D')}"
        )
    cube = feature_cube({name: panel.fields[name] for name in names}, lags=options.lags)
    spec = MLSpec(options.model, horizon=options.horizon, folds=options.folds, seed=options.seed)
    fit = fit_at(cube, labels(panel.returns, options.horizon), split_row, spec)
    rows = np.arange(split_row, len(panel.dates))
    prediction = fit.predict(cube, rows)
    scorer = FactorScorer(
        panel.returns[rows],
        horizon=options.horizon,
        quantiles=options.quantiles,
        dates=panel.dates[rows],
    )
    metrics = scorer.score(prediction).to_dict()
    importance = fit.model.importances
    total = float(importance.sum())
    shares = importance / total if total > 0 else importance
    return {
        **metrics,
        "model": options.model,
        "split": np.datetime_as_string(panel.dates[split_row], "D"),
        "features": list(cube.names),
        "hyperparameters": fit.params,
        "feature_importances": dict(zip(cube.names, map(float, shares), strict=True)),
        "cv_ic": list(fit.cv_scores),
        "n_train_dates": fit.train_rows,
    }
