"""Vectorised, point-in-time evaluation of formulas, and macro factors mapped to assets.

>>> values = evaluate("rank(close - ts_mean(close, 20))", panel)   # (T, N)
>>> for values in evaluate_batch(formulas, panel): ...              # shared work
>>> scores = asset_scores("ts_zscore(cpi, 12)", panel, window=36)   # (T, N) either way
"""

from __future__ import annotations

import numpy as np

from alphafactory.evaluate.evaluator import Evaluator, evaluate, evaluate_batch
from alphafactory.evaluate.kernels import KERNELS
from alphafactory.evaluate.macro_mapping import macro_scores
from alphafactory.formula import Node
from alphafactory.panel import Panel


def asset_scores(
    formula: Node | str,
    panel: Panel,
    *,
    window: int = 36,
    evaluator: Evaluator | None = None,
) -> np.ndarray:
    """(T, N) per-asset scores: the formula's values, or for a macro formula its mapping
    through trailing regressions of each asset's returns (see ``macro_mapping``)."""
    evaluator = evaluator or Evaluator(panel)
    values = evaluator.evaluate(formula)
    if values.ndim == 1:
        return macro_scores(values, panel.returns, window=window)
    return values


__all__ = ["KERNELS", "Evaluator", "asset_scores", "evaluate", "evaluate_batch", "macro_scores"]
