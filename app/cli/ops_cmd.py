"""The on-call engineer's commands over the system of record (``storage.operations``):

- ``alphafactory status [--json]``: each consumer group's lag, the requests not ended by
  state, each strategy's last allocation, dead letters by topic, the reconciler's actions
  of the last 24 hours and the newest release of each series (with its age);

- ``alphafactory positions [--strategy ID] [--json]``: each strategy's and variant's latest
  target positions, as the trading systems read them;
- ``alphafactory requests list [--strategy ID] [--limit N] [--json]``: the newest
  requests and where each stands (generating, evaluating, allocating, allocated, failed,
  skipped), with its candidates, evaluations, those that met the alpha definition and,
  once allocated, its admission (trials, admitted, the control);
- ``alphafactory requests show ID [--json]``: one request, with its failure or skip reason,
  its allocation and its strongest alphas;
- ``alphafactory deadletters list [--topic T] [--limit N] [--json]``: the records a consumer
  gave up on, newest first, with the error;
- ``alphafactory deadletters retry ID``: publish dead letter ID's record to its topic again
  (the consumers are idempotent by event id, so a retry can never apply it twice) and
  remove it; if it fails again, the consumer records it again with the new error.

Read-only but for ``deadletters retry``. An unknown request or dead letter exits 1 and
names it.
"""

from __future__ import annotations

import json
import sys
from typing import TYPE_CHECKING

from app.cli.factor_cmd import _positive_int

if TYPE_CHECKING:
    from alphafactory.settings import Settings


def register(commands) -> None:
    status = commands.add_parser("status", help="the pipeline at a glance: lag, requests...")
    status.add_argument("--json", action="store_true", help="print one JSON object")
    status.set_defaults(handler=run_status)
    positions = commands.add_parser("positions", help="the latest target positions")
    positions.add_argument("--strategy", default=None, help="one strategy or variant id")
    positions.add_argument("--json", action="store_true", help="print one JSON object")
    positions.set_defaults(handler=run_positions)
    requests = commands.add_parser("requests", help="generation requests and where they stand")
    actions = requests.add_subparsers(dest="action", required=True, metavar="ACTION")
    listing = actions.add_parser("list", help="the newest requests")
    listing.add_argument("--strategy", default=None, help="one strategy's (default: all)")
    listing.add_argument("--limit", type=_positive_int, default=20)
    listing.add_argument("--json", action="store_true", help="print one JSON object")
    listing.set_defaults(handler=run_requests_list)
    show = actions.add_parser("show", help="one request in detail")
    show.add_argument("request_id", metavar="ID")
    show.add_argument("--json", action="store_true", help="print one JSON object")
    show.set_defaults(handler=run_requests_show)
    letters = commands.add_parser("deadletters", help="records the consumers gave up on")
    letter_actions = letters.add_subparsers(dest="action", required=True, metavar="ACTION")
    listing = letter_actions.add_parser("list", help="the newest dead letters")
    listing.add_argument("--topic", default=None, help="one topic's (default: all)")
    listing.add_argument("--limit", type=_positive_int, default=20)
    listing.add_argument("--json", action="store_true", help="print one JSON object")
    listing.set_defaults(handler=run_deadletters_list)
    retry = letter_actions.add_parser("retry", help="publish a dead letter's record again")
    retry.add_argument("dead_letter_id", type=_positive_int, metavar="ID")
    retry.set_defaults(handler=run_deadletters_retry)


def _connect(settings: Settings):
    from storage.db import connect

    return connect(settings.postgres.dsn("app"), autocommit=True)


def _json(value) -> str:
    """JSON with dates and times as ISO-8601."""
    return json.dumps(value, indent=1, default=lambda v: getattr(v, "isoformat", v.__str__)())


def run_positions(args, settings: Settings) -> int:
    from storage.allocations import latest_class_exposures
    from storage.operations import latest_positions

    with _connect(settings) as conn:
        rows = latest_positions(conn, args.strategy)
        exposures = latest_class_exposures(conn, strategy_id=args.strategy)
    if args.json:
        by_strategy: dict[str, dict] = {}
        for row in rows:
            entry = by_strategy.setdefault(
                row.strategy_id,
                {
                    "as_of": row.as_of.isoformat(),
                    "allocation_id": row.allocation_id,
                    "trigger_event_id": row.trigger_event_id,
                    "created_at": row.created_at.isoformat(),
                    "weights": {},
                },
            )
            entry["weights"][row.asset] = row.weight
        for row in exposures.itertuples():
            if row.strategy_id in by_strategy:  # per class of each group (trading.class_exposures)
                by_strategy[row.strategy_id].setdefault("exposures", []).append(
                    {
                        "group": row.group_name,
                        "class_code": int(row.class_code),
                        "weight": row.weight,
                        "active_weight": row.active_weight,
                        "forecast_return": row.forecast_return,
                    }
                )
        print(_json({"strategies": by_strategy}))
        return 0
    if not rows:
        which = f"strategy {args.strategy!r}" if args.strategy else "any strategy"
        print(f"no positions for {which} yet")
        return 0
    current = None
    for row in rows:
        if row.strategy_id != current:
            current = row.strategy_id
            print(f"{current}  as of {row.as_of}  (allocation {row.allocation_id})")
        print(f"  {row.asset:24s} {row.weight:+.4f}")
    return 0


def run_requests_list(args, settings: Settings) -> int:
    from storage.operations import recent_requests

    with _connect(settings) as conn:
        rows = recent_requests(conn, strategy_id=args.strategy, limit=args.limit)
    if args.json:
        print(_json({"requests": [row.to_dict() for row in rows]}))
        return 0
    if not rows:
        print("no generation request is recorded yet")
        return 0
    # qual: met the alpha definition; adm: admitted by the control (- until allocated)
    header = (
        f"{'decision time':25s} {'state':10s} {'cands':>5s} {'eval':>5s} {'qual':>5s} {'adm':>4s}"
    )
    print(f"{header}  strategy  request")
    for row in rows:
        admitted = "-" if row.admitted is None else str(row.admitted)
        print(
            f"{row.decision_time.isoformat():25s} {row.state:10s} {row.candidates or 0:5d} "
            f"{row.evaluated:5d} {row.qualified:5d} {admitted:>4s}  {row.strategy_id}  "
            f"{row.request_id}"
        )
    return 0


def run_requests_show(args, settings: Settings) -> int:
    from storage.operations import request_alphas, request_summary

    with _connect(settings) as conn:
        summary = request_summary(conn, args.request_id)
        alphas = request_alphas(conn, args.request_id) if summary else []
    if summary is None:
        print(f"alphafactory: no request {args.request_id!r} is recorded", file=sys.stderr)
        return 1
    detail = summary.to_dict() | {"top_alphas": alphas}
    if args.json:
        print(_json(detail))
        return 0
    for key, value in summary.to_dict().items():
        print(f"{key:17s} {value}")
    for alpha in alphas:
        print(f"  t {alpha['hac_tstat']:+.2f}  ic {alpha['ic']:+.3f}  {alpha['formula']}")
    return 0


def run_deadletters_list(args, settings: Settings) -> int:
    from storage.dead_letters import list_dead_letters

    with _connect(settings) as conn:
        letters = list_dead_letters(conn, topic=args.topic, limit=args.limit)
    rows = [
        {
            "id": letter.id,
            "topic": letter.topic,
            "partition": letter.partition,
            "offset": letter.offset,
            "key": _text(letter.key),
            "error": letter.error,
            "created_at": letter.created_at.isoformat(),
            "payload_bytes": len(letter.payload),
        }
        for letter in letters
    ]
    if args.json:
        print(_json({"dead_letters": rows}))
        return 0
    if not rows:
        print("no dead letters")
        return 0
    for row in rows:
        print(f"{row['id']:6d} {row['created_at'][:19]} {row['topic']:28s} {row['error'][:90]}")
    return 0


def run_deadletters_retry(args, settings: Settings) -> int:
    from messaging.publisher import KafkaPublisher
    from storage.dead_letters import delete_dead_letter, load_dead_letter

    with _connect(settings) as conn:
        letter = load_dead_letter(conn, args.dead_letter_id)
        if letter is None:
            print(f"alphafactory: no dead letter {args.dead_letter_id}", file=sys.stderr)
            return 1
        if letter.topic.startswith("celery:"):
            print(
                f"alphafactory: dead letter {letter.id} is a failed evaluation chunk "
                f"({letter.topic}): its formulas are stored as failed and its request "
                "completed, so there is no record to publish again (a new release of the "
                "trigger decides again)",
                file=sys.stderr,
            )
            return 2
        with KafkaPublisher.open(settings.kafka) as publisher:
            sent = publisher.publish(letter.topic, key=letter.key or b"", value=letter.payload)
        delete_dead_letter(conn, dead_letter_id=letter.id)
    print(
        _json(
            {
                "retried": letter.id,
                "topic": letter.topic,
                "partition": sent.partition,
                "offset": sent.offset,
            }
        )
    )
    return 0


def _text(value: bytes | None) -> str | None:
    return None if value is None else value.decode("utf-8", errors="replace")


def run_status(args, settings: Settings) -> int:
    from datetime import UTC, datetime

    from alphafactory.topics import CONSUMER_GROUPS
    from messaging.admin import consumer_lag
    from messaging.errors import BrokerUnavailableError
    from storage.operations import pipeline_state

    with _connect(settings) as conn:
        state = pipeline_state(conn)
    try:
        lag: dict = consumer_lag(settings.kafka, CONSUMER_GROUPS)
    except BrokerUnavailableError as error:  # the rest still tells the story
        lag = {"error": str(error)}
    now = datetime.now(UTC)
    state["last_releases"] = {
        series: {"released_at": at, "seconds_ago": round((now - at).total_seconds())}
        for series, at in state["last_releases"].items()
    }
    report = {"consumer_lag": lag, **state}
    if args.json:
        print(_json(report))
        return 0
    print(f"consumer lag        {lag}")
    print(f"pending requests    {state['pending_requests'] or 'none'}")
    print(f"dead letters        {state['dead_letters'] or 'none'}")
    print(f"reconciler (24 h)   {state['reconciler_actions'] or 'nothing re-driven'}")
    for strategy, last in state["last_allocations"].items():
        print(f"last allocation     {strategy}: {last['as_of']} ({last['allocation_id']})")
    return 0
