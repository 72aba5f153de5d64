"""A user's macro releases from a CSV or Parquet file, as a release table
(``alphafactory.data.releases.RELEASE_COLUMNS``) ready for the point-in-time store.

Two layouts, told apart by their columns:

* **simple**: ``series_id, period, value, released_at`` (and optionally ``event_id``).
  ``released_at`` is an ISO-8601 time with its offset (``2009-12-15T08:30:00-05:00``);
  ``period`` the first day of the observed period.
* **alfred**: ``series_id, date, value, realtime_start`` (ALFRED's vintage download,
  ``realtime_end`` and other columns ignored). Each row is a vintage: the value of the
  observation dated ``date`` as first published on ``realtime_start``; it becomes a
  release at ``realtime_start`` plus the series' clock time in New York (8:30 by
  default, when the BLS and BEA publish), so a revision history replays as it happened.
  ALFRED writes ``.`` for an observation a vintage did not have: such rows are skipped.

Every row is checked; the first bad one raises :class:`ReleaseFileError` naming the file,
its line, the column and the value, and nothing of the file is returned. Event ids are
derived from the row (series, period, release time), so loading a file twice gives the
same ids and stores nothing new the second time.
"""

from __future__ import annotations

from datetime import datetime
from pathlib import Path

import numpy as np
import pandas as pd

from alphafactory.clock import local_times
from alphafactory.data.errors import DataError
from alphafactory.data.releases import RELEASE_COLUMNS

SIMPLE = ("series_id", "period", "value", "released_at")
ALFRED = ("series_id", "date", "value", "realtime_start")
LAYOUTS = {"simple": SIMPLE, "alfred": ALFRED}
DEFAULT_RELEASE_TIME = "08:30"  # New York, when the BLS and BEA publish
ALFRED_MISSING = "."


class ReleaseFileError(DataError):
    """A release file that cannot be loaded; the message names file, line, column, value."""


def read_release_file(
    path: str | Path,
    *,
    release_time: str = DEFAULT_RELEASE_TIME,
    now: datetime | None = None,
) -> pd.DataFrame:
    """The releases of ``path`` in either layout, sorted by release time. With ``now``,
    a release dated after it is refused (a mistyped year would otherwise become the
    latest value for years)."""
    path = Path(path)
    _check_clock(release_time)
    raw = _read(path)
    layout = _layout(path, raw.columns)
    rows = raw[list(LAYOUTS[layout]) + (["event_id"] if "event_id" in raw.columns else [])]
    if layout == "alfred":
        rows = rows[rows["value"].astype(str).str.strip() != ALFRED_MISSING]
    line = rows.index.to_numpy() + 2  # the header is line 1
    series = _series_ids(path, rows["series_id"], line)
    period = _dates(path, rows, "period" if layout == "simple" else "date", line)
    value = _values(path, rows["value"], line)
    if layout == "simple":
        released_at = _instants(path, rows["released_at"], line)
    else:
        released_at = _vintage_instants(path, rows["realtime_start"], line, release_time)
    table = pd.DataFrame(
        {"series_id": series, "period": period, "value": value, "released_at": released_at}
    )
    if now is not None:
        _refuse_the_future(path, table, line, now)
    table["event_id"] = (
        rows["event_id"].astype(str).to_numpy()
        if "event_id" in rows.columns
        else _derived_ids(table)
    )
    table["line"] = line
    _refuse_conflicts(path, table)
    ordered = table.sort_values(["released_at", "series_id", "period"], kind="stable")
    return ordered[RELEASE_COLUMNS].reset_index(drop=True)


def _read(path: Path) -> pd.DataFrame:
    if not path.is_file():
        raise ReleaseFileError(f"{path}: no such file")
    suffix = path.suffix.lower()
    if suffix == ".csv":
        return pd.read_csv(path, dtype=str, keep_default_na=False)
    if suffix in (".parquet", ".pq"):
        return pd.read_parquet(path)
    raise ReleaseFileError(f"{path}: unsupported format {suffix!r}; expected .csv or .parquet")


def _layout(path: Path, columns) -> str:
    present = set(columns)
    for name, needed in LAYOUTS.items():
        if set(needed) <= present:
            return name
    raise ReleaseFileError(
        f"{path}: columns {sorted(present)} match no release layout; expected "
        f"{list(SIMPLE)} (simple) or {list(ALFRED)} (ALFRED vintages)"
    )


def _bad(path: Path, line: int, column: str, value: object, expected: str) -> ReleaseFileError:
    return ReleaseFileError(
        f"{path}: line {line}, column {column!r}: {value!r}; expected {expected}"
    )


def _series_ids(path: Path, column: pd.Series, line: np.ndarray) -> np.ndarray:
    text = column.astype(str).str.strip()
    empty = (text == "").to_numpy() | column.isna().to_numpy()
    if empty.any():
        k = int(np.argmax(empty))
        raise _bad(path, int(line[k]), "series_id", column.iloc[k], "a non-empty series id")
    return text.to_numpy()


def _dates(path: Path, rows: pd.DataFrame, name: str, line: np.ndarray) -> np.ndarray:
    parsed = pd.to_datetime(rows[name], errors="coerce", format="mixed")
    if parsed.isna().any():
        k = int(np.argmax(parsed.isna().to_numpy()))
        raise _bad(path, int(line[k]), name, rows[name].iloc[k], "a date (YYYY-MM-DD)")
    if getattr(parsed.dt, "tz", None) is not None:
        parsed = parsed.dt.tz_localize(None)
    return parsed.dt.normalize().to_numpy("datetime64[ns]")


def _values(path: Path, column: pd.Series, line: np.ndarray) -> np.ndarray:
    numbers = pd.to_numeric(column, errors="coerce").to_numpy(np.float64)
    bad = ~np.isfinite(numbers)
    if bad.any():
        k = int(np.argmax(bad))
        raise _bad(path, int(line[k]), "value", column.iloc[k], "a finite number")
    return numbers


def _instants(path: Path, column: pd.Series, line: np.ndarray) -> pd.DatetimeIndex:
    found = []
    for k, text in enumerate(column.astype(str)):
        stamp = pd.Timestamp(text) if _parses(text) else None
        if stamp is None or stamp.tzinfo is None:
            expected = "an ISO-8601 time with its UTC offset, e.g. 2009-12-15T08:30:00-05:00"
            raise _bad(path, int(line[k]), "released_at", column.iloc[k], expected)
        found.append(stamp.tz_convert("UTC"))
    return pd.DatetimeIndex(found, tz="UTC")


def _parses(text: str) -> bool:
    try:
        pd.Timestamp(text)
    except (ValueError, TypeError):
        return False
    return text.strip() != "" and text != "NaT"


def _vintage_instants(
    path: Path, column: pd.Series, line: np.ndarray, release_time: str
) -> pd.DatetimeIndex:
    days = _dates(path, pd.DataFrame({"realtime_start": column}), "realtime_start", line)
    return local_times(days, release_time)


def _check_clock(release_time: str) -> None:
    try:
        parsed = datetime.strptime(release_time, "%H:%M")
    except (ValueError, TypeError):
        parsed = None
    if parsed is None or parsed.strftime("%H:%M") != release_time:
        raise ReleaseFileError(
            f"release time {release_time!r} is not a clock time; expected HH:MM, e.g. 08:30"
        )


def _refuse_the_future(path: Path, table: pd.DataFrame, line: np.ndarray, now: datetime) -> None:
    late = (table["released_at"] > pd.Timestamp(now).tz_convert("UTC")).to_numpy()
    if late.any():
        k = int(np.argmax(late))
        stamp = table["released_at"].iloc[k].isoformat()
        raise _bad(
            path, int(line[k]), "released_at", stamp, f"a time before now ({now.isoformat()})"
        )


def _derived_ids(table: pd.DataFrame) -> np.ndarray:
    period = pd.DatetimeIndex(table["period"]).strftime("%Y-%m-%d")
    released = pd.DatetimeIndex(table["released_at"]).strftime("%Y-%m-%dT%H:%M:%SZ")
    return (table["series_id"] + ":" + period + ":" + released).to_numpy()


def _refuse_conflicts(path: Path, table: pd.DataFrame) -> None:
    """The same event twice with different contents is a mistake, not a revision."""
    repeated = table[table.duplicated("event_id", keep=False)]
    for _, same in repeated.groupby("event_id", sort=False):
        if same[["series_id", "period", "value", "released_at"]].nunique().max() > 1:
            first, second = same["line"].iloc[0], same["line"].iloc[1]
            raise ReleaseFileError(
                f"{path}: lines {first} and {second} give release {same['event_id'].iloc[0]!r} "
                f"two different values ({same['value'].iloc[0]!r} and {same['value'].iloc[1]!r}); "
                "expected one value per series, period and release time"
            )
