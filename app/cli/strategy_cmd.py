"""`alphafactory strategy list [--json]`: the active strategies and the series that trigger them.

For each active strategy (``settings.pipeline.strategies_dir``, or the bundled ones), each
trigger series with what Postgres holds of it: the newest stored period and the frequency
inferred from the stored periods' spacing (``storage.macro.series_coverage``). ``--json``
prints one object for programs::

    {"strategies": [{"strategy_id": "macro_allocation",
                     "trigger_series": [{"series_id": "us_core_cpi",
                                         "last_period": "2024-04-01", "frequency": "M"}],
                     "missing": [],
                     "stale_series": [{"series_id": "us_m2", "last_released_at":
                                       "2009-12-10T13:30:00+00:00", "cadence_days": 30.5}]}]}

``last_period`` and ``frequency`` are null when nothing (or a single period) is stored.
``missing`` lists what the strategy needs and the store lacks (market data, its universe
assets or group, operands, trigger series, a generator checkpoint); empty: it can run.
``stale_series`` lists the series the strategy reads (its operands, or every stored
series) with no release for more than ``[universe] stale_after`` times their cadence by
now: its decisions read them as missing, not carried forward.
Exit codes: 0 listed; 1 Postgres unreachable or failing; 2 an invalid strategy file.
"""

from __future__ import annotations

import json
import sys
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from alphafactory.settings import Settings


def register(commands) -> None:
    parser = commands.add_parser("strategy", help="inspect the configured strategies")
    actions = parser.add_subparsers(dest="action", required=True, metavar="ACTION")
    listing = actions.add_parser(
        "list", help="active strategies, their trigger series and what is stored of them"
    )
    listing.add_argument("--json", action="store_true", help="print one JSON object")
    listing.set_defaults(handler=run_list)


def run_list(args, settings: Settings) -> int:
    import psycopg

    from alphafactory.strategy import StrategyError, active_strategies
    from storage.errors import StorageError

    try:
        strategies = active_strategies(settings.pipeline.strategies_dir)
    except StrategyError as error:
        print(f"alphafactory: {error}", file=sys.stderr)
        return 2
    series = sorted({s for strategy in strategies for s in strategy.triggers.series})
    try:
        coverage = _coverage(settings, series)
        missing = _missing(settings, strategies)
        stale = _stale(settings, strategies)
    except (StorageError, psycopg.Error) as error:
        print(f"alphafactory: cannot read the stored releases: {error}", file=sys.stderr)
        return 1
    listing = [
        {
            "strategy_id": strategy.id,
            "trigger_series": [coverage[s] for s in strategy.triggers.series],
            "missing": missing[strategy.id],
            "stale_series": stale[strategy.id],
        }
        for strategy in strategies
    ]
    if args.json:
        print(json.dumps({"strategies": listing}))
    else:
        print(_table(listing))
    return 0


def _coverage(settings: Settings, series: list[str]) -> dict[str, dict[str, Any]]:
    """``{series_id, last_period, frequency}`` of each series, as printed."""
    from storage.db import connect
    from storage.macro import series_coverage

    if not series:  # nothing to look up: do not require a database
        return {}
    with connect(settings.postgres.dsn("app"), autocommit=True) as conn:
        stored = series_coverage(conn, series_ids=series)
    return {
        s: {
            "series_id": s,
            "last_period": c.last_period.isoformat() if c.last_period else None,
            "frequency": c.frequency,
        }
        for s, c in stored.items()
    }


def _missing(settings: Settings, strategies) -> dict[str, list[str]]:
    """What each strategy needs that is not stored yet (``missing_inputs``)."""
    from alphafactory.strategy import missing_inputs
    from app.generator_setup import checkpoint_path
    from storage.db import connect
    from storage.macro import stored_series
    from storage.market import stored_inventory

    if not strategies:
        return {}
    with connect(settings.postgres.dsn("app"), autocommit=True) as conn:
        assets, fields = stored_inventory(conn)
        series = stored_series(conn)
    return {
        s.id: missing_inputs(
            s,
            assets=assets,
            fields=fields,
            series=series,
            has_generator=checkpoint_path(settings, s.generation.generator).exists(),
        )
        for s in strategies
    }


def _stale(settings: Settings, strategies) -> dict[str, list[dict[str, Any]]]:
    """Per strategy, the series it reads that have stopped (module doc)."""
    from datetime import UTC, datetime

    from storage.db import connect
    from storage.macro import series_coverage, stored_series

    if not strategies:
        return {}
    now = datetime.now(UTC)
    with connect(settings.postgres.dsn("app"), autocommit=True) as conn:
        stored = stored_series(conn)
        coverage = series_coverage(conn, series_ids=sorted(stored))
    out = {}
    for strategy in strategies:
        reads = sorted(set(strategy.formulas.operands) & stored) or sorted(stored)
        out[strategy.id] = [
            {
                "series_id": s,
                "last_released_at": coverage[s].last_released_at.isoformat(),
                "cadence_days": coverage[s].cadence_days,
            }
            for s in reads
            if coverage[s].stale(now, strategy.universe.stale_after)
        ]
    return out


def _table(listing: list[dict[str, Any]]) -> str:
    header = ("STRATEGY", "SERIES", "LAST PERIOD", "FREQ")
    rows = []
    for item in listing:
        for entry in item["trigger_series"] or [{"series_id": None}]:
            rows.append(
                (
                    item["strategy_id"],
                    entry["series_id"] or "(no trigger series)",
                    entry.get("last_period") or "-",
                    entry.get("frequency") or "-",
                )
            )
    if not rows:
        return "no active strategies"
    widths = [max(len(row[i]) for row in (header, *rows)) for i in range(len(header))]
    table = [
        "  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip()
        for row in (header, *rows)
    ]
    readiness = [
        f"{item['strategy_id']}: "
        + (
            "ready"
            if not item["missing"]
            else "cannot run yet; missing " + "; ".join(item["missing"])
        )
        for item in listing
    ]
    stale = [
        f"{item['strategy_id']}: stopped series read as missing: "
        + ", ".join(
            f"{s['series_id']} (last release {s['last_released_at'][:10]})"
            for s in item["stale_series"]
        )
        for item in listing
        if item["stale_series"]
    ]
    return "\n".join([*table, "", *readiness, *stale])
