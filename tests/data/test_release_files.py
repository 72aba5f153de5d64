"""A user's release files (alphafactory.data.release_files): both layouts, vintages at
their New York release time, and every bad row refused by file, line, column and value."""

from __future__ import annotations

from datetime import UTC, datetime

import pandas as pd
import pytest

from alphafactory.data.release_files import ReleaseFileError, read_release_file
from alphafactory.data.releases import RELEASE_COLUMNS, point_in_time_macro


def write(tmp_path, text: str, name: str = "releases.csv"):
    path = tmp_path / name
    path.write_text(text)
    return path


def test_the_simple_layout_reads_as_a_release_table_in_release_order(tmp_path):
    path = write(
        tmp_path,
        "series_id,period,value,released_at\n"
        "cpi,2009-11-01,219.3,2009-12-15T08:30:00-05:00\n"
        "cpi,2009-10-01,218.0,2009-11-17T08:30:00-05:00\n",
    )
    table = read_release_file(path)
    assert list(table.columns) == RELEASE_COLUMNS
    assert table["value"].tolist() == [218.0, 219.3]
    assert table["released_at"].iloc[1] == pd.Timestamp("2009-12-15T13:30:00", tz="UTC")
    assert table["period"].iloc[1] == pd.Timestamp("2009-11-01")
    # the ids come from the rows: reading again gives the same ones
    assert read_release_file(path)["event_id"].tolist() == table["event_id"].tolist()
    assert table["event_id"].is_unique


def test_alfred_vintages_become_releases_at_the_new_york_clock_time(tmp_path):
    path = write(
        tmp_path,
        "series_id,date,value,realtime_start,realtime_end\n"
        "CPILFESL,2009-10-01,218.0,2009-11-18,2009-12-15\n"
        "CPILFESL,2009-10-01,218.2,2009-12-16,9999-12-31\n"  # a revision a month later
        "CPILFESL,2009-11-01,219.3,2009-12-16,9999-12-31\n"
        "CPILFESL,2009-12-01,.,2009-12-16,9999-12-31\n",  # ALFRED's missing value: skipped
    )
    table = read_release_file(path, release_time="08:30")
    assert len(table) == 3
    # 08:30 in New York is 13:30 UTC in winter
    assert set(table["released_at"]) == {
        pd.Timestamp("2009-11-18T13:30", tz="UTC"),
        pd.Timestamp("2009-12-16T13:30", tz="UTC"),
    }
    dates = pd.to_datetime(["2009-11-30", "2009-12-15", "2009-12-16"]).to_numpy()
    seen = point_in_time_macro(table, dates)["CPILFESL"]
    # before the revision the first vintage; from its day on, the newest period
    assert seen.tolist() == [218.0, 218.0, 219.3]
    revision = table[table["period"] == pd.Timestamp("2009-10-01")]
    assert revision["value"].tolist() == [218.0, 218.2]


@pytest.mark.parametrize(
    ("row", "column", "value"),
    [
        ("cpi,2009-11-01,abc,2009-12-15T08:30:00-05:00", "value", "abc"),
        ("cpi,2009-11-01,nan,2009-12-15T08:30:00-05:00", "value", "nan"),
        ("cpi,2009-13-01,1.0,2009-12-15T08:30:00-05:00", "period", "2009-13-01"),
        ("cpi,2009-11-01,1.0,2009-12-15T08:30:00", "released_at", "2009-12-15T08:30:00"),
        (",2009-11-01,1.0,2009-12-15T08:30:00-05:00", "series_id", ""),
    ],
)
def test_a_bad_row_is_named_by_file_line_column_and_value(tmp_path, row, column, value):
    path = write(
        tmp_path,
        "series_id,period,value,released_at\n"
        "cpi,2009-10-01,218.0,2009-11-17T08:30:00-05:00\n" + row + "\n",
    )
    with pytest.raises(ReleaseFileError) as raised:
        read_release_file(path)
    message = str(raised.value)
    assert str(path) in message and "line 3" in message
    assert f"column {column!r}" in message and repr(value) in message


def test_a_release_from_the_future_is_refused(tmp_path):
    path = write(
        tmp_path,
        "series_id,period,value,released_at\ncpi,2099-01-01,1.0,2099-02-01T08:30:00-05:00\n",
    )
    with pytest.raises(ReleaseFileError, match="line 2, column 'released_at'.*before now"):
        read_release_file(path, now=datetime(2026, 12, 1, tzinfo=UTC))


def test_two_values_for_one_release_are_refused_and_files_are_checked(tmp_path):
    path = write(
        tmp_path,
        "series_id,period,value,released_at\n"
        "cpi,2009-11-01,1.0,2009-12-15T08:30:00-05:00\n"
        "cpi,2009-11-01,2.0,2009-12-15T08:30:00-05:00\n",
    )
    with pytest.raises(ReleaseFileError, match="lines 2 and 3 give release"):
        read_release_file(path)
    with pytest.raises(ReleaseFileError, match="match no release layout"):
        read_release_file(write(tmp_path, "series,when,value\nx,2020-01-01,1\n", "odd.csv"))
    with pytest.raises(ReleaseFileError, match="no such file"):
        read_release_file(tmp_path / "missing.csv")
    with pytest.raises(ReleaseFileError, match="expected HH:MM"):
        read_release_file(path, release_time="8.30")


def test_a_parquet_file_reads_like_its_csv(tmp_path):
    csv = write(
        tmp_path,
        "series_id,date,value,realtime_start\nGDP,2009-07-01,100.5,2009-10-29\n",
    )
    parquet = tmp_path / "releases.parquet"
    pd.read_csv(csv, dtype=str).to_parquet(parquet)
    pd.testing.assert_frame_equal(read_release_file(parquet), read_release_file(csv))
