"""`alphafactory release publish | replay`: put macro releases on ``macro.releases``.

``publish`` sends one release typed on the command line (an outside feed, or a manual
correction); ``replay`` sends the bundled dataset's release history in release-time order,
as fast as possible or on an accelerated clock. Both validate before connecting: a bad value
is exit code 2 with a message naming it. Broker failures are exit code 1; Ctrl-C stops a
replay between batches, prints what was sent, and exits 130.
"""

from __future__ import annotations

import contextlib
import json
import math
import signal
import sys
import threading
from datetime import UTC, date, datetime, timedelta
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from alphafactory.settings import Settings


def register(commands) -> None:
    parser = commands.add_parser("release", help="publish or replay macro releases")
    actions = parser.add_subparsers(dest="action", required=True, metavar="ACTION")
    publish = actions.add_parser("publish", help="publish one release to macro.releases")
    publish.add_argument("--series", required=True, help="series id, e.g. us_core_cpi")
    publish.add_argument("--period", required=True, help="observed period, YYYY-MM-DD")
    publish.add_argument("--value", required=True, help="the observation, a finite number")
    publish.add_argument("--released-at", help="ISO-8601 timestamp with zone (default: now, UTC)")
    publish.add_argument("--event-id", help="idempotency key (default: SERIES:PERIOD:RELEASED_AT)")
    publish.add_argument("--json", action="store_true", help="print one JSON object")
    publish.set_defaults(handler=run_publish)
    replay = actions.add_parser("replay", help="replay a dataset's releases in release order")
    replay.add_argument(
        "--data",
        choices=["bundled"],
        default="bundled",
        help="release history to replay (default: bundled)",
    )
    replay.add_argument("--since", help="first release time, YYYY-MM-DD (UTC) or ISO timestamp")
    replay.add_argument(
        "--until", help="last release day, YYYY-MM-DD (inclusive), or ISO timestamp (exclusive)"
    )
    replay.add_argument(
        "--speed",
        help="release seconds per wall second, e.g. 86400 = one day a second "
        "(default: as fast as possible)",
    )
    replay.add_argument("--max-gap", default="5", help="longest pause in seconds (default 5)")
    replay.add_argument(
        "--no-wait",
        action="store_true",
        help="do not wait, before each release that triggers a strategy, for the earlier "
        "ones to be stored (faster, but a decision may miss a release still in flight)",
    )
    replay.add_argument("--json", action="store_true", help="print one JSON object")
    replay.set_defaults(handler=run_replay)


class BadArgument(ValueError):
    """A command-line value that cannot be used; exit code 2."""


def _number(option: str, text: str, *, positive: bool = False) -> float:
    try:
        value = float(text)
    except ValueError:
        value = math.nan
    if not math.isfinite(value) or (positive and value <= 0):
        kind = "a positive finite number" if positive else "a finite number, e.g. 3.2"
        raise BadArgument(f"{option} {text!r} is not valid; expected {kind}")
    return value


def _timestamp(option: str, text: str) -> datetime:
    """An aware ISO-8601 timestamp (``Z`` allowed), converted to UTC."""
    try:
        value = datetime.fromisoformat(text)
    except ValueError:
        raise BadArgument(
            f"{option} {text!r} is not an ISO-8601 timestamp; expected e.g. "
            "2024-05-10T12:30:00+00:00"
        ) from None
    if value.tzinfo is None or value.utcoffset() is None:
        raise BadArgument(
            f"{option} {text!r} has no time zone; expected e.g. 2024-05-10T12:30:00+00:00 "
            "or 2024-05-10T12:30:00Z"
        )
    return value.astimezone(UTC)


def _day(option: str, text: str) -> date:
    try:
        return date.fromisoformat(text)
    except ValueError:
        raise BadArgument(f"{option} {text!r} is not a date; expected YYYY-MM-DD") from None


def _bound(option: str, text: str | None, *, end: bool) -> datetime | None:
    """``--since``/``--until``: a bare date is a UTC day (``--until`` includes that day)."""
    if text is None:
        return None
    if len(text) == 10:
        start = datetime.combine(_day(option, text), datetime.min.time(), tzinfo=UTC)
        return start + timedelta(days=1) if end else start
    return _timestamp(option, text)


def release_from_args(args, *, now: datetime):
    """The MacroRelease the ``publish`` arguments describe; BadArgument if one is wrong."""
    from producers.releases import InvalidReleaseError, make_release

    period = _day("--period", args.period)
    value = _number("--value", args.value)
    released_at = now if args.released_at is None else _timestamp("--released-at", args.released_at)
    event_id = args.event_id or f"{args.series}:{period.isoformat()}:{released_at.isoformat()}"
    try:
        return make_release(
            event_id=event_id,
            series_id=args.series,
            period=period,
            value=value,
            released_at=released_at,
        )
    except InvalidReleaseError as error:
        raise BadArgument(str(error)) from error


def open_publisher(settings: Settings):
    from alphafactory.topics import MACRO_RELEASES, MARKET_DATA
    from messaging.admin import ensure_topics
    from messaging.publisher import KafkaPublisher

    # `stack up` creates every topic; this makes a fresh or external broker work too, and
    # leaves an existing topic untouched. Bounded by the request timeout so a missing broker
    # fails as fast as the producer would.
    ensure_topics(
        settings.kafka,
        [MACRO_RELEASES, MARKET_DATA],
        timeout_s=settings.kafka.request_timeout_ms / 1000,
    )
    return KafkaPublisher.open(settings.kafka)


def run_publish(args, settings: Settings) -> int:
    from messaging.errors import KafkaEdgeError
    from producers.releases import publish_release

    try:
        release = release_from_args(args, now=datetime.now(UTC))
    except BadArgument as error:
        print(f"alphafactory: {error}", file=sys.stderr)
        return 2
    try:
        with open_publisher(settings) as publisher:
            meta = publish_release(publisher, release)
    except KafkaEdgeError as error:
        print(f"alphafactory: {error}", file=sys.stderr)
        return 1
    published = {
        "topic": meta.topic,
        "partition": meta.partition,
        "offset": meta.offset,
        "key": release.key(),
        "event_id": release.event_id,
        "event": json.loads(release.to_json()),
    }
    if args.json:
        print(json.dumps(published))
    else:
        print(
            f"published {release.event_id} to {meta.topic} partition {meta.partition} "
            f"offset {meta.offset}: {release.series_id} {release.period} = {release.value:g}, "
            f"released {release.released_at.isoformat()}"
        )
    return 0


def replay_options(args) -> dict:
    """``replay``'s keyword arguments from the command line; BadArgument if one is wrong."""
    max_gap_s = _number("--max-gap", args.max_gap)
    if max_gap_s < 0:
        raise BadArgument(f"--max-gap {args.max_gap!r} is negative; expected seconds >= 0")
    return {
        "since": _bound("--since", args.since, end=False),
        "until": _bound("--until", args.until, end=True),
        "speed": None if args.speed is None else _number("--speed", args.speed, positive=True),
        "max_gap_s": max_gap_s,
    }


@contextlib.contextmanager
def stop_on_ctrl_c(stop: threading.Event):
    """Ctrl-C sets ``stop`` so the replay ends between batches and reports what it sent."""
    if threading.current_thread() is not threading.main_thread():
        yield  # signal handlers can only be installed from the main thread
        return
    previous = signal.signal(signal.SIGINT, lambda *_: stop.set())
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)


def publish_history(settings: Settings, events: list, options: dict, *, wait: bool):
    """Replay ``events`` (``replay_options`` less the window) to the stack's broker, each
    trigger waiting for what was sent before it unless not ``wait``; (published, stop
    event), or None when the broker or a wait failed (printed)."""
    from messaging.errors import KafkaEdgeError
    from producers.replay import replay

    if wait:
        from app.wiring import release_settling

        options = {**options, **release_settling(settings)._asdict()}
    stop = threading.Event()
    try:
        with stop_on_ctrl_c(stop), open_publisher(settings) as publisher:
            return replay(publisher, events, stop_event=stop, **options), stop
    except (TimeoutError, KafkaEdgeError) as error:
        print(f"alphafactory: {error}", file=sys.stderr)
        return None


def run_replay(args, settings: Settings) -> int:
    from alphafactory.data.bundled import bundled_market
    from producers.releases import release_events
    from producers.replay import select_events

    try:
        options = replay_options(args)
    except BadArgument as error:
        print(f"alphafactory: {error}", file=sys.stderr)
        return 2
    window = {"since": options.pop("since"), "until": options.pop("until")}
    events = select_events(release_events(bundled_market().releases), **window)
    outcome = publish_history(settings, events, options, wait=not args.no_wait)
    if outcome is None:
        return 1
    published, stop = outcome
    _print_replay(args, events, published, stopped=stop.is_set(), speed=options["speed"])
    return 130 if stop.is_set() else 0


def _print_replay(args, events: list, published: int, *, stopped: bool, speed) -> None:
    from alphafactory.topics import MACRO_RELEASES

    first = events[0].released_at.isoformat() if published else None
    last = events[published - 1].released_at.isoformat() if published else None
    if args.json:
        print(
            json.dumps(
                {
                    "topic": MACRO_RELEASES,
                    "data": args.data,
                    "selected": len(events),
                    "published": published,
                    "stopped": stopped,
                    "speed": speed,
                    "first_released_at": first,
                    "last_released_at": last,
                }
            )
        )
        return
    window = f" ({first} .. {last})" if published else ""
    note = ", stopped early" if stopped else ""
    print(f"replayed {published} of {len(events)} releases to {MACRO_RELEASES}{window}{note}")
