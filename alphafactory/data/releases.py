"""Macro release tables and their point-in-time alignment to panel dates.

A release table is a long DataFrame with the columns of the ``macro.releases`` event
(DESIGN.md contract 3) and of ``storage.macro``: ``series_id`` (str), ``period``
(datetime64, the first day of the observed period, FRED style), ``value`` (float),
``released_at`` (UTC, timezone-aware) and ``event_id`` (str, unique). A revision is a
second row for the same (series, period) with a later ``released_at``.

Visibility rule (``alphafactory.clock``): a panel date ``t`` stands for the end of that
trading day in New York, so the panel's macro value at ``t`` uses only rows with
``released_at <= visible_from(t)``. Among them it shows the latest period
released so far, at its latest vintage; a revision of an older period does not replace a
newer period's value.

Two options serve decisions (``alphafactory.decision``): ``offset`` moves every row's
cutoff by the same time (a decision's rows each see what a decision at the same distance
past their close would have seen), and ``stale_after`` makes a series missing once it has
had no release for that many times its cadence (the median spacing of its periods): a
series that stopped is not carried forward as if current.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from alphafactory.clock import visible_from

RELEASE_COLUMNS = ["series_id", "period", "value", "released_at", "event_id"]
STALE_AFTER_CADENCES = 3.0  # a series with no release for 3 periods is missing


def event_ids(series_id: pd.Series, period: pd.Series, vintage: np.ndarray) -> np.ndarray:
    """Deterministic idempotency keys: the same release always gets the same id."""
    text = series_id.astype(str) + ":" + period.dt.strftime("%Y-%m-%d") + ":v"
    return (text + pd.Series(vintage, index=series_id.index).astype(str)).to_numpy()


def point_in_time_macro(
    releases: pd.DataFrame,
    dates: np.ndarray,
    *,
    offset: pd.Timedelta | None = None,
    stale_after: float | None = None,
) -> dict[str, np.ndarray]:
    """Each series as a ``(T,)`` array: at ``t``, the newest period's latest visible vintage.

    Vectorised per series: order the rows by release time; a row changes what a reader sees
    only if its period is the newest released so far (a running maximum); the value at
    ``t`` is the last such row released at or before ``visible_from(t) + offset``; NaN
    before any, and (with ``stale_after``) NaN once that row is older than ``stale_after``
    times the series' cadence.
    """
    cutoffs = visible_from(dates).asi8
    if offset is not None:
        cutoffs = cutoffs + int(pd.Timedelta(offset).value)
    ordered = releases.sort_values(["series_id", "released_at", "period"], kind="stable")
    times = ordered["released_at"].dt.tz_convert("UTC").array.asi8
    periods = ordered["period"].to_numpy().astype(np.int64)
    values = ordered["value"].to_numpy(np.float64)
    ids = ordered["series_id"].to_numpy()
    starts = np.flatnonzero(np.r_[True, ids[1:] != ids[:-1]])
    ends = np.r_[starts[1:], len(ids)]
    out: dict[str, np.ndarray] = {}
    for lo, hi in zip(starts, ends, strict=True):
        p = periods[lo:hi]
        shown = p == np.maximum.accumulate(p)
        t, v = times[lo:hi][shown], values[lo:hi][shown]
        k = np.searchsorted(t, cutoffs, side="right") - 1
        seen = k >= 0
        if stale_after is not None:
            cadence = _cadence(p)
            seen &= ~(cutoffs - t[np.maximum(k, 0)] > stale_after * cadence)
        out[str(ids[lo])] = np.where(seen, v[np.maximum(k, 0)], np.nan)
    return out


def _cadence(periods: np.ndarray) -> float:
    """The median spacing of a series' distinct periods (ns); inf under two periods."""
    distinct = np.unique(periods)
    return float(np.median(np.diff(distinct))) if len(distinct) > 1 else np.inf
