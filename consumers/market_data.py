"""The decision panel of a strategy, read from Postgres as of the decision time.

Market observations available by the decision time and macro releases made by then are
the only inputs (``storage.market.latest_as_of``, ``storage.macro.releases_until``);
``alphafactory.decision.decision_panel`` aligns them. A decision triggered by a release
sees the releases stored before its trigger, not those stored after it (a late arrival,
or another release of the same instant): every worker and the allocator build one panel
per decision whatever the timing, and a re-driven one builds it again. A worker process
evaluates many chunks of one request, so panels are cached per (strategy, decision time,
trigger's place in the store): the same inputs always give the same panel, and a bounded
cache keeps memory flat.
"""

from __future__ import annotations

import json
from collections import OrderedDict
from datetime import datetime

import numpy as np
import pandas as pd
import psycopg

from alphafactory.decision import DecisionError, decision_panel, decision_rows, universe_of
from alphafactory.formula import parse
from alphafactory.observations import GROUP_PREFIX
from alphafactory.panel import Panel
from alphafactory.strategy import Strategy
from storage.macro import observation_id, releases_until
from storage.market import latest_as_of, sorted_codes

HISTORY_ROWS_BEYOND_TRAINING = 120  # warm-up rows for rolling windows before the window


def warm_up_rows(strategy: Strategy) -> int:
    """Rows of history before the scoring window: enough for generated formulas' windows
    and for the longest of the strategy's own (``formulas.include``, any window)."""
    own = [parse(text).lookback for text in strategy.formulas.include]
    return max([HISTORY_ROWS_BEYOND_TRAINING, *own])


class NoMarketData(LookupError):
    """No market data was available at the decision time."""


def market_panel(conn: psycopg.Connection, decision_time: datetime, assets=None) -> Panel:
    """Every market field available by ``decision_time`` as a dense panel."""
    latest = latest_as_of(conn, as_of=decision_time, assets=list(assets) if assets else None)
    if len(latest.days) == 0:
        raise NoMarketData(f"no market observations were available by {decision_time.isoformat()}")
    days, row = np.unique(latest.days, return_inverse=True)
    names, col = sorted_codes(latest.assets)
    field_names, field_of = sorted_codes(latest.fields)
    fields, groups = {}, {}
    for code, name in enumerate(field_names.tolist()):
        mine = field_of == code
        dense = np.full((len(days), len(names)), np.nan)
        dense[row[mine], col[mine]] = latest.values[mine]
        if name.startswith(GROUP_PREFIX):
            codes = np.where(np.isfinite(dense), dense, -1).astype(np.int64)
            groups[name.removeprefix(GROUP_PREFIX)] = codes
        else:
            fields[name] = dense
    dates = days.astype("datetime64[D]").astype("datetime64[ns]")
    return Panel(dates=dates, assets=names, fields=fields, groups=groups)


def panel_spec(strategy: Strategy) -> str:
    """What of ``strategy`` its decision panels depend on (``strategy_panel``): strategies
    with the same spec share their panels, e.g. a strategy and its generator variants."""
    return json.dumps(
        [
            strategy.universe.model_dump(mode="json"),
            list(strategy.formulas.operands),
            strategy.alpha.training_months + warm_up_rows(strategy),
        ],
        sort_keys=True,
    )


class PanelCache:
    """Decision panels by (panel spec, decision time, what was stored by the trigger),
    least recently used dropped. The spec, not the strategy id: the walk-forward's
    baselines decide on their strategy's panels, which were loaded three times over (a
    quarter of a Celery worker's time was loading panels)."""

    def __init__(self, size: int = 8) -> None:
        self._size = size
        self._panels: OrderedDict[tuple[str, datetime, int | None], Panel] = OrderedDict()

    def get(
        self,
        conn: psycopg.Connection,
        strategy: Strategy,
        decision_time: datetime,
        trigger_event_id: str | None = None,
    ) -> Panel:
        stored_by = observation_id(conn, trigger_event_id) if trigger_event_id else None
        at = pd.Timestamp(decision_time).tz_convert("UTC").to_pydatetime()
        key = (panel_spec(strategy), at, stored_by)
        if key in self._panels:
            self._panels.move_to_end(key)
            return self._panels[key]
        panel = strategy_panel(conn, strategy, decision_time, stored_by=stored_by)
        self._panels[key] = panel
        while len(self._panels) > self._size:
            self._panels.popitem(last=False)
        return panel


def strategy_panel(
    conn: psycopg.Connection,
    strategy: Strategy,
    decision_time: datetime,
    *,
    stored_by: int | None = None,
    history_rows: int | None = None,
    twin_rows: bool = True,
) -> Panel:
    """The panel of a decision: the strategy's market data available by ``decision_time``
    and the releases made by then, of those stored up to observation ``stored_by`` when
    given; the last ``history_rows`` dates (default: what the decision scores), or all.
    ``twin_rows`` (``decision_panel``): False for a view of history (reports, training),
    where each row sees what was released by its own close."""
    if history_rows is None:
        history_rows = strategy.alpha.training_months + warm_up_rows(strategy)
    market = universe_of(
        market_panel(conn, decision_time, strategy.universe.assets or None), strategy.universe
    )
    releases = releases_until(
        conn,
        until=decision_time,
        series_ids=list(strategy.formulas.operands) or None,
        stored_by=stored_by,
        since=_first_day(market, decision_time, history_rows),
    )
    return decision_panel(
        market,
        releases,
        decision_time,
        history_rows,
        twin_rows=twin_rows,
        stale_after=strategy.universe.stale_after,
    )


def _first_day(market: Panel, decision_time: datetime, history_rows: int) -> datetime | None:
    """The start (UTC) of the decision panel's first date: releases older than the newest
    of each series by then change nothing in the panel. None where the decision cannot be
    made (``decision_panel`` says why)."""
    try:
        first, _ = decision_rows(market.dates, decision_time, history_rows)
    except DecisionError:
        return None
    return pd.Timestamp(market.dates[first]).tz_localize("UTC").to_pydatetime()
