"""What a strategy trades from one signal: its benchmark and its position, per row.

Issue 30's "score what is traded": a candidate is judged on the statistics of the position
the strategy would hold from its forecasts alone, not on a quantile long-short the
strategy never trades. :class:`PositionRule` is a strategy's ``[portfolio]`` reduced to
that: the kind, the tilt's size, and the risk-parity benchmark (by a panel group, cash
and other ``benchmark_excludes`` given no benchmark weight). At each row ``t`` the
benchmark is the risk parity of the ``volatility_months`` returns up to ``t`` (what a
decision at ``t`` sees); the position is ``portfolio.positions`` of the signal there; what
is scored is its *active* part: the position minus what a signal with no information
would hold (the benchmark for ``tilt``, equal weights for ``long_only``, nothing for
``long_short``). So the score is what the signal adds to the construction, not the
construction's own static bets: a long-only book against risk parity earns the volatile
assets' premium whatever its signal (a t of +0.26 on average over noise twins of the
planted markets), against its own equal weights nothing.

A long-short strategy keeps DESIGN.md contract 5's quantile long-short as its judged
series (its construction is not ``judged_on_position``): on a cross-sectional panel that is
the book it stands for, and the contract's numbers stay those of ``factor eval``.
Pure: numpy and the core's panel.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from alphafactory import portfolio
from alphafactory.constructions import Market, Sizing, construction
from alphafactory.panel import Panel
from alphafactory.risk import risk_rows


class BenchmarkError(ValueError):
    """A benchmark the panel cannot give; the message names what is missing."""


@dataclass(frozen=True)
class PositionRule:
    kind: str  # a construction of alphafactory.constructions
    sizing: Sizing = Sizing()
    volatility_months: int = 36
    group: str = ""  # the panel group whose classes get equal risk; "" for none
    excludes: tuple[str, ...] = ()  # assets given no benchmark weight

    def benchmark(self, panel: Panel, rows: int) -> np.ndarray:
        """The risk parity of the ``volatility_months`` returns before row ``rows``
        (exclusive), with the classes of the last of them."""
        return self.benchmarks(panel, max(rows - 1, 0))[0]

    def benchmarks(self, panel: Panel, first: int = 0) -> np.ndarray:
        """(T - first, N): the benchmark a decision at each row from ``first`` on holds."""
        if self.group and self.group not in panel.groups:
            raise BenchmarkError(
                f"portfolio.risk_parity_group {self.group!r} is not a group of the panel; "
                f"it has {sorted(panel.groups) or 'none'}"
            )
        returns = panel.returns
        held = ~np.isin(panel.assets.astype(str), list(self.excludes))
        classes = panel.groups[self.group] if self.group else None
        return portfolio.risk_parity_rows(
            returns, self.volatility_months, classes, held=held, first=first
        )

    def market(self, panel: Panel, first: int = 0) -> Market:
        """What positions are built against at each row from ``first`` on: the
        benchmark, and the risk model of the same window where the construction needs
        one (``alphafactory.risk.risk_rows``)."""
        benchmarks = self.benchmarks(panel, first)
        if not construction(self.kind).needs_risk:
            return Market(benchmarks)
        return Market(benchmarks, risk_rows(panel.returns, self.volatility_months, first))

    def active_weights(self, market: Market):
        """The scorer's position: (F, T, N) signals -> the (F, T, N) weights each row holds
        beyond what a signal with no information would hold there (``market``: one row
        per T, :meth:`market`): the benchmark for a tilt, equal weights for long-only,
        nothing for long-short."""
        built = construction(self.kind)
        neutral = built.neutral(market.benchmark)

        def held(signals: np.ndarray) -> np.ndarray:
            return built.positions(signals, self.sizing, market) - neutral

        return held
