"""`alphafactory data load`: a user's panel or release file (or the bundled set) into the
point-in-time store, idempotently: loading the same file again stores nothing new, and a
file with a bad row stores nothing at all (the error names file, line, column, value)."""

from __future__ import annotations

import sys
from typing import TYPE_CHECKING

from app.cli.data_replay import add_replay

if TYPE_CHECKING:
    from alphafactory.settings import Settings


def register(commands) -> None:
    parser = commands.add_parser("data", help="load market data and macro releases")
    actions = parser.add_subparsers(dest="action", required=True, metavar="ACTION")
    load = actions.add_parser(
        "load",
        help="store a panel file, a release file or the bundled data (idempotent)",
        description="Store data point-in-time. Panel files follow the panel contract "
        "(date, asset, one column per field; CSV or Parquet), each value available at the "
        "end of its date's New York day or, with an available_at column, at that time "
        "(ISO-8601 with its UTC offset; several vintages of a value are revisions). "
        "Release files are either simple (series_id, period, value, released_at with its "
        "UTC offset) or ALFRED vintages (series_id, "
        "date, value, realtime_start), each vintage released at --release-time in New York.",
    )
    what = load.add_mutually_exclusive_group(required=True)
    what.add_argument("--panel", metavar="FILE", help="a panel file (CSV or Parquet)")
    what.add_argument("--releases", metavar="FILE", help="a release file (CSV or Parquet)")
    what.add_argument(
        "--bundled",
        action="store_true",
        help="the bundled data: the monthly multi-asset panel and releases, the daily stocks",
    )
    load.add_argument(
        "--release-time",
        default="08:30",
        metavar="HH:MM",
        help="New York clock time of ALFRED vintages (default 08:30)",
    )
    load.set_defaults(handler=run_load)
    add_replay(actions)


def run_load(args, settings: Settings) -> int:
    from alphafactory.data.errors import DataError
    from storage.db import connect
    from storage.errors import StorageError

    try:
        what, market, releases = _read(args)
        with connect(settings.postgres.dsn("app"), autocommit=True) as conn:
            stored = store(conn, market, releases)
    except (DataError, StorageError) as error:
        print(f"alphafactory: {error}", file=sys.stderr)
        return 1
    print(f"{what}: {stored} new observation(s) stored")
    return 0


def _read(args):
    """(description, market observation sets, release table or None) to load."""
    from datetime import UTC, datetime

    if args.bundled:
        markets, releases = bundled_data()
        return "bundled data", markets, releases
    now = datetime.now(UTC)
    if args.panel:
        from alphafactory.data.market_files import read_market_file

        return args.panel, [read_market_file(args.panel, now=now)], None
    from alphafactory.data.release_files import read_release_file

    table = read_release_file(args.releases, release_time=args.release_time, now=now)
    return args.releases, [], table


def bundled_data():
    """The bundled sets as (market observations, releases): the monthly multi-asset
    panel with its macro releases, and the daily 20-stock panel."""
    from alphafactory.data.bundled import bundled_market
    from alphafactory.data.bundled_stocks import bundled_stocks
    from alphafactory.observations import MarketObservations

    market = bundled_market()
    panels = [market.panel, bundled_stocks()]
    return [MarketObservations.from_panel(p) for p in panels], market.releases


def store(conn, markets, releases) -> int:
    """Store market observation sets and/or releases in one transaction; how many were new."""
    from storage.loading import load_observations, load_releases

    with conn.transaction():  # all of it or, on an error, nothing
        stored = sum(load_observations(conn, market) for market in markets)
        return stored + (load_releases(conn, releases) if releases is not None else 0)
