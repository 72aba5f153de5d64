"""Time-triggered generation requests: strategies whose ``triggers.schedule`` is set.

Pure part: :func:`due_ticks` lists the schedule's ticks in ``(last, now]``, and
:func:`schedule_requests` turns ticks into ``GenerationRequest`` events whose ids are derived
from the strategy and the tick alone. A restarted scheduler that republishes a tick therefore
sends the same ``request_id`` and ``trigger_event_id``, which consumers deduplicate.

I/O part: :func:`run_scheduler` polls, publishes what is due (key = strategy id), then records
the last published tick per strategy in a small JSON state file. Publishing happens before the
state is saved, so a crash in between repeats a tick (harmless, see above) but never skips one.
"""

from __future__ import annotations

import calendar
import json
import logging
import os
import tempfile
import threading
from collections.abc import Callable, Iterable, Sequence
from datetime import UTC, date, datetime, time, timedelta
from pathlib import Path

from alphafactory.events import GenerationRequest, request_id_for
from alphafactory.strategy import Strategy
from producers.publisher import KafkaPublisher, OutgoingRecord

logger = logging.getLogger(__name__)

SCHEDULES = ("", "monthly")
MONTHLY_TICK_TIME = time(21, 0, tzinfo=UTC)  # after the US close, so the month's data is in
STATE_VERSION = 1


# -- pure: ticks and requests ------------------------------------------------------------


def _require_aware(name: str, value: datetime) -> None:
    if value.tzinfo is None or value.utcoffset() is None:
        raise ValueError(f"{name}={value.isoformat()} has no time zone; pass an aware datetime")


def last_business_day(year: int, month: int) -> date:
    """The month's last Monday-to-Friday day (no holiday calendar)."""
    day = date(year, month, calendar.monthrange(year, month)[1])
    while day.weekday() >= 5:  # Saturday 5, Sunday 6
        day -= timedelta(days=1)
    return day


def _monthly_tick(year: int, month: int) -> datetime:
    return datetime.combine(last_business_day(year, month), MONTHLY_TICK_TIME)


def _previous_month(year: int, month: int) -> tuple[int, int]:
    return (year - 1, 12) if month == 1 else (year, month - 1)


def due_ticks(schedule: str, last: datetime | None, now: datetime) -> list[datetime]:
    """The schedule's ticks with ``last < tick <= now``, oldest first (UTC).

    ``"monthly"`` ticks at 21:00 UTC on each month's last business day; ``""`` never ticks.
    With ``last=None`` (a strategy never scheduled) only the latest tick at or before ``now``
    is due: a new scheduler brings the strategy up to date instead of replaying history.
    """
    if schedule not in SCHEDULES:
        raise ValueError(f"schedule {schedule!r} is unknown; expected one of {SCHEDULES}")
    _require_aware("now", now)
    if last is not None:
        _require_aware("last", last)
    if not schedule:
        return []
    year, month = now.astimezone(UTC).year, now.astimezone(UTC).month
    ticks: list[datetime] = []
    # walk back month by month from now's month until a tick is not after ``last``
    while True:
        tick = _monthly_tick(year, month)
        if tick <= now:
            if last is not None and tick <= last:
                break
            ticks.append(tick)
            if last is None:
                break
        year, month = _previous_month(year, month)
    return ticks[::-1]


def tick_event_id(strategy_id: str, tick: datetime) -> str:
    """The trigger id of one tick: the same strategy and tick always give the same id."""
    return f"schedule:{strategy_id}:{tick.astimezone(UTC).isoformat()}"


def schedule_requests(
    strategy: Strategy,
    ticks: Iterable[datetime],
    candidates: int | None = None,
    *,
    requested_at: datetime | None = None,
) -> list[GenerationRequest]:
    """One request per tick: as of the tick's date, using data released by the tick.

    ``candidates`` defaults to the strategy's ``generation.candidates``; ``requested_at``
    (when the request is made) defaults to now.
    """
    count = strategy.generation.candidates if candidates is None else candidates
    made_at = datetime.now(UTC) if requested_at is None else requested_at
    requests = []
    for tick in ticks:
        _require_aware("tick", tick)
        tick_utc = tick.astimezone(UTC)
        trigger_event_id = tick_event_id(strategy.id, tick_utc)
        requests.append(
            GenerationRequest(
                request_id=request_id_for(strategy.id, trigger_event_id),
                strategy_id=strategy.id,
                as_of=tick_utc.date(),
                decision_time=tick_utc,
                trigger_event_id=trigger_event_id,
                trigger="schedule",
                candidates=count,
                requested_at=made_at,
            )
        )
    return requests


# -- I/O: state file and the polling loop --------------------------------------------------


def load_state(path: Path) -> dict[str, datetime]:
    """Last published tick per strategy id; empty when the file does not exist yet."""
    try:
        data = json.loads(Path(path).read_text(encoding="utf-8"))
        if data.get("version") != STATE_VERSION:
            raise ValueError(f"version {data.get('version')!r}, expected {STATE_VERSION}")
        state = {sid: datetime.fromisoformat(text) for sid, text in data["last_ticks"].items()}
    except FileNotFoundError:
        return {}
    except (ValueError, KeyError, TypeError, AttributeError) as error:
        raise ValueError(
            f"scheduler state file {path} is unreadable ({error}); fix or delete it (deleting "
            "republishes each strategy's latest tick, which consumers deduplicate)"
        ) from error
    for sid, tick in state.items():
        _require_aware(f"{path}: last tick of {sid}", tick)
    return state


def save_state(path: Path, state: dict[str, datetime]) -> None:
    """Write the state atomically: a temp file in the same folder, fsync, then os.replace."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    ticks = {sid: tick.astimezone(UTC).isoformat() for sid, tick in sorted(state.items())}
    body = {"version": STATE_VERSION, "last_ticks": ticks}
    fd, temp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            json.dump(body, handle, indent=2)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(temp, path)
    except BaseException:
        Path(temp).unlink(missing_ok=True)
        raise


def publish_due(
    publisher: KafkaPublisher,
    strategies: Sequence[Strategy],
    *,
    state_path: Path,
    now: datetime,
) -> int:
    """One scheduler pass: publish every due request, then save the state; returns the count."""
    state = load_state(state_path)
    published = 0
    for strategy in strategies:
        if not strategy.active or not strategy.triggers.schedule:
            continue
        ticks = due_ticks(strategy.triggers.schedule, state.get(strategy.id), now)
        if not ticks:
            continue
        requests = schedule_requests(strategy, ticks, requested_at=now)
        publisher.publish_many(OutgoingRecord(r.topic, r.key(), r.to_json()) for r in requests)
        published += len(requests)
        state[strategy.id] = ticks[-1]
        # saved per strategy so a failure on the next one does not repeat this one's ticks
        save_state(state_path, state)
        logger.info("scheduled %d request(s) for %s up to %s", len(ticks), strategy.id, ticks[-1])
    return published


def run_scheduler(
    publisher: KafkaPublisher,
    strategies: Sequence[Strategy],
    *,
    state_path: Path,
    now: Callable[[], datetime] = lambda: datetime.now(UTC),
    stop_event: threading.Event,
    poll_s: float = 60.0,
) -> int:
    """Publish due requests every ``poll_s`` seconds until ``stop_event`` is set; returns
    the number published."""
    if poll_s <= 0:
        raise ValueError(f"poll_s must be positive, got {poll_s!r}")
    published = 0
    while not stop_event.is_set():
        published += publish_due(publisher, strategies, state_path=state_path, now=now())
        stop_event.wait(poll_s)
    return published
