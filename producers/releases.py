"""Release feeds: publish ``macro.releases`` events one at a time or replay a history of them.

Every feed publishes :class:`alphafactory.events.MacroRelease` (DESIGN.md contract 3): value
``release.to_json()``, key the series id, so one series' releases stay in order on one
partition and ``event_id`` lets consumers drop duplicates.

A history of releases (with market data) is replayed on one clock by ``producers.replay``.
"""

from __future__ import annotations

import logging
from datetime import date, datetime

import pandas as pd
from kafka.producer.future import RecordMetadata
from pydantic import ValidationError

from alphafactory.data.releases import RELEASE_COLUMNS
from alphafactory.events import MacroRelease
from messaging.publisher import KafkaPublisher

logger = logging.getLogger(__name__)


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
