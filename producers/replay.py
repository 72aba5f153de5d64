"""The replayer: a history of events published in time order on one clock.

How a point-in-time walk-forward reuses the production pipeline: historical macro
releases (``macro.releases``, at their ``released_at``) and market data (``market.data``,
at their ``available_at``) go through the same topics in the order they became known.
``speed=None`` sends them as fast as the client can; ``speed=k`` runs an accelerated clock
(``86400`` = one day of history per second), so consumers see realistic bursts and
pauses, with any one pause capped at ``max_gap_s`` so decades do not stall on a quiet year.

Events of one instant go out market data first, then releases, each kind in key order, so
a replay is reproducible; with ``settle`` the releases that trigger a strategy go last of
their instant (their decision at that instant includes the rest).
"""

from __future__ import annotations

import logging
import math
import threading
import time
from collections.abc import Callable, Iterable, Sequence
from datetime import datetime
from itertools import groupby

from alphafactory.events import MacroRelease, MarketData
from messaging.publisher import KafkaPublisher, OutgoingRecord

logger = logging.getLogger(__name__)

DEFAULT_MAX_GAP_S = 5.0
DEFAULT_BATCH_SIZE = 1000
Timed = MacroRelease | MarketData


def instant(event: Timed) -> datetime:
    """When ``event`` became known: a release's ``released_at``, market data's
    ``available_at``."""
    return event.released_at if isinstance(event, MacroRelease) else event.available_at


def _order(event: Timed) -> tuple:
    if isinstance(event, MacroRelease):
        return instant(event), 1, event.series_id, event.period, event.event_id
    return instant(event), 0, event.asset, event.date, event.event_id


def _record(event: Timed) -> OutgoingRecord:
    return OutgoingRecord(event.topic, event.key(), event.to_json())


def triggers_last_in_each_instant(
    events: Sequence[Timed], is_trigger: Callable[[Timed], bool]
) -> list[Timed]:
    """``events`` (in time order) with the triggering ones after the others of the same
    instant: a decision at that instant sees all of them, so a replay must have them
    stored first. Otherwise the order is kept."""
    return sorted(events, key=lambda event: (instant(event), is_trigger(event)))


def _check_bound(name: str, bound: datetime | None) -> None:
    if bound is not None and (bound.tzinfo is None or bound.utcoffset() is None):
        raise ValueError(f"{name}={bound.isoformat()} has no time zone; pass an aware datetime")


def select_events(
    events: Iterable[Timed],
    *,
    since: datetime | None = None,
    until: datetime | None = None,
) -> list[Timed]:
    """Events known at ``since <= t < until`` (either bound optional), in time order.

    The window is half-open so consecutive windows ([a, b), [b, c)) replay every event
    exactly once.
    """
    _check_bound("since", since)
    _check_bound("until", until)
    chosen = [
        e
        for e in events
        if (since is None or instant(e) >= since) and (until is None or instant(e) < until)
    ]
    return sorted(chosen, key=_order)


def replay(
    publisher: KafkaPublisher,
    events: Iterable[Timed],
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
    is_trigger: Callable[[Timed], bool] = lambda event: isinstance(event, MacroRelease),
    decided: Callable[[list[Timed]], None] | None = None,
) -> int:
    """Publish ``events`` in time order; returns how many were acknowledged.

    ``speed=None``: batches of ``batch_size`` through ``publish_many`` (one flush each).
    ``speed=k``: events that share an instant go out together; between instants the
    replayer waits the real gap divided by ``k``, at most ``max_gap_s``. Waits are measured
    against ``clock`` from the replay's start, so time spent publishing is not added on top.
    ``stop_event`` is checked before every batch; with the default ``sleep`` the wait is on
    the event itself, so setting it interrupts a pause at once.

    ``settle(event_ids)``, if given, must block until those events are stored: it is
    called before each event that ``is_trigger``, with every event published since the
    last call, so each decision sees every earlier event whatever the partitions' lag,
    and a replay's allocations do not depend on its speed. Triggers then go out after the
    other events of their instant, which their decision (at that instant) includes.
    ``decided(triggers)``, if given, must block until the decisions on those triggers have
    ended: it is called before a trigger that shares its instant with triggers sent before
    it, so their decisions never see it, whatever the timing (each decision sees the
    events sent before it, as a replay of the same events in process would).
    """
    if speed is not None and not (math.isfinite(speed) and speed > 0):
        raise ValueError(f"speed must be a positive number or None, got {speed!r}")
    if not (math.isfinite(max_gap_s) and max_gap_s >= 0):
        raise ValueError(f"max_gap_s must be a non-negative number, got {max_gap_s!r}")
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size!r}")
    chosen = select_events(events, since=since, until=until)
    if settle is not None:  # a trigger's decision sees every event of its own instant too
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
    """Publishes batches; with ``settle``, waits before each trigger for the events
    published since the last wait to be stored."""

    def __init__(self, publisher: KafkaPublisher, settle, is_trigger, decided=None) -> None:
        self._publisher, self._settle, self._is_trigger = publisher, settle, is_trigger
        self._decided = decided
        self._unsettled: list[str] = []
        self._instant_triggers: list[Timed] = []  # sent at the latest trigger's instant

    def send(self, batch: list[Timed]) -> None:
        if self._settle is None:
            self._publish(batch)
            return
        pending: list[Timed] = []
        for event in batch:
            if self._is_trigger(event):
                self._publish(pending)
                pending = []
                if self._unsettled:
                    self._settle(self._unsettled)
                    self._unsettled = []
                self._after_instant_peers(event)
            pending.append(event)
        self._publish(pending)

    def _after_instant_peers(self, trigger: Timed) -> None:
        peers = [t for t in self._instant_triggers if instant(t) == instant(trigger)]
        if peers and self._decided is not None:
            self._decided(peers)
        self._instant_triggers = [*peers, trigger]

    def _publish(self, events: list[Timed]) -> None:
        if events:
            self._publisher.publish_many([_record(e) for e in events])
            self._unsettled += [e.event_id for e in events]


def _publish_batches(sender: _Sender, batches: Sequence[list[Timed]], stop: threading.Event) -> int:
    published = 0
    for batch in batches:
        if stop.is_set():
            logger.info("replay stopped after %d events", published)
            break
        sender.send(batch)
        published += len(batch)
    return published


def _publish_paced(
    sender: _Sender,
    chosen: list[Timed],
    speed: float,
    max_gap_s: float,
    sleep: Callable[[float], object],
    clock: Callable[[], float],
    stop: threading.Event,
) -> int:
    """Publish instant groups on an accelerated clock anchored at the first group."""
    published, due, previous = 0, clock(), None
    for at, group in groupby(chosen, key=instant):
        if previous is not None:
            gap_s = (at - previous).total_seconds() / speed
            due += min(gap_s, max_gap_s)
            # behind schedule (slow publishing): publish at once instead of sleeping
            if (pause := due - clock()) > 0:
                sleep(pause)
        if stop.is_set():
            logger.info("replay stopped after %d events", published)
            break
        batch = list(group)
        sender.send(batch)
        published += len(batch)
        previous = at
    return published
