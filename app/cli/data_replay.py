"""`alphafactory data replay --from DATE --to DATE [--speed X]`: market data and macro
releases, from the store or from files, published on one clock in time order.

Releases go to ``macro.releases`` at their ``released_at``, market data to ``market.data``
at its ``available_at`` (``producers.history`` makes the events, ``producers.replay``
publishes them). Unless ``--no-wait``, each release that triggers a strategy waits until
every event published before it is stored, so the decision sees them whatever the speed.
Exit codes: 0 done; 1 broker or store failure, or a bad file; 2 a bad argument; 130
stopped by Ctrl-C (what was sent is printed).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from alphafactory.settings import Settings


def add_replay(actions) -> None:
    replay = actions.add_parser(
        "replay",
        help="publish stored (or file) market data and releases in time order",
        description="Publish the market data (market.data) and macro releases "
        "(macro.releases) known from --from to --to on one clock, in time order: the "
        "stored ones, or those of --panel and/or --releases files (read as data load "
        "reads them). Dates are UTC days; --to includes its day.",
    )
    replay.add_argument("--from", dest="since", required=True, metavar="DATE", help="first day")
    replay.add_argument("--to", dest="until", required=True, metavar="DATE", help="last day")
    replay.add_argument(
        "--speed",
        help="history seconds per wall second, e.g. 86400 = a day a second (default: as fast "
        "as possible)",
    )
    replay.add_argument("--max-gap", default="5", help="longest pause in seconds (default 5)")
    replay.add_argument("--panel", type=Path, help="replay this panel file, not the store")
    replay.add_argument("--releases", type=Path, help="replay this release file, not the store")
    replay.add_argument(
        "--release-time", default="08:30", metavar="HH:MM", help="ALFRED vintages' clock time"
    )
    replay.add_argument(
        "--no-wait", action="store_true", help="do not wait for events to be stored before triggers"
    )
    replay.add_argument("--json", action="store_true", help="print one JSON object")
    replay.set_defaults(handler=run_replay)


def run_replay(args, settings: Settings) -> int:
    from datetime import UTC, datetime

    from alphafactory.data.errors import DataError
    from app.cli.release_cmd import BadArgument, publish_history, replay_options

    try:
        options = replay_options(args)
        if options["since"] >= options["until"]:
            raise BadArgument(f"--from {args.since} is not before --to {args.until}")
    except BadArgument as error:
        print(f"alphafactory: {error}", file=sys.stderr)
        return 2
    window = {"since": options.pop("since"), "until": options.pop("until")}
    try:
        events = _history(args, settings, now=datetime.now(UTC), **window)
    except DataError as error:
        print(f"alphafactory: {error}", file=sys.stderr)
        return 1
    outcome = publish_history(settings, events, options, wait=not args.no_wait)
    if outcome is None:
        return 1
    published, stop = outcome
    _report(args, events, published, stopped=stop.is_set())
    return 130 if stop.is_set() else 0


def _history(args, settings: Settings, *, now, since, until) -> list:
    from producers.history import file_history, stored_history
    from storage.db import connect

    if args.panel or args.releases:
        return file_history(
            panel=args.panel,
            releases=args.releases,
            release_time=args.release_time,
            now=now,
            since=since,
            until=until,
        )
    with connect(settings.postgres.dsn("app"), autocommit=True) as conn:
        return stored_history(conn, since=since, until=until)


def _report(args, events: list, published: int, *, stopped: bool) -> None:
    from alphafactory.events import MacroRelease
    from producers.replay import instant

    sent = events[:published]
    releases = sum(isinstance(e, MacroRelease) for e in sent)
    summary = {
        "source": "files" if args.panel or args.releases else "store",
        "selected": len(events),
        "published": published,
        "releases": releases,
        "market_data": published - releases,
        "stopped": stopped,
        "first": instant(sent[0]).isoformat() if sent else None,
        "last": instant(sent[-1]).isoformat() if sent else None,
    }
    if args.json:
        print(json.dumps(summary))
        return
    window = f" ({summary['first']} .. {summary['last']})" if sent else ""
    note = ", stopped early" if stopped else ""
    print(
        f"replayed {published} of {len(events)} events from the {summary['source']}: "
        f"{releases} releases, {published - releases} market data{window}{note}"
    )
