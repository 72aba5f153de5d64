"""Operator class -> numeric kernel, one line each.

A kernel takes the evaluated arguments in signature order (arrays for expressions, ints
for windows and lags, a float for ``k``, int codes for a group) and returns a new array.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from alphafactory.evaluate import cross_section as cs
from alphafactory.evaluate import elementwise as ew
from alphafactory.evaluate import moments as mo
from alphafactory.evaluate import rolling as ts
from alphafactory.formula import operators as op
from alphafactory.formula.bases import GroupDemean, Winsorize
from alphafactory.formula.nodes import Node

KERNELS: dict[type[Node], Callable[..., np.ndarray]] = {
    op.Neg: np.negative,
    op.Abs: np.abs,
    op.Sign: np.sign,
    op.Log: ew.log,
    op.Slog: ew.slog,
    op.Sqrt: ew.sqrt,
    op.Square: np.square,
    op.Inv: ew.inv,
    op.Add: np.add,
    op.Sub: np.subtract,
    op.Mul: np.multiply,
    op.Div: ew.safe_div,
    op.Max: np.maximum,
    op.Min: np.minimum,
    op.Delay: ts.delay,
    op.Delta: ts.delta,
    op.PctChange: ts.pct_change,
    op.TsMean: ts.ts_mean,
    op.TsSum: ts.ts_sum,
    op.TsStd: mo.ts_std,
    op.TsMin: ts.ts_min,
    op.TsMax: ts.ts_max,
    op.TsRank: ts.ts_rank,
    op.TsZscore: mo.ts_zscore,
    op.TsArgmax: ts.ts_argmax,
    op.TsArgmin: ts.ts_argmin,
    op.DecayLinear: ts.decay_linear,
    op.Ema: ts.ema,
    op.TsCorr: mo.ts_corr,
    op.TsCov: mo.ts_cov,
    op.Rank: cs.rank,
    op.Zscore: cs.zscore,
    op.Demean: cs.demean,
    op.Scale: cs.scale,
    Winsorize: cs.winsorize,
    GroupDemean: cs.group_demean,
}
