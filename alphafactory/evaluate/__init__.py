"""Vectorised, point-in-time evaluation of formulas, and macro factors mapped to assets.

>>> values = evaluate("rank(close - ts_mean(close, 20))", panel)   # (T, N)
>>> for values in evaluate_batch(formulas, panel): ...              # shared work
>>> scores = asset_scores("ts_zscore(cpi, 12)", panel)              # (T, N) either way
"""

from __future__ import annotations

import numpy as np

from alphafactory.evaluate.evaluator import Evaluator, evaluate, evaluate_batch
from alphafactory.evaluate.kernels import KERNELS
from alphafactory.evaluate.macro_mapping import MIN_PERIODS, macro_scores
from alphafactory.formula import Node
from alphafactory.panel import Panel


def asset_scores(
    formula: Node | str,
    panel: Panel,
    *,
    min_periods: int = MIN_PERIODS,
    class_group: str | None = None,
    evaluator: Evaluator | None = None,
) -> np.ndarray:
    """(T, N) per-asset scores: the formula's values, or for a macro formula its forecasts
    through expanding regressions of each asset's returns, shrunk toward the mean of the
    assets of its ``class_group`` (a group of the panel; None: no shrinking), see
    ``macro_mapping``."""
    evaluator = evaluator or Evaluator(panel)
    values = evaluator.evaluate(formula)
    if values.ndim == 1:
        classes = panel.groups[class_group] if class_group else None
        return macro_scores(values, panel.returns, min_periods=min_periods, classes=classes)
    return values


__all__ = ["KERNELS", "Evaluator", "asset_scores", "evaluate", "evaluate_batch", "macro_scores"]
