"""The bundled daily equity example: 20 S&P 500 stocks, 1990-01-02..2022-12-28.

Source: the price file the ``skfolio`` wheel ships (``skfolio/datasets/data/
sp500_dataset.csv.gz``, skfolio's ``load_sp500_dataset``; package licence BSD-3): daily
closing prices of AAPL, AMD, BAC, BBY, CVX, GE, HD, JNJ, JPM, KO, LLY, MRK, MSFT, PEP,
PFE, PG, RRC, UNH, WMT and XOM, adjusted for splits and dividends, rounded to three
decimals. The file is read directly (skfolio and its optimisation stack are not
imported).

Caveats: the 20 names are today's large caps chosen after the fact (survivorship: no
stock that failed or left the index is in it), and early prices of a few are fractions of
a dollar, where the rounding to 1/1000 moves daily returns by up to a few tenths of a
percent. Each close is available at the end of its date's New York day, like every
plain panel; the fields are ``close`` and ``returns`` (close to close, so the returns of
a date are known with its close).
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np
import pandas as pd

from alphafactory.data.errors import DataError
from alphafactory.panel import Panel

DATA_FILE = Path("datasets", "data", "sp500_dataset.csv.gz")


def bundled_stocks(*, start: str = "1990-01-01", end: str = "2022-12-31") -> Panel:
    """The 20 stocks' daily closes from ``start`` to ``end`` (dates as in the file)."""
    prices = _prices().loc[start:end]
    if prices.empty:
        raise DataError(f"no bundled stock prices between {start!r} and {end!r} (1990..2022)")
    close = prices.to_numpy(np.float64)
    returns = np.full_like(close, np.nan)
    returns[1:] = close[1:] / close[:-1] - 1.0  # close to close; the first day has none
    return Panel(
        dates=prices.index.to_numpy(dtype="datetime64[ns]"),
        assets=np.array(prices.columns, dtype=str),
        fields={"close": close, "returns": returns},
    )


def _prices() -> pd.DataFrame:
    spec = importlib.util.find_spec("skfolio")
    if spec is None or not spec.submodule_search_locations:
        raise DataError("the bundled stock prices need skfolio: pip install skfolio")
    path = Path(next(iter(spec.submodule_search_locations))) / DATA_FILE
    if not path.exists():
        raise DataError(f"skfolio is installed but {path} is not: another skfolio version?")
    frame = pd.read_csv(path, parse_dates=["Date"], index_col="Date")
    return frame.sort_index().astype(float)
