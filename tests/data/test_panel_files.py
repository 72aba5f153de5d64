"""Panel files: errors that name the offending value, round trips, dense NaN filling."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from alphafactory.data import DataError, load_panel, save_panel
from alphafactory.data.errors import (
    DateParseError,
    DuplicateRowError,
    EmptyFileError,
    InconsistentMacroError,
    MissingColumnError,
    NonNumericError,
    UnsortedDatesError,
    UnsupportedFormatError,
)
from alphafactory.data.synthetic import synthetic_market

GOOD = """date,asset,close,volume
2024-01-02,AAA,10,100
2024-01-02,BBB,20,200
2024-01-03,AAA,11,110
2024-01-03,BBB,19,190
2024-01-04,BBB,21,210
"""


def write(tmp_path: Path, text: str, name: str = "panel.csv") -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


def test_csv_loads_dense_panel_with_nan_for_missing_pairs(tmp_path):
    panel = load_panel(write(tmp_path, GOOD))
    assert panel.shape == (3, 2)
    assert list(panel.assets) == ["AAA", "BBB"]
    assert np.isnan(panel.fields["close"][2, 0])  # AAA has no row on 2024-01-04
    assert panel.fields["volume"][2, 1] == 210


def test_returns_derived_from_close_when_absent(tmp_path):
    panel = load_panel(write(tmp_path, GOOD))
    assert "returns" not in panel.fields
    np.testing.assert_allclose(panel.returns[1], [0.1, -0.05])
    assert np.isnan(panel.returns[0]).all()


@pytest.mark.parametrize(
    ("text", "error", "needles"),
    [
        ("asset,close\nAAA,1\n", MissingColumnError, ["'date'", "panel.csv"]),
        ("date,close\n2024-01-02,1\n", MissingColumnError, ["'asset'"]),
        ("date,asset,volume\n2024-01-02,AAA,1\n", MissingColumnError, ["'returns'", "'close'"]),
        (
            "date,asset,close\n2024-01-02,AAA,1\n2024-01-02,BBB,2\n2024-01-02,AAA,3\n",
            DuplicateRowError,
            ["(2024-01-02, 'AAA') at row 3"],
        ),
        (
            "date,asset,close\n2024-01-02,AAA,1\n2024-01-02,BBB,abc\n",
            NonNumericError,
            ["'close'", "row 2", "'abc'"],
        ),
        (
            "date,asset,close\n2024-01-02,AAA,1\n2024-13-45,BBB,2\n",
            DateParseError,
            ["row 2", "'2024-13-45'"],
        ),
        (
            "date,asset,close\n2024-01-03,AAA,1\n2024-01-02,AAA,2\n",
            UnsortedDatesError,
            ["row 2", "2024-01-02", "2024-01-03"],
        ),
        ("date,asset,close\n", EmptyFileError, ["no data rows"]),
        ("", EmptyFileError, ["empty"]),
        ("date,asset,close,adj close\n2024-01-02,A,1,1\n", DataError, ["'adj close'"]),
    ],
)
def test_bad_csv_errors_name_the_offending_value(tmp_path, text, error, needles):
    path = write(tmp_path, text)
    with pytest.raises(error) as info:
        load_panel(path)
    assert isinstance(info.value, DataError) and isinstance(info.value, ValueError)
    message = str(info.value)
    assert str(path) in message
    for needle in needles:
        assert needle in message


def test_parquet_errors_too(tmp_path):
    path = tmp_path / "bad.parquet"
    pd.DataFrame(
        {"date": ["2024-01-02", "x"], "asset": ["A", "B"], "close": [1.0, 2.0]}
    ).to_parquet(path)
    with pytest.raises(DateParseError, match="'x'"):
        load_panel(path)


def test_unsupported_suffix(tmp_path):
    with pytest.raises(UnsupportedFormatError, match=r"'\.xlsx'"):
        load_panel(write(tmp_path, GOOD, "panel.xlsx"))


def test_missing_file_is_a_data_error(tmp_path):
    with pytest.raises(DataError, match="no such panel file"):
        load_panel(tmp_path / "absent.csv")


def test_macro_columns_must_agree_across_assets(tmp_path):
    text = "date,asset,close,cpi\n2024-01-02,A,1,3.0\n2024-01-02,B,2,3.5\n"
    with pytest.raises(InconsistentMacroError, match="'cpi'.*2024-01-02"):
        load_panel(write(tmp_path, text), macro_columns=["cpi"])


def test_macro_and_text_group_columns(tmp_path):
    text = (
        "date,asset,close,cpi,sector\n2024-01-02,A,1,3.0,tech\n2024-01-02,B,2,3.0,energy\n"
        "2024-01-03,A,1,,tech\n2024-01-03,B,2,3.1,\n"
    )
    panel = load_panel(write(tmp_path, text), macro_columns=["cpi"], group_columns=["sector"])
    np.testing.assert_array_equal(panel.macro["cpi"], [3.0, 3.1])
    np.testing.assert_array_equal(panel.groups["sector"], [[1, 0], [1, -1]])


@pytest.mark.parametrize("suffix", [".csv", ".parquet"])
def test_round_trip_is_exact(tmp_path, suffix):
    market = synthetic_market(n_assets=7, n_dates=30, n_macro=3, seed=3, n_sectors=3)
    panel = market.panel
    fields = dict(panel.fields)
    fields["close"] = fields["close"].copy()
    fields["close"][4, 2] = np.nan  # a hole survives the trip
    holed = type(panel)(panel.dates, panel.assets, fields, panel.macro, panel.groups)
    path = save_panel(holed, tmp_path / f"panel{suffix}")
    back = load_panel(path, macro_columns=list(panel.macro), group_columns=["sector"])
    np.testing.assert_array_equal(back.dates, holed.dates)
    np.testing.assert_array_equal(back.assets, holed.assets)
    assert back.fields.keys() == holed.fields.keys()
    for name, values in holed.fields.items():
        np.testing.assert_array_equal(back.fields[name], values, err_msg=name)
    for name, values in holed.macro.items():
        np.testing.assert_array_equal(back.macro[name], values, err_msg=name)
    np.testing.assert_array_equal(back.groups["sector"], holed.groups["sector"])
