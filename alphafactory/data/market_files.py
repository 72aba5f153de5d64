"""A user's market data file as point-in-time observations (DESIGN.md contract 7).

A panel file (contract 2) whose values become available at the end of each date's New
York day, or, with an ``available_at`` column, at the time that column gives (an ISO-8601
time with its UTC offset, or a zoned Parquet timestamp). With ``available_at`` a file may
hold several vintages of one (date, asset): each row is the value as known from its
``available_at``, the later one a revision, and rows may come in any order. A column
``group:<name>`` holds group labels (integer codes, or text labels coded in sorted order):
the group ``<name>`` a formula and a strategy's universe can use. Every row is
checked; the first bad one raises a :class:`DataError` naming the file, the row, the column
and the value, and nothing of the file is returned.
"""

from __future__ import annotations

from datetime import datetime
from pathlib import Path

import numpy as np
import pandas as pd

from alphafactory.clock import MARKET_ZONE
from alphafactory.data import panel_files
from alphafactory.data.errors import AvailabilityError, DataError, DuplicateRowError
from alphafactory.observations import GROUP_PREFIX, MarketObservations
from alphafactory.panel import Panel

AVAILABLE_AT = "available_at"
_ZONED = r"(?:Z|[+-]\d\d(?::?\d\d)?)$"  # an ISO-8601 time's UTC offset


def read_market_file(path: str | Path, *, now: datetime | None = None) -> MarketObservations:
    """The observations of the panel file ``path``; with ``now``, a row available after
    it is refused (a mistyped year would otherwise hide the row for years)."""
    path = Path(path)
    panel_files._check_file(path)
    names = _column_names(path)
    groups = [c for c in names if c.startswith(GROUP_PREFIX)]
    if AVAILABLE_AT not in names:
        panel = panel_files.load_panel(path, group_columns=groups)
        codes = {name.removeprefix(GROUP_PREFIX): v for name, v in panel.groups.items()}
        return MarketObservations.from_panel(
            Panel(panel.dates, panel.assets, panel.fields, panel.macro, codes)
        )
    frame = _read(path)
    names = [str(c) for c in frame.columns]
    panel_files._check_columns(path, names, groups)
    dates = panel_files._parse_dates(path, frame["date"])
    assets = _assets(path, frame["asset"])
    available = _available(path, frame[AVAILABLE_AT], dates, now)
    _refuse_repeats(path, dates, assets, available)
    fields = {
        name: _group_codes(frame[name])
        if name in groups
        else panel_files._numeric(path, frame[name])
        for name in names
        if name not in ("date", "asset", AVAILABLE_AT)
    }
    asset_names, asset_index = np.unique(assets, return_inverse=True)
    return MarketObservations(
        asset_names=asset_names,
        asset_index=asset_index,
        dates=dates.astype("datetime64[D]"),
        available_at=available.tz_localize(None).to_numpy("datetime64[us]"),
        fields=fields,
    )


def _group_codes(column: pd.Series) -> np.ndarray:
    """A ``group:<name>`` column's integer codes as stored values; no code: NaN."""
    codes = panel_files._codes(column)
    return np.where(codes >= 0, codes, np.nan).astype(np.float64)


def _column_names(path: Path) -> list[str]:
    if path.suffix.lower() in panel_files.PARQUET_SUFFIXES:
        import pyarrow.parquet as pq

        return list(pq.read_schema(path).names)
    return [str(c).strip() for c in pd.read_csv(path, nrows=0).columns]


def _read(path: Path) -> pd.DataFrame:
    if path.suffix.lower() in panel_files.PARQUET_SUFFIXES:
        frame = pd.read_parquet(path)
    else:
        text = {"date": str, "asset": str, AVAILABLE_AT: str}
        frame = pd.read_csv(path, dtype=text, skipinitialspace=True, float_precision="round_trip")
    if frame.empty:
        raise panel_files.EmptyFileError(f"{path}: no data rows (columns: {list(frame.columns)})")
    return frame


def _bad(path: Path, row: int, column: str, value: object, expected: str) -> DataError:
    return AvailabilityError(
        f"{path}: row {row + 1} (first data row = 1), column {column!r}: {value!r}; "
        f"expected {expected}"
    )


def _assets(path: Path, column: pd.Series) -> np.ndarray:
    text = column.astype(str).str.strip()
    empty = (text == "").to_numpy() | column.isna().to_numpy()
    if empty.any():
        k = int(np.argmax(empty))
        raise DataError(
            f"{path}: row {k + 1} (first data row = 1), column 'asset': {column.iloc[k]!r}; "
            "expected a non-empty asset name"
        )
    return text.to_numpy(str)


def _available(
    path: Path, column: pd.Series, dates: np.ndarray, now: datetime | None
) -> pd.DatetimeIndex:
    """UTC instants of the ``available_at`` column, each on or after its date began in
    New York and, with ``now``, not after it."""
    expected = "an ISO-8601 time with its UTC offset, e.g. 2024-01-31T16:15:00-05:00"
    if pd.api.types.is_datetime64_any_dtype(column):
        if getattr(column.dt, "tz", None) is None:
            raise _bad(path, 0, AVAILABLE_AT, str(column.iloc[0]), "a zoned timestamp: " + expected)
        parsed = column.dt.tz_convert("UTC")
    else:
        text = column.astype(str).str.strip()
        parsed = pd.to_datetime(text, utc=True, errors="coerce", format="ISO8601")
        bad = parsed.isna().to_numpy() | ~text.str.contains(_ZONED, regex=True).to_numpy()
        if bad.any():
            k = int(np.argmax(bad))
            raise _bad(path, k, AVAILABLE_AT, column.iloc[k], expected)
    available = pd.DatetimeIndex(parsed)
    day_start = pd.DatetimeIndex(dates).tz_localize(MARKET_ZONE).tz_convert("UTC")
    early = np.asarray(available < day_start)
    if early.any():
        k = int(np.argmax(early))
        day = panel_files._day(dates[k])
        raise _bad(path, k, AVAILABLE_AT, column.iloc[k], f"a time on or after {day} in New York")
    if now is not None:
        late = np.asarray(available > pd.Timestamp(now).tz_convert("UTC"))
        if late.any():
            k = int(np.argmax(late))
            raise _bad(
                path, k, AVAILABLE_AT, column.iloc[k], f"a time before now ({now.isoformat()})"
            )
    return available


def _refuse_repeats(path: Path, dates, assets, available: pd.DatetimeIndex) -> None:
    keys = pd.DataFrame({"date": dates, "asset": assets, "at": available})
    repeated = np.flatnonzero(keys.duplicated(keep="first").to_numpy())
    if len(repeated):
        k = int(repeated[0])
        raise DuplicateRowError(
            f"{path}: row {k + 1} (first data row = 1) repeats ({panel_files._day(dates[k])}, "
            f"{assets[k]!r}, available_at {available[k].isoformat()}); expected one row per "
            "date, asset and available_at"
        )
