"""Parquet panels through pyarrow (the fast path) give exactly what the pandas path gives."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from alphafactory.data import panel_files
from alphafactory.data.arrow_panel import read_parquet_columns
from alphafactory.data.errors import DuplicateRowError, UnsortedDatesError


def long_frame(seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    dates = pd.date_range("2021-01-01", periods=6, freq="D")
    assets = ["b", "a", "ZZ", "c10", "c9"]  # sorted as np.unique sorts str: ZZ a b c10 c9
    frame = pd.DataFrame([(d, a) for d in dates for a in assets], columns=["date", "asset"])
    frame = frame.drop(index=[3, 17]).reset_index(drop=True)  # missing pairs -> NaN
    frame["close"] = rng.lognormal(3, 0.1, len(frame))
    frame["volume"] = pd.array(rng.integers(0, 100, len(frame)), dtype="Int64")
    frame.loc[2, "volume"] = pd.NA  # a null integer -> NaN
    frame["flag"] = rng.random(len(frame)) < 0.5
    frame["cpi"] = frame["date"].dt.day.astype(float)  # a macro series
    return frame


def pandas_path(path, **options):
    """load_panel with the Arrow path switched off."""
    original = panel_files.read_parquet_columns
    panel_files.read_parquet_columns = lambda _path: None
    try:
        return panel_files.load_panel(path, **options)
    finally:
        panel_files.read_parquet_columns = original


def assert_same(fast, slow) -> None:
    assert fast.dates.dtype == slow.dates.dtype
    np.testing.assert_array_equal(fast.dates, slow.dates)
    assert fast.assets.dtype == slow.assets.dtype
    assert fast.assets.tolist() == slow.assets.tolist()
    assert list(fast.fields) == list(slow.fields) and list(fast.macro) == list(slow.macro)
    for name in fast.fields:
        np.testing.assert_array_equal(fast.fields[name], slow.fields[name], err_msg=name)
    for name in fast.macro:
        np.testing.assert_array_equal(fast.macro[name], slow.macro[name], err_msg=name)


@pytest.mark.parametrize(
    "variant", ["plain", "categorical_assets", "utc_dates", "date32", "index_kept"]
)
def test_arrow_path_equals_the_pandas_path(tmp_path, variant):
    frame = long_frame()
    if variant == "categorical_assets":
        frame["asset"] = frame["asset"].astype("category")
    if variant == "utc_dates":
        frame["date"] = frame["date"].dt.tz_localize("Europe/Paris")
    if variant == "date32":
        frame["date"] = frame["date"].dt.date  # pyarrow writes date32
    path = tmp_path / "p.parquet"
    frame.set_index("flag").to_parquet(path) if variant == "index_kept" else frame.to_parquet(path)
    assert read_parquet_columns(path) is not None  # the fast path really ran
    fast = panel_files.load_panel(path, macro_columns=["cpi"])
    assert_same(fast, pandas_path(path, macro_columns=["cpi"]))
    assert np.isnan(fast.fields["close"]).sum() == 2  # the dropped pairs


def test_text_dates_and_numbers_go_through_pandas(tmp_path):
    frame = long_frame().drop(columns=["cpi"])
    frame["date"] = frame["date"].dt.strftime("%Y-%m-%d")
    frame["close"] = frame["close"].astype(str)
    path = tmp_path / "text.parquet"
    frame.to_parquet(path)
    assert read_parquet_columns(path) is None
    assert_same(panel_files.load_panel(path), pandas_path(path))


@pytest.mark.parametrize("fault", ["unsorted", "duplicate"])
def test_arrow_path_errors_are_the_pandas_paths(tmp_path, fault):
    frame = long_frame().drop(columns=["cpi"])
    if fault == "unsorted":
        frame = frame.iloc[::-1]
    else:
        frame = pd.concat([frame, frame.iloc[[4]]]).sort_values("date", kind="stable")
    path = tmp_path / "bad.parquet"
    frame.to_parquet(path, index=False)
    error = UnsortedDatesError if fault == "unsorted" else DuplicateRowError
    with pytest.raises(error) as fast:
        panel_files.load_panel(path)
    with pytest.raises(error) as slow:
        pandas_path(path)
    assert str(fast.value) == str(slow.value)
