"""Market data files read as point-in-time observations: default availability at the end of
each date's New York day, an available_at column with vintages, and bad cells named."""

from __future__ import annotations

from datetime import UTC, datetime

import numpy as np
import pytest

from alphafactory.data.errors import AvailabilityError, DataError, DuplicateRowError
from alphafactory.data.market_files import read_market_file


def write(tmp_path, text: str, name: str = "market.csv"):
    path = tmp_path / name
    path.write_text(text)
    return path


def test_a_plain_panel_is_available_at_the_end_of_each_new_york_day(tmp_path):
    path = write(tmp_path, "date,asset,close\n2024-07-01,A,1.0\n2024-07-01,B,2.0\n")
    found = read_market_file(path)
    assert sorted(found.assets.tolist()) == ["A", "B"]
    # 23:59:59.999999 EDT (UTC-4) on 1 July
    assert set(found.available_at.tolist()) == {datetime(2024, 7, 2, 3, 59, 59, 999999)}
    assert found.count == 2


def test_vintages_keep_their_own_times_in_any_row_order(tmp_path):
    path = write(
        tmp_path,
        "date,asset,close,volume,available_at\n"
        "2024-01-02,A,1.5,,2024-01-05T10:00:00Z\n"
        "2024-01-02,A,1.0,100,2024-01-02T16:30:00-05:00\n",
    )
    found = read_market_file(path, now=datetime(2025, 1, 1, tzinfo=UTC))
    assert found.available_at.tolist() == [
        datetime(2024, 1, 5, 10, 0),
        datetime(2024, 1, 2, 21, 30),
    ]
    np.testing.assert_array_equal(found.fields["close"], [1.5, 1.0])
    assert np.isnan(found.fields["volume"][0]) and found.fields["volume"][1] == 100
    assert "available_at" not in found.fields


@pytest.mark.parametrize(
    ("cell", "expected"),
    [
        ("2024-01-02 16:30", "with its UTC offset"),
        ("soon", "with its UTC offset"),
        ("2024-01-01T20:00:00-05:00", "on or after 2024-01-02 in New York"),
        ("2031-01-01T00:00:00Z", "a time before now"),
    ],
)
def test_a_bad_available_at_is_named_with_row_and_value(tmp_path, cell, expected):
    path = write(tmp_path, f"date,asset,close,available_at\n2024-01-02,A,1.0,{cell}\n")
    with pytest.raises(AvailabilityError) as error:
        read_market_file(path, now=datetime(2030, 1, 1, tzinfo=UTC))
    message = str(error.value)
    assert f"{path}: row 1 (first data row = 1), column 'available_at': '{cell}'" in message
    assert expected in message


def test_the_same_vintage_twice_is_refused(tmp_path):
    path = write(
        tmp_path,
        "date,asset,close,available_at\n"
        "2024-01-02,A,1.0,2024-01-02T16:30:00-05:00\n"
        "2024-01-02,A,1.1,2024-01-02T21:30:00Z\n",
    )
    with pytest.raises(DuplicateRowError, match=r"row 2 .* repeats \(2024-01-02, 'A'"):
        read_market_file(path)


def test_an_empty_asset_is_refused(tmp_path):
    path = write(tmp_path, "date,asset,close,available_at\n2024-01-02,,1.0,2024-01-02T22:00Z\n")
    with pytest.raises(DataError, match=r"row 1 .*column 'asset'"):
        read_market_file(path)


@pytest.mark.parametrize("availability", ["", ",2024-01-02T21:00:00Z"])
def test_group_columns_become_stored_group_codes(tmp_path, availability):
    header = "date,asset,close,group:sector" + (",available_at" if availability else "")
    path = write(
        tmp_path,
        f"{header}\n2024-01-02,A,1.0,tech{availability}\n2024-01-02,B,2.0,energy{availability}\n"
        f"2024-01-02,C,3.0,{availability}\n",
    )
    found = read_market_file(path, now=datetime(2025, 1, 1, tzinfo=UTC))
    codes = dict(zip(found.assets.tolist(), found.fields["group:sector"].tolist(), strict=True))
    assert codes["A"] == 1.0 and codes["B"] == 0.0  # text labels coded in sorted order
    assert np.isnan(codes["C"])  # no label: no code stored
    bad = write(tmp_path, "date,asset,close,group:2x\n2024-01-02,A,1.0,1\n", name="bad.csv")
    with pytest.raises(DataError, match=r"column names \['group:2x'\] cannot be formula operands"):
        read_market_file(bad)
