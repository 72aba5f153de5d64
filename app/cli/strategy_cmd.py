"""`alphafactory strategy list [--json]`: the active strategies and the series that trigger them.

For each active strategy (``settings.pipeline.strategies_dir``, or the bundled ones), each
trigger series with what Postgres holds of it: the newest stored period and the frequency
inferred from the stored periods' spacing (``storage.macro.series_coverage``). ``--json``
prints one object for programs::

    {"strategies": [{"strategy_id": "macro_allocation",
                     "trigger_series": [{"series_id": "us_core_cpi",
                                         "last_period": "2024-04-01", "frequency": "M"}]}]}

``last_period`` and ``frequency`` are null when nothing (or a single period) is stored.
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
    except (StorageError, psycopg.Error) as error:
        print(f"alphafactory: cannot read the stored releases: {error}", file=sys.stderr)
        return 1
    listing = [
        {
            "strategy_id": strategy.id,
            "trigger_series": [coverage[s] for s in strategy.triggers.series],
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
    return "\n".join(
        "  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip()
        for row in (header, *rows)
    )
