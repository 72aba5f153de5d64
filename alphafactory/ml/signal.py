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

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from alphafactory.formula import LanguageConfig, Node, Vocabulary, parse
from alphafactory.library import known_factors
from alphafactory.ml.candidate import FEATURE_SETS, MLCandidate, MLCandidateError, parse_candidate
from alphafactory.ml.cv import CVError
from alphafactory.ml.features import FeatureCube, FeatureError, feature_cube, labels
from alphafactory.ml.fit import MLFit, MLSpec, fit_at
from alphafactory.ml.models import ModelError
from alphafactory.panel import Panel


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


# An ML alpha's walked signal starts where its first fit has this many dates of labels
# (fewer rows before it stay NaN): the cross-validation needs history to choose on.
MIN_TRAIN_ROWS = 36


@dataclass
class PreparedML:
    """An ML candidate checked on a panel, with its walked signal ``values`` (T, N)."""

    candidate: MLCandidate
    values: np.ndarray

    def __str__(self) -> str:
        return self.candidate.text


class CandidateSignals:
    """ML candidates' signals on one panel (a scorer's): the features of each set are
    computed once, as ``formula_signals`` computes formulas' per-asset values (macro
    formulas mapped to assets), and each candidate is walked forward from ``first_row``."""

    def __init__(
        self,
        panel: Panel,
        config: LanguageConfig,
        formula_signals: Callable[[list[Node]], list[np.ndarray]],
        first_row: int,
    ) -> None:
        self.panel, self.config = panel, config
        self.formula_signals = formula_signals
        self.first_row = first_row
        self._sources: dict[str, dict[str, np.ndarray]] = {}

    def prepare(self, text: str) -> PreparedML:
        """The candidate of ``text`` with its signal; ``MLCandidateError`` names what is
        wrong (the text, a feature this panel lacks, too little history to fit)."""
        candidate = parse_candidate(text)
        sources: dict[str, np.ndarray] = {}
        for name in candidate.features:
            sources.update(self._source(name))
        returns = self.panel.returns
        rows = returns.shape[0]
        first = max(self.first_row, MIN_TRAIN_ROWS + candidate.horizon)
        if first >= rows:
            raise MLCandidateError(
                f"{candidate.text}: the panel's {rows} dates leave none to predict after "
                f"the first {MIN_TRAIN_ROWS} dates of labels a fit needs"
            )
        try:
            walked = walk_forward(
                feature_cube(sources, lags=candidate.lags),
                labels(returns, candidate.horizon),
                candidate.spec(),
                first_row=first,
                last_row=rows - 1,
                retrain_every=candidate.retrain,
            )
        except (CVError, ModelError, FeatureError) as error:
            raise MLCandidateError(f"{candidate.text}: {error}") from error
        return PreparedML(candidate, walked.values)

    def _source(self, name: str) -> dict[str, np.ndarray]:
        """Feature name -> (T, N) values of a feature set or an operand, cached."""
        if name not in self._sources:
            nodes = self._nodes(name)
            values = self.formula_signals(nodes)
            self._sources[name] = {str(n): v for n, v in zip(nodes, values, strict=True)}
        return self._sources[name]

    def _nodes(self, name: str) -> list[Node]:
        kinds = self.panel.operand_kinds
        features = {n: k for n, k in kinds.items() if k in ("panel", "macro")}
        if name == "library":
            vocab = Vocabulary(kinds, self.config)
            return [node for _, node in known_factors(vocab)]
        if name == "operands":
            return [parse(operand, kinds, self.config) for operand in sorted(features)]
        if name not in features:
            raise MLCandidateError(
                f"feature {name!r} is neither a set ({', '.join(FEATURE_SETS)}) nor an "
                f"operand of the panel ({', '.join(sorted(features))})"
            )
        return [parse(name, kinds, self.config)]
