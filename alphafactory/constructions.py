"""Portfolio constructions: how a strategy turns a combined signal into target weights.

Each construction is declared once, here, as a small class registered under its name;
the strategy schema (``[portfolio] kind``) and its error message, the variant names and
the CLI's help, the decision, the scoring of what is traded (``alphafactory.traded``) and
the walk-forward report all read :data:`CONSTRUCTIONS`. Adding a construction is a class
here (or in a module that calls :func:`register`) and its test.

What a construction knows:

- ``positions``: the weights built from signals (..., N), every row at once; a missing
  signal value is neutral (the row's mean);
- ``neutral``: what a signal with no information would hold (the benchmark for a tilt,
  equal weights for long-only, nothing for long-short): what a candidate is judged
  beyond, and what the allocation holds with no alpha (``without_alpha``);
- ``judged_on_position``: whether a candidate is scored on the active return of the
  position built from it alone (False: DESIGN.md contract 5's quantile long-short, the
  book a long-short strategy stands for);
- ``excess_over_cash``: whether the report measures its excess over cash (a self-financed
  book) rather than over the strategy's risk-parity benchmark.

Pure numpy.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import numpy as np

from alphafactory.registry import Registry


class PortfolioError(ValueError):
    """Inputs the allocation cannot use (a construction not registered, a tilt without a
    benchmark...); the message names them."""


@dataclass(frozen=True)
class Sizing:
    """A strategy's ``[portfolio]`` sizes a construction reads."""

    gross: float = 1.0  # long_short: the sum of absolute weights
    tilt_limit: float = 0.1  # tilt: the largest move of an asset from the benchmark


class Construction:
    name: ClassVar[str]
    summary: ClassVar[str]  # one line for the docs and the help
    needs_benchmark: ClassVar[bool] = False
    judged_on_position: ClassVar[bool] = True
    excess_over_cash: ClassVar[bool] = False

    def positions(
        self, signals: np.ndarray, sizing: Sizing, benchmark: np.ndarray | None
    ) -> np.ndarray:
        raise NotImplementedError

    def neutral(self, benchmark: np.ndarray) -> np.ndarray:
        """What a signal with no information holds (``benchmark``: (..., N))."""
        raise NotImplementedError

    def without_alpha(self, benchmark: np.ndarray) -> np.ndarray:
        """The allocation with no alpha to trade."""
        return np.broadcast_to(self.neutral(benchmark), np.shape(benchmark)).copy()


def unit_long_short(signals: np.ndarray) -> np.ndarray:
    """The demeaned signal scaled to a sum of absolute weights of 1 per row (0 where the
    row has no spread); missing values neutral."""
    signals = np.asarray(signals, dtype=np.float64)
    valid = np.isfinite(signals)
    count = valid.sum(axis=-1, keepdims=True)
    mean = np.where(valid, signals, 0.0).sum(axis=-1, keepdims=True) / np.maximum(count, 1)
    centred = np.where(valid, signals - mean, 0.0)
    spread = np.abs(centred).sum(axis=-1, keepdims=True)
    return np.divide(centred, spread, out=np.zeros_like(centred), where=spread > 0)


class LongShort(Construction):
    name = "long_short"
    summary = "the demeaned signal, absolute weights summing to gross"
    judged_on_position = False
    excess_over_cash = True

    def positions(self, signals, sizing, benchmark):
        return sizing.gross * unit_long_short(signals)

    def neutral(self, benchmark):
        return np.zeros_like(benchmark)


class LongOnly(Construction):
    name = "long_only"
    summary = "the long side of the demeaned signal, weights summing to 1"

    def positions(self, signals, sizing, benchmark):
        longs = np.maximum(unit_long_short(signals), 0.0)
        total = longs.sum(axis=-1, keepdims=True)
        equal = np.full_like(longs, 1.0 / longs.shape[-1])
        return np.divide(longs, total, out=equal, where=total > 0)

    def neutral(self, benchmark):
        return np.full_like(benchmark, 1.0 / np.shape(benchmark)[-1])

    def without_alpha(self, benchmark):
        # an allocation with nothing to trade holds the strategy's benchmark
        return np.array(benchmark, dtype=np.float64)


class Tilt(Construction):
    name = "tilt"
    summary = "the benchmark moved by the demeaned signal, no asset by more than tilt_limit"
    needs_benchmark = True

    def positions(self, signals, sizing, benchmark):
        unit = unit_long_short(signals)
        if benchmark is None:
            raise PortfolioError(f"a tilt needs a benchmark of {unit.shape[-1]} weights")
        largest = np.abs(unit).max(axis=-1, keepdims=True)
        scale = np.divide(sizing.tilt_limit, largest, out=np.zeros_like(largest), where=largest > 0)
        tilted = np.maximum(benchmark + unit * scale, 0.0)
        return tilted / tilted.sum(axis=-1, keepdims=True)

    def neutral(self, benchmark):
        return np.array(benchmark, dtype=np.float64)


CONSTRUCTIONS: Registry[Construction] = Registry("portfolio kind", PortfolioError)
register = CONSTRUCTIONS.register
construction = CONSTRUCTIONS.lookup
for _builtin in (LongShort, LongOnly, Tilt):
    register(_builtin)
