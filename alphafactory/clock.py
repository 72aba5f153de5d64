"""The decision clock: when a dated observation becomes visible, and which date a decision
is for. Every point-in-time rule of the system reads its times from here.

US macro releases and market data are dated in New York:

* a panel date ``t`` (market data, a close) stands for the end of that trading day in New
  York, so it is visible from ``visible_from(t)``: 23:59:59.999999 New York time on ``t``,
  as a UTC instant (daylight saving included);
* a decision made at an instant is for that instant's New York calendar date
  (``decision_date``): a release at 08:30 New York time on 15 May decides as of 15 May;
* scheduled decisions tick at 21:00 UTC (after the US close in both summer and winter
  time) on each month's last business day (``month_end_tick``).
"""

from __future__ import annotations

import calendar
from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

import numpy as np
import pandas as pd

MARKET_ZONE = "America/New_York"
NEW_YORK = ZoneInfo(MARKET_ZONE)
MONTH_END_TICK_TIME = time(21, 0, tzinfo=UTC)


def visible_from(dates: np.ndarray | pd.DatetimeIndex) -> pd.DatetimeIndex:
    """The UTC instant from which each panel date's data is visible: the end of its New
    York day. Releases made up to that instant are visible at that date too."""
    days = pd.DatetimeIndex(dates).normalize() + pd.Timedelta(days=1)
    return days.tz_localize(MARKET_ZONE).tz_convert("UTC") - pd.Timedelta(microseconds=1)


def local_times(days: pd.DatetimeIndex | np.ndarray, clock: str) -> pd.DatetimeIndex:
    """New York wall-clock ``clock`` ('08:30') on each day, as UTC (DST-aware): when a
    release scheduled for that local time happens."""
    local = pd.DatetimeIndex(days).normalize() + pd.Timedelta(clock + ":00")
    return local.tz_localize(MARKET_ZONE).tz_convert("UTC")


def _require_aware(instant: datetime | pd.Timestamp) -> None:
    if instant.tzinfo is None or instant.utcoffset() is None:
        raise ValueError(f"{instant!r} has no time zone; a decision instant must carry one")


def decision_date(instant: datetime | pd.Timestamp) -> date:
    """The New York calendar date a decision made at ``instant`` is for."""
    _require_aware(instant)
    return instant.astimezone(NEW_YORK).date()


def decision_day(instant: datetime | pd.Timestamp) -> np.datetime64:
    """``decision_date`` as a panel date (naive midnight, datetime64[ns])."""
    return np.datetime64(decision_date(instant), "ns")


def known_dates(dates: np.ndarray | pd.DatetimeIndex, instant: datetime | pd.Timestamp):
    """Boolean mask of the panel dates whose data was visible at ``instant``."""
    _require_aware(instant)
    return np.asarray(visible_from(dates) <= pd.Timestamp(instant))


def last_business_day(year: int, month: int) -> date:
    """The month's last Monday-to-Friday day (no holiday calendar)."""
    day = date(year, month, calendar.monthrange(year, month)[1])
    while day.weekday() >= 5:  # Saturday 5, Sunday 6
        day -= timedelta(days=1)
    return day


def month_end_tick(year: int, month: int) -> datetime:
    """When a monthly schedule decides for that month (UTC)."""
    return datetime.combine(last_business_day(year, month), MONTH_END_TICK_TIME)
