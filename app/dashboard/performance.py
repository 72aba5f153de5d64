"""Out-of-sample performance for the dashboard: each active strategy's allocations (and
its variants') held until the next one, against the strategy's risk-parity benchmark at
the same decisions, from the stored market returns; every figure gross and net of the
strategy's costs (``[costs]``), with the caveats its data carries (``[universe] caveats``).

The returns are the walk-forward report's own (``app.walkforward_report``: the same
held-allocation and benchmark code, the last allocation held to the newest stored
return). Building a strategy's panel reads its whole market history, so a result is
kept until the strategy gets a new allocation or ``ttl_s`` passes (new returns)."""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime

import pandas as pd

from alphafactory.settings import Settings

log = logging.getLogger("alphafactory.dashboard")
BENCHMARK = "benchmark (risk parity)"
NET = " net"  # a series after costs
ALL_HISTORY = 1_000_000  # panel rows: every stored date


@dataclass(frozen=True)
class StrategyPerformance:
    strategy_id: str
    series: dict[str, pd.Series] = field(default_factory=dict)  # name -> return per date
    summary: list[dict] = field(default_factory=list)  # a row per series
    note: str | None = None  # why there is nothing to show
    caveats: tuple[str, ...] = ()  # what the strategy's data cannot show


class PerformanceCache:
    """The last result per strategy, recomputed when its allocations change or it is
    older than ``ttl_s``; thread-safe (pages are served from a thread pool)."""

    def __init__(self, settings: Settings, ttl_s: float = 60.0) -> None:
        self.settings, self.ttl_s = settings, ttl_s
        self._lock = threading.Lock()
        self._kept: dict[str, tuple[tuple, float, StrategyPerformance]] = {}

    def read(self, pool) -> tuple[list[StrategyPerformance], str | None]:
        """(a result per active strategy, why there are none: a strategy file error)."""
        from alphafactory.strategy import StrategyError, active_strategies

        try:
            strategies = active_strategies(self.settings.pipeline.strategies_dir)
        except StrategyError as error:
            return [], str(error)
        with self._lock, pool.connection() as conn:
            return [self._one(conn, strategy) for strategy in strategies], None

    def _one(self, conn, strategy) -> StrategyPerformance:
        from alphafactory.variants import variant_id
        from storage.walkforward_reads import allocations_of

        ids = [strategy.id, *(variant_id(strategy.id, n) for n in strategy.variants.names)]
        stored = allocations_of(conn, ids)
        signature = tuple(
            (i, len(a), a[-1].trigger_event_id if a else "") for i, a in stored.items()
        )
        kept = self._kept.get(strategy.id)
        if kept and kept[0] == signature and time.monotonic() - kept[1] < self.ttl_s:
            return kept[2]
        result = compute(conn, strategy, stored)
        self._kept[strategy.id] = (signature, time.monotonic(), result)
        return result


def compute(conn, strategy, stored: dict[str, list]) -> StrategyPerformance:
    """``strategy``'s result from its ``stored`` allocations (strategy or variant id ->
    allocations in decision order)."""
    from alphafactory.decision_inputs import trading_costs
    from alphafactory.metrics.factor import infer_periods_per_year
    from app.walkforward_report import benchmark_returns, held_allocation_returns
    from consumers.market_data import strategy_panel

    if not any(stored.values()):
        return StrategyPerformance(strategy.id, note="no allocation yet")
    try:
        panel = strategy_panel(
            conn, strategy, datetime.now(UTC), history_rows=ALL_HISTORY, twin_rows=False
        )
        rates = trading_costs(panel, strategy)
        series, net = {}, {}
        for strategy_id, allocations in stored.items():
            if allocations:
                series[strategy_id] = held_allocation_returns(panel, allocations, hold_last=None)
                net[strategy_id + NET] = held_allocation_returns(
                    panel, allocations, hold_last=None, costs=rates
                )
        if stored.get(strategy.id):
            series[BENCHMARK] = benchmark_returns(
                panel, strategy, stored[strategy.id], hold_last=None
            )
            net[BENCHMARK + NET] = benchmark_returns(
                panel, strategy, stored[strategy.id], hold_last=None, costs=rates
            )
        periods_per_year = infer_periods_per_year(panel.dates)
    except (ValueError, KeyError) as error:  # no market data yet, or none for an asset held
        log.warning("performance of %s: %s", strategy.id, error)
        return StrategyPerformance(strategy.id, note=f"cannot compute: {error}")
    series = {name: values for name, values in series.items() if len(values)}
    net = {name: values for name, values in net.items() if len(values)}
    if not series:
        return StrategyPerformance(
            strategy.id, note="no return stored yet after the first allocation"
        )
    # every figure gross and net of the strategy's costs, the benchmark paying its own
    rows = _summary(series, BENCHMARK, periods_per_year)
    rows += _summary(net, BENCHMARK + NET, periods_per_year)
    return StrategyPerformance(strategy.id, series, rows, caveats=strategy.universe.caveats)


def _summary(series: dict[str, pd.Series], benchmark_name: str, periods_per_year) -> list[dict]:
    from alphafactory.performance import summarize

    benchmark = series.get(benchmark_name)
    rows = []
    for name, values in series.items():
        row = {"name": name, **summarize(values, periods_per_year).to_dict()}
        if benchmark is not None and name != benchmark_name:
            excess = (values - benchmark.reindex(values.index)).dropna()
            row["excess_annual_return"] = summarize(excess, periods_per_year).annual_return
        rows.append(row)
    return rows
