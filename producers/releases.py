"""Release feeds: publish ``macro.releases`` events one at a time or replay a history of them.

Every feed publishes :class:`alphafactory.events.MacroRelease` (DESIGN.md contract 3): value
``release.to_json()``, key the series id, so one series' releases stay in order on one
partition and ``event_id`` lets consumers drop duplicates.

The replayer is how a point-in-time walk-forward reuses the production pipeline: historical
releases go through the same topic in the order they were released. ``speed=None`` sends them
as fast as the client can; ``speed=k`` runs an accelerated clock (``86400`` = one day of
release time per second), so consumers see realistic bursts and pauses, with any one pause
capped at ``max_gap_s`` so decades of history do not stall on a quiet year.
"""

from __future__ import annotations

import logging
import math
import threading
import time
from collections.abc import Callable, Iterable, Sequence
from datetime import date, datetime
from itertools import groupby

import pandas as pd
from kafka.producer.future import RecordMetadata
from pydantic import ValidationError

from alphafactory.data.releases import RELEASE_COLUMNS
from alphafactory.events import MacroRelease
from messaging.publisher import KafkaPublisher, OutgoingRecord

logger = logging.getLogger(__name__)

DEFAULT_MAX_GAP_S = 5.0
DEFAULT_BATCH_SIZE = 1000


class InvalidReleaseError(ValueError):
    """Fields that do not make a valid ``MacroRelease``; the message names each bad value."""


def make_release(
    *, event_id: str, series_id: str, period: date, value: float, released_at: datetime
) -> MacroRelease:
    """A validated release, or InvalidReleaseError naming the bad field, value and rule."""
    try:
        return MacroRelease(
            event_id=event_id,
            series_id=series_id,
            period=period,
            value=value,
            released_at=released_at,
        )
    except ValidationError as error:
        raise InvalidReleaseError(
            f"release {event_id!r} is not valid: {_describe(error)}"
        ) from error


def _describe(error: ValidationError) -> str:
    parts = []
    for item in error.errors(include_url=False):
        field = ".".join(str(p) for p in item["loc"]) or "release"
        parts.append(f"{field} {item.get('input')!r}: {item['msg']}")
    return "; ".join(parts)


def publish_release(publisher: KafkaPublisher, release: MacroRelease) -> RecordMetadata:
    """Publish one release and wait for the broker's acknowledgement."""
    return publisher.publish(release.topic, key=release.key(), value=release.to_json())


def _record(release: MacroRelease) -> OutgoingRecord:
    return OutgoingRecord(release.topic, release.key(), release.to_json())


def _release_order(release: MacroRelease) -> tuple[datetime, str, date]:
    return release.released_at, release.series_id, release.period


def release_events(releases: pd.DataFrame) -> list[MacroRelease]:
    """Validated events of a release table (``RELEASE_COLUMNS``), in release-time order.

    Ties in ``released_at`` are ordered by series id, then period, so a replay is
    reproducible. Raises InvalidReleaseError for a missing column, a ``released_at``
    column without a time zone, or a row that is not a valid event (e.g. a NaN value).
    """
    missing = [c for c in RELEASE_COLUMNS if c not in releases.columns]
    if missing:
        raise InvalidReleaseError(
            f"release table lacks columns {missing}; expected {RELEASE_COLUMNS}"
        )
    released_at = releases["released_at"]
    if not isinstance(released_at.dtype, pd.DatetimeTZDtype):
        raise InvalidReleaseError(
            f"column released_at has dtype {released_at.dtype}; expected timezone-aware "
            "timestamps (e.g. datetime64[ns, UTC])"
        )
    rows = zip(
        releases["event_id"].astype(str),
        releases["series_id"].astype(str),
        pd.to_datetime(releases["period"]).dt.date,
        releases["value"].astype(float),
        pd.DatetimeIndex(released_at).tz_convert("UTC").to_pydatetime(),
        strict=True,
    )
    events = [
        make_release(
            event_id=event_id,
            series_id=series_id,
            period=period,
            value=value,
            released_at=when,
        )
        for event_id, series_id, period, value, when in rows
    ]
    return sorted(events, key=_release_order)


def triggers_last_in_each_instant(
    releases: Sequence[MacroRelease], is_trigger: Callable[[MacroRelease], bool]
) -> list[MacroRelease]:
    """``releases`` (in release-time order) with the triggering ones after the others of
    the same ``released_at``: a decision at that instant sees all of them, so a replay
    must have them stored first. Otherwise the order is kept."""
    return sorted(releases, key=lambda release: (release.released_at, is_trigger(release)))


def _check_bound(name: str, bound: datetime | None) -> None:
    if bound is not None and (bound.tzinfo is None or bound.utcoffset() is None):
        raise ValueError(f"{name}={bound.isoformat()} has no time zone; pass an aware datetime")


def select_releases(
    events: Iterable[MacroRelease],
    *,
    since: datetime | None = None,
    until: datetime | None = None,
) -> list[MacroRelease]:
    """Events with ``since <= released_at < until`` (either bound optional), in release order.

    The window is half-open so consecutive windows ([a, b), [b, c)) replay every release
    exactly once.
    """
    _check_bound("since", since)
    _check_bound("until", until)
    chosen = [
        e
        for e in events
        if (since is None or e.released_at >= since) and (until is None or e.released_at < until)
    ]
    return sorted(chosen, key=_release_order)


def replay(
    publisher: KafkaPublisher,
    events: Iterable[MacroRelease],
    *,
    speed: float | None,
    since: datetime | None = None,
    until: datetime | None = None,
    sleep: Callable[[float], object] = time.sleep,
    clock: Callable[[], float] = time.monotonic,
    stop_event: threading.Event | None = None,
    max_gap_s: float = DEFAULT_MAX_GAP_S,
    batch_size: int = DEFAULT_BATCH_SIZE,
    settle: Callable[[list[str]], None] | None = None,
    is_trigger: Callable[[MacroRelease], bool] = lambda release: True,
    decided: Callable[[list[MacroRelease]], None] | None = None,
) -> int:
    """Publish ``events`` in release-time order; returns how many were acknowledged.

    ``speed=None``: batches of ``batch_size`` through ``publish_many`` (one flush each).
    ``speed=k``: releases that share a timestamp go out together; between timestamps the
    replayer waits the real gap divided by ``k``, at most ``max_gap_s``. Waits are measured
    against ``clock`` from the replay's start, so time spent publishing is not added on top.
    ``stop_event`` is checked before every batch; with the default ``sleep`` the wait is on
    the event itself, so setting it interrupts a pause at once.

    ``settle(event_ids)``, if given, must block until those releases are stored: it is
    called before each release that ``is_trigger``, with every release published since the
    last call, so each decision sees every earlier release whatever the partitions' lag,
    and a replay's allocations do not depend on its speed. Triggers then go out after the
    other releases of their instant, which their decision (at that instant) includes.
    ``decided(triggers)``, if given, must block until the decisions on those triggers have
    ended: it is called before a trigger that shares its instant with triggers sent before
    it, so their decisions never see it, whatever the timing (each decision sees the
    releases sent before it, as a replay of the same releases in process would).
    """
    if speed is not None and not (math.isfinite(speed) and speed > 0):
        raise ValueError(f"speed must be a positive number or None, got {speed!r}")
    if not (math.isfinite(max_gap_s) and max_gap_s >= 0):
        raise ValueError(f"max_gap_s must be a non-negative number, got {max_gap_s!r}")
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size!r}")
    chosen = select_releases(events, since=since, until=until)
    if settle is not None:  # a trigger's decision sees every release of its own instant too
        chosen = triggers_last_in_each_instant(chosen, is_trigger)
    stop = stop_event or threading.Event()
    sender = _Sender(publisher, settle, is_trigger, decided)
    if speed is None:
        batches = [chosen[i : i + batch_size] for i in range(0, len(chosen), batch_size)]
        return _publish_batches(sender, batches, stop)
    if stop_event is not None and sleep is time.sleep:
        sleep = stop_event.wait
    return _publish_paced(sender, chosen, speed, max_gap_s, sleep, clock, stop)


class _Sender:
    """Publishes batches; with ``settle``, waits before each trigger for the releases
    published since the last wait to be stored."""

    def __init__(self, publisher: KafkaPublisher, settle, is_trigger, decided=None) -> None:
        self._publisher, self._settle, self._is_trigger = publisher, settle, is_trigger
        self._decided = decided
        self._unsettled: list[str] = []
        self._instant_triggers: list[MacroRelease] = []  # sent at the latest trigger's instant

    def send(self, batch: list[MacroRelease]) -> None:
        if self._settle is None:
            self._publish(batch)
            return
        pending: list[MacroRelease] = []
        for release in batch:
            if self._is_trigger(release):
                self._publish(pending)
                pending = []
                if self._unsettled:
                    self._settle(self._unsettled)
                    self._unsettled = []
                self._after_instant_peers(release)
            pending.append(release)
        self._publish(pending)

    def _after_instant_peers(self, trigger: MacroRelease) -> None:
        peers = [t for t in self._instant_triggers if t.released_at == trigger.released_at]
        if peers and self._decided is not None:
            self._decided(peers)
        self._instant_triggers = [*peers, trigger]

    def _publish(self, releases: list[MacroRelease]) -> None:
        if releases:
            self._publisher.publish_many([_record(e) for e in releases])
            self._unsettled += [e.event_id for e in releases]


def _publish_batches(
    sender: _Sender, batches: Sequence[list[MacroRelease]], stop: threading.Event
) -> int:
    published = 0
    for batch in batches:
        if stop.is_set():
            logger.info("replay stopped after %d releases", published)
            break
        sender.send(batch)
        published += len(batch)
    return published


def _publish_paced(
    sender: _Sender,
    chosen: list[MacroRelease],
    speed: float,
    max_gap_s: float,
    sleep: Callable[[float], object],
    clock: Callable[[], float],
    stop: threading.Event,
) -> int:
    """Publish timestamp groups on an accelerated clock anchored at the first group."""
    published, due, previous = 0, clock(), None
    for released_at, group in groupby(chosen, key=lambda e: e.released_at):
        if previous is not None:
            gap_s = (released_at - previous).total_seconds() / speed
            due += min(gap_s, max_gap_s)
            # behind schedule (slow publishing): publish at once instead of sleeping
            if (pause := due - clock()) > 0:
                sleep(pause)
        if stop.is_set():
            logger.info("replay stopped after %d releases", published)
            break
        batch = list(group)
        sender.send(batch)
        published += len(batch)
        previous = released_at
    return published
