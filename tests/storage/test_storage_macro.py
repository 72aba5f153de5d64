"""Point-in-time macro store: as-of reads with revisions, release-time precision, idempotency."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta, timezone

import pandas as pd
import pytest

from storage.errors import ConflictError, InvalidRecordError
from storage.macro import (
    MacroObservation,
    SeriesCoverage,
    last_periods,
    macro_as_of,
    macro_vintage_history,
    record_macro_observation,
    record_macro_observations,
    releases_until,
    series_coverage,
)

FIRST = datetime(2024, 2, 15, 13, 30, tzinfo=UTC)
REVISED = datetime(2024, 3, 14, 13, 30, tzinfo=UTC)


@pytest.fixture
def revised_series(app_conn, unique):
    """January's value: 1.0 released on FIRST, revised to 1.5 on REVISED."""
    series = unique("CPI")
    for value, released_at, event in [(1.0, FIRST, "v1"), (1.5, REVISED, "v2")]:
        assert record_macro_observation(
            app_conn,
            series_id=series,
            period=date(2024, 1, 1),
            value=value,
            released_at=released_at,
            event_id=unique(event),
        )
    return series


def value_as_of(conn, series: str, as_of: datetime) -> list[float]:
    return macro_as_of(conn, series_ids=[series], as_of=as_of)["value"].tolist()


def test_before_first_release_there_is_no_row_not_zero(app_conn, revised_series):
    frame = macro_as_of(app_conn, series_ids=[revised_series], as_of=FIRST - timedelta(seconds=1))
    assert frame.empty
    assert list(frame.columns) == ["series_id", "period", "value", "released_at", "event_id"]


def test_revision_is_visible_only_from_its_release_time(app_conn, revised_series):
    assert value_as_of(app_conn, revised_series, FIRST) == [1.0]
    assert value_as_of(app_conn, revised_series, REVISED - timedelta(microseconds=1)) == [1.0]
    assert value_as_of(app_conn, revised_series, REVISED) == [1.5]
    assert value_as_of(app_conn, revised_series, REVISED + timedelta(days=400)) == [1.5]


def test_as_of_honours_the_time_zone_of_the_query(app_conn, revised_series):
    new_york = timezone(timedelta(hours=-5))
    just_before = (FIRST - timedelta(seconds=1)).astimezone(new_york)
    assert value_as_of(app_conn, revised_series, just_before) == []
    assert value_as_of(app_conn, revised_series, FIRST.astimezone(new_york)) == [1.0]


def test_weekend_release_is_visible_from_its_timestamp_only(app_conn, unique):
    series = unique("PMI")
    saturday = datetime(2024, 6, 8, 10, 30, tzinfo=UTC)
    assert saturday.weekday() == 5
    record_macro_observation(
        app_conn,
        series_id=series,
        period=date(2024, 5, 1),
        value=52.0,
        released_at=saturday,
        event_id=unique("pmi-may"),
    )

    start_of_day = datetime(2024, 6, 8, tzinfo=UTC)
    period_date = datetime(2024, 5, 1, tzinfo=UTC)
    assert value_as_of(app_conn, series, period_date) == []
    assert value_as_of(app_conn, series, start_of_day) == []
    assert value_as_of(app_conn, series, saturday - timedelta(microseconds=1)) == []
    assert value_as_of(app_conn, series, saturday) == [52.0]


def test_duplicate_event_id_changes_nothing(app_conn, revised_series, unique):
    before = macro_vintage_history(app_conn, series_id=revised_series)
    again = record_macro_observation(
        app_conn,
        series_id=revised_series,
        period=date(2024, 1, 1),
        value=1.0,
        released_at=FIRST,
        event_id=unique("v1"),
    )
    assert again is False
    after = macro_vintage_history(app_conn, series_id=revised_series)
    assert after.equals(before)
    assert after["value"].tolist() == [1.0, 1.5]


def test_reused_event_id_with_other_content_is_a_conflict(app_conn, revised_series, unique):
    with pytest.raises(ConflictError, match=unique("v1")):
        record_macro_observation(
            app_conn,
            series_id=revised_series,
            period=date(2024, 1, 1),
            value=9.9,
            released_at=FIRST,
            event_id=unique("v1"),
        )


def test_as_of_returns_latest_vintage_per_period_across_series(app_conn, unique):
    cpi, gdp = unique("CPI"), unique("GDP")
    rows = [
        MacroObservation(cpi, date(2024, 1, 1), 1.0, FIRST, unique("c1")),
        MacroObservation(cpi, date(2024, 2, 1), 2.0, REVISED, unique("c2")),
        MacroObservation(gdp, date(2023, 10, 1), 0.5, FIRST, unique("g1")),
        MacroObservation(gdp, date(2023, 10, 1), 0.7, REVISED, unique("g2")),
    ]
    assert record_macro_observations(app_conn, observations=rows) == 4
    assert record_macro_observations(app_conn, observations=rows) == 0

    frame = macro_as_of(app_conn, series_ids=[cpi, gdp], as_of=FIRST + timedelta(days=1))
    assert list(zip(frame["series_id"], frame["value"], strict=True)) == [(cpi, 1.0), (gdp, 0.5)]
    later = macro_as_of(app_conn, series_ids=[cpi, gdp], as_of=REVISED)
    assert later["value"].tolist() == [1.0, 2.0, 0.7]
    assert str(later["released_at"].dt.tz) == "UTC"


@pytest.mark.parametrize(
    ("field", "bad"),
    [
        ("released_at", datetime(2024, 1, 1, 12, 0)),
        ("value", float("nan")),
        ("period", datetime(2024, 1, 1, 12, 0)),
        ("event_id", ""),
    ],
)
def test_unusable_values_are_rejected_naming_them(app_conn, unique, field, bad):
    record = {
        "series_id": unique("X"),
        "period": date(2024, 1, 1),
        "value": 1.0,
        "released_at": FIRST,
        "event_id": unique("x"),
    }
    record[field] = bad
    with pytest.raises(InvalidRecordError, match=field):
        record_macro_observation(app_conn, **record)


def test_as_of_must_be_a_timestamp_with_a_zone(app_conn, revised_series):
    with pytest.raises(InvalidRecordError, match="as_of"):
        macro_as_of(app_conn, series_ids=[revised_series], as_of=datetime(2024, 6, 1))


def test_releases_until_returns_every_vintage_released_by_then(app_conn, revised_series, unique):
    before = releases_until(
        app_conn, until=REVISED - timedelta(seconds=1), series_ids=[revised_series]
    )
    assert before["value"].tolist() == [1.0]
    both = releases_until(app_conn, until=REVISED, series_ids=[revised_series])
    assert both["value"].tolist() == [1.0, 1.5]  # release order, revisions included
    assert str(both["released_at"].dt.tz) == "UTC"
    assert last_periods(app_conn, series_ids=[revised_series, unique("none")]) == {
        revised_series: date(2024, 1, 1)
    }


def test_releases_since_keep_what_a_later_reader_sees(app_conn, unique):
    """``since`` drops only releases no reader from then on can see: older periods than
    the newest released by then (a late revision of one included); the point-in-time
    alignment of every date from ``since`` on is the same as from the whole history."""
    from alphafactory.data.releases import point_in_time_macro

    series = unique("IP")
    day = lambda d: datetime(2024, 1, 1, 12, tzinfo=UTC) + timedelta(days=d)  # noqa: E731
    releases = [  # (period, value, released_at)
        (date(2023, 10, 1), 1.0, day(0)),
        (date(2023, 11, 1), 2.0, day(30)),
        (date(2023, 11, 1), 2.5, day(45)),  # a revision of the newest period before since
        (date(2023, 10, 1), 1.5, day(70)),  # a late revision of an older period
        (date(2023, 12, 1), 3.0, day(80)),
        (date(2023, 12, 1), 3.5, day(100)),
    ]
    record_macro_observations(
        app_conn,
        observations=[
            MacroObservation(series, period, value, at, unique(f"r{k}"))
            for k, (period, value, at) in enumerate(releases)
        ],
    )
    since = day(60)
    full = releases_until(app_conn, until=day(200), series_ids=[series])
    bounded = releases_until(app_conn, until=day(200), series_ids=[series], since=since)
    assert full["value"].tolist() == [1.0, 2.0, 2.5, 1.5, 3.0, 3.5]
    assert bounded["value"].tolist() == [2.0, 2.5, 3.0, 3.5]
    assert bounded.dtypes.to_dict() == full.dtypes.to_dict()
    dates = pd.date_range("2024-03-01", "2024-06-30", freq="D").to_numpy()
    assert (
        point_in_time_macro(bounded, dates)[series].tolist()
        == point_in_time_macro(full, dates)[series].tolist()
    )
    nothing_by_then = releases_until(app_conn, until=day(200), series_ids=[series], since=day(-1))
    assert nothing_by_then["value"].tolist() == full["value"].tolist()


def _store_periods(conn, series: str, periods: list[date]) -> None:
    record_macro_observations(
        conn,
        observations=[
            MacroObservation(series, p, float(i), FIRST + timedelta(days=i), f"{series}:{i}")
            for i, p in enumerate(periods)
        ],
    )


def _spaced(start: date, count: int, **step) -> list[date]:
    return [
        (pd.Timestamp(start) + pd.DateOffset(**{k: v * i for k, v in step.items()})).date()
        for i in range(count)
    ]


@pytest.mark.parametrize(
    ("periods", "frequency"),
    [
        (list(pd.bdate_range("2024-01-01", periods=30).date), "D"),  # weekends are gaps
        (_spaced(date(2024, 1, 5), 10, weeks=1), "W"),
        (_spaced(date(2023, 1, 1), 14, months=1), "M"),
        (_spaced(date(2020, 1, 1), 9, months=3), "Q"),
        (_spaced(date(2010, 1, 1), 6, years=1), "A"),
    ],
)
def test_series_coverage_infers_the_frequency_from_the_median_spacing(
    app_conn, unique, periods, frequency
):
    series = unique("S")
    _store_periods(app_conn, series, periods)
    coverage = series_coverage(app_conn, series_ids=[series])[series]
    assert (coverage.frequency, coverage.periods) == (frequency, len(periods))
    assert coverage.last_period == max(periods)


def test_series_coverage_counts_revised_periods_once_and_keeps_the_order_asked(
    app_conn, unique, revised_series
):
    single, missing = unique("one"), unique("none")
    _store_periods(app_conn, single, [date(2024, 3, 1)])
    monthly = unique("M")
    _store_periods(app_conn, monthly, _spaced(date(2023, 1, 1), 6, months=1))
    # a revision of every period: same spacing, so still monthly, still six periods
    record_macro_observations(
        app_conn,
        observations=[
            MacroObservation(monthly, p, 0.0, REVISED, f"{monthly}:r{i}")
            for i, p in enumerate(_spaced(date(2023, 1, 1), 6, months=1))
        ],
    )

    coverage = series_coverage(app_conn, series_ids=[missing, monthly, single, revised_series])

    assert list(coverage) == [missing, monthly, single, revised_series]
    assert coverage[missing] == SeriesCoverage(missing, None, 0, None)
    shown = {s: (c.series_id, c.last_period, c.periods, c.frequency) for s, c in coverage.items()}
    assert shown[monthly] == (monthly, date(2023, 6, 1), 6, "M")
    assert shown[single] == (single, date(2024, 3, 1), 1, None)
    assert shown[revised_series] == (revised_series, date(2024, 1, 1), 1, None)
    # the median spacing in days, and when the newest period was last released
    assert coverage[monthly].cadence_days == 31.0  # the median of 31, 28, 31, 30, 31 days
    assert coverage[monthly].last_released_at == REVISED
    assert coverage[single].cadence_days is None and not coverage[single].stale(REVISED, 3)
