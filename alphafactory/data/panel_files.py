"""Panel files (DESIGN.md contract 2): long-format Parquet or CSV <-> dense :class:`Panel`.

One row per (date, asset): columns ``date``, ``asset``, then numeric fields. Returns come
from a ``returns`` column or, if absent, from ``close`` (the :class:`Panel` derives them).
Rows must be in ascending date order: an unsorted file is more often a concatenation bug
than an intent, so it is rejected rather than silently re-sorted. Missing (date, asset)
combinations become NaN. Columns named in ``macro_columns`` are per-date series (the same
value for every asset on a date); columns named in ``group_columns`` are group labels
(numbers or text) turned into integer codes, -1 where missing.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from alphafactory.data.arrow_panel import read_parquet_columns
from alphafactory.data.errors import (
    DataError,
    DateParseError,
    DuplicateRowError,
    EmptyFileError,
    InconsistentMacroError,
    MissingColumnError,
    NonNumericError,
    UnsortedDatesError,
    UnsupportedFormatError,
)
from alphafactory.panel import Panel

if TYPE_CHECKING:
    import pandas as pd

PARQUET_SUFFIXES = (".parquet", ".pq")
CSV_SUFFIXES = (".csv",)
_SHOW = 5  # how many offending rows an error message lists


def load_panel(
    path: str | Path,
    *,
    macro_columns: Sequence[str] | None = None,
    group_columns: Sequence[str] | None = None,
) -> Panel:
    """Read a long-format panel file into a dense dates x assets :class:`Panel`.

    Parquet files are read with pyarrow straight into numpy (:mod:`.arrow_panel`); CSV,
    group columns and anything Arrow's path leaves out go through pandas."""
    path = Path(path)
    macro_columns, group_columns = list(macro_columns or ()), list(group_columns or ())
    _check_file(path)
    if path.suffix.lower() in PARQUET_SUFFIXES and not group_columns:
        columns = read_parquet_columns(path)
        if columns is not None:
            return _from_columns(path, columns, macro_columns)
    frame = _read(path)
    _check_columns(path, [str(c) for c in frame.columns], macro_columns + group_columns)
    dates = _parse_dates(path, frame["date"])
    _check_sorted(path, dates)
    assets = frame["asset"].astype(str).to_numpy()
    _check_duplicates(path, dates, assets)
    special = {"date", "asset", *macro_columns, *group_columns}
    field_names = [c for c in frame.columns if c not in special]
    numeric = {c: _numeric(path, frame[c]) for c in field_names + macro_columns}

    unique_dates, row = np.unique(dates, return_inverse=True)
    unique_assets, col = np.unique(assets, return_inverse=True)
    shape = (len(unique_dates), len(unique_assets))
    fields = {c: _scatter(numeric[c], row, col, shape, np.nan) for c in field_names}
    groups = {c: _scatter(_codes(frame[c]), row, col, shape, -1) for c in group_columns}
    macro = {c: _per_date(path, c, numeric[c], row, unique_dates) for c in macro_columns}
    return _panel(path, unique_dates, unique_assets, fields, macro, groups)


def _from_columns(path: Path, columns, macro_columns: list[str]) -> Panel:
    """The panel from Arrow's arrays, with the pandas path's checks and messages."""
    _check_columns(path, columns.names, macro_columns)
    _check_sorted(path, columns.dates)
    # dates ascend, so each date's rows are one run: no sort needed to index them
    starts = np.empty(len(columns.dates), dtype=bool)
    starts[0] = True
    np.not_equal(columns.dates[1:], columns.dates[:-1], out=starts[1:])
    unique_dates = columns.dates[starts]
    shape = (len(unique_dates), len(columns.assets))
    index = np.int32 if shape[0] * shape[1] < 2**31 else np.int64
    row = np.cumsum(starts, dtype=index) - 1
    flat = row * index(shape[1]) + columns.codes
    # rows in (date, asset) order: every (date, asset) once, and no index needed to place them
    ordered = bool(np.all(flat[1:] > flat[:-1]))
    if not ordered and np.bincount(flat, minlength=flat.size).max(initial=0) > 1:
        _check_duplicates(path, columns.dates, columns.assets[columns.codes])
    dense = ordered and len(flat) == shape[0] * shape[1]
    fields = {
        name: _place(columns.numeric(name), None if dense else flat, shape)
        for name in columns.names
        if name not in ("date", "asset", *macro_columns)
    }
    macro = {
        c: _per_date(path, c, np.concatenate(columns.numeric(c)), row, unique_dates)
        for c in macro_columns
    }
    return _panel(path, unique_dates, columns.assets, fields, macro, {})


def _place(chunks: list[np.ndarray], flat: np.ndarray | None, shape) -> np.ndarray:
    """A (T, N) field from a column's chunks: copied in order (``flat`` None: the rows are
    every (date, asset) in order) or scattered to ``flat``, NaN where no row."""
    if flat is None:
        return np.concatenate(chunks).reshape(shape)  # a writable copy, also of one chunk
    out = np.full(shape[0] * shape[1], np.nan)
    start = 0
    for chunk in chunks:
        out[flat[start : start + len(chunk)]] = chunk
        start += len(chunk)
    return out.reshape(shape)


def _panel(path: Path, dates, assets, fields, macro, groups) -> Panel:
    try:
        return Panel(dates=dates, assets=assets, fields=fields, macro=macro, groups=groups)
    except ValueError as e:
        raise DataError(f"{path}: {e}") from e


def save_panel(panel: Panel, path: str | Path) -> Path:
    """Write ``panel`` in the long format :func:`load_panel` reads (every date x asset row).

    Every combination is written, NaN included, so that a date or asset that is entirely
    missing survives the round trip. Macro series are repeated on each asset's row; read
    them back with ``macro_columns``, and groups with ``group_columns``.
    """
    path = Path(path)
    t, n = panel.shape
    columns: dict[str, np.ndarray] = {
        "date": np.repeat(panel.dates.astype("datetime64[ns]"), n),
        "asset": np.tile(panel.assets.astype(str), t),
    }
    columns.update({k: v.reshape(-1).astype(np.float64) for k, v in panel.fields.items()})
    columns.update({k: np.repeat(v.astype(np.float64), n) for k, v in panel.macro.items()})
    columns.update({k: v.reshape(-1).astype(np.int64) for k, v in panel.groups.items()})
    import pandas as pd

    frame = pd.DataFrame(columns)
    suffix = path.suffix.lower()
    if suffix in PARQUET_SUFFIXES:
        frame.to_parquet(path, index=False)
    elif suffix in CSV_SUFFIXES:
        # repr-precision floats so the CSV round trip is exact
        frame.to_csv(path, index=False, float_format="%.17g", date_format="%Y-%m-%d")
    else:
        raise _unsupported(path)
    return path


def _unsupported(path: Path) -> UnsupportedFormatError:
    return UnsupportedFormatError(
        f"{path}: unsupported panel file suffix {path.suffix!r}; "
        f"expected one of {PARQUET_SUFFIXES + CSV_SUFFIXES}"
    )


def _check_file(path: Path) -> None:
    if path.suffix.lower() not in PARQUET_SUFFIXES + CSV_SUFFIXES:
        raise _unsupported(path)
    if not path.is_file():
        raise DataError(f"{path}: no such panel file")
    if path.stat().st_size == 0:
        raise EmptyFileError(f"{path}: the file is empty; expected a header and rows")


def _read(path: Path) -> pd.DataFrame:
    import pandas as pd

    if path.suffix.lower() in PARQUET_SUFFIXES:
        frame = pd.read_parquet(path)
    else:
        # dates and assets stay text here so parsing errors can quote the exact cell
        frame = pd.read_csv(
            path,
            dtype={"date": str, "asset": str},
            skipinitialspace=True,
            float_precision="round_trip",
        )
    if frame.empty:
        raise EmptyFileError(f"{path}: no data rows (columns: {list(frame.columns)})")
    return frame


def _check_columns(path: Path, columns: list[str], declared: list[str]) -> None:
    for required in ("date", "asset"):
        if required not in columns:
            raise MissingColumnError(
                f"{path}: missing required column {required!r}; found columns {columns}"
            )
    absent = [c for c in declared if c not in columns]
    if absent:
        raise MissingColumnError(f"{path}: declared macro/group columns {absent} not in {columns}")
    if "returns" not in columns and "close" not in columns:
        raise MissingColumnError(
            f"{path}: needs a 'returns' column or a 'close' column to derive returns from; "
            f"found columns {columns}"
        )
    # a declared group column may carry the store's ``group:`` prefix (``group:sector``)
    bad = [
        c
        for c in columns
        if c not in ("date", "asset")
        and not (c.removeprefix("group:") if c in declared else c).isidentifier()
    ]
    if bad:
        raise DataError(
            f"{path}: column names {bad} cannot be formula operands; "
            "use letters, digits and underscores, not starting with a digit"
        )


def _parse_dates(path: Path, raw: pd.Series) -> np.ndarray:
    import pandas as pd

    parsed = pd.to_datetime(raw, errors="coerce", format="mixed")
    bad = np.flatnonzero(parsed.isna().to_numpy())
    if len(bad):
        i = int(bad[0])
        raise DateParseError(
            f"{path}: row {i + 1} (first data row = 1): cannot parse date {raw.iloc[i]!r}; "
            f"expected a date such as '2024-01-31' ({len(bad)} bad date(s) in all)"
        )
    if getattr(parsed.dt, "tz", None) is not None:
        # the panel's dates are naive; an aware column is read as the UTC calendar date
        parsed = parsed.dt.tz_convert("UTC").dt.tz_localize(None)
    return parsed.to_numpy(dtype="datetime64[ns]")


def _check_sorted(path: Path, dates: np.ndarray) -> None:
    down = np.flatnonzero(dates[1:] < dates[:-1])
    if len(down):
        i = int(down[0]) + 1
        raise UnsortedDatesError(
            f"{path}: rows must be in ascending date order; row {i + 1} has date "
            f"{_day(dates[i])} after row {i} with {_day(dates[i - 1])}. "
            "Sort the file by date (then asset) before loading"
        )


def _check_duplicates(path: Path, dates: np.ndarray, assets: np.ndarray) -> None:
    import pandas as pd

    keys = pd.DataFrame({"date": dates, "asset": assets})
    dup = keys.duplicated(keep="first").to_numpy()
    if dup.any():
        rows = np.flatnonzero(dup)
        shown = ", ".join(f"({_day(dates[i])}, {assets[i]!r}) at row {i + 1}" for i in rows[:_SHOW])
        raise DuplicateRowError(
            f"{path}: {len(rows)} duplicate (date, asset) row(s); expected one row per pair. "
            f"First: {shown}"
        )


def _numeric(path: Path, column: pd.Series) -> np.ndarray:
    import pandas as pd

    if pd.api.types.is_numeric_dtype(column) and not pd.api.types.is_complex_dtype(column):
        return column.to_numpy(dtype=np.float64, na_value=np.nan)
    values = pd.to_numeric(column, errors="coerce")
    bad = np.flatnonzero(values.isna().to_numpy() & column.notna().to_numpy())
    if len(bad):
        i = int(bad[0])
        raise NonNumericError(
            f"{path}: column {column.name!r} must be numeric; row {i + 1} holds "
            f"{column.iloc[i]!r} ({len(bad)} non-numeric value(s) in all)"
        )
    return values.to_numpy(dtype=np.float64, na_value=np.nan)


def _codes(column: pd.Series) -> np.ndarray:
    import pandas as pd

    if pd.api.types.is_numeric_dtype(column):
        # numeric labels are taken as the codes themselves, so save/load keeps them
        values = column.to_numpy(dtype=np.float64, na_value=np.nan)
        return np.where(np.isnan(values), -1, values).astype(np.int64)
    codes, _ = pd.factorize(column, sort=True)  # text labels, sorted; missing -> -1
    return codes.astype(np.int64)


def _scatter(values, row, col, shape, fill) -> np.ndarray:
    out = np.full(shape, fill, dtype=np.asarray(values).dtype)
    out[row, col] = values
    return out


def _per_date(path: Path, name: str, values: np.ndarray, row: np.ndarray, dates) -> np.ndarray:
    import pandas as pd

    frame = pd.DataFrame({"row": row, "v": values})
    stats = frame.groupby("row")["v"].agg(["min", "max", "first"])
    differ = np.flatnonzero((stats["max"] > stats["min"]).to_numpy())
    if len(differ):
        i = int(stats.index[differ[0]])
        raise InconsistentMacroError(
            f"{path}: macro column {name!r} differs between assets on {_day(dates[i])} "
            f"(from {stats['min'].iloc[differ[0]]!r} to {stats['max'].iloc[differ[0]]!r}); "
            "a macro series must have one value per date"
        )
    out = np.full(len(dates), np.nan)
    out[stats.index.to_numpy()] = stats["first"].to_numpy()
    return out


def _day(value: np.datetime64) -> str:
    return str(np.datetime_as_string(value, unit="D"))
