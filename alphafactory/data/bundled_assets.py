"""The bundled multi-asset universe: monthly simple returns of four asset classes, built
offline from data shipped in PyPI wheels.

Every return is for a calendar month and lands on that month's last day. Group
``asset_class`` (``ASSET_CLASSES``): 0 equity, 1 bonds, 2 commodities, 3 cash.

Equity (Kenneth R. French's Data Library as shipped by ``linearmodels.datasets.french``,
1949-01..2017-03; published for free research use):
    ``US_EQUITY``: the value-weighted US market, ``MktRF + RF``; 12 industry portfolios
    (``NoDur`` .. ``Other``) and 9 size x value portfolios (``S1V1`` .. ``S5V5``).

Long corporate bonds (``arch.data.default``: Moody's seasoned AAA and BAA yields, monthly
averages, 1919-01..2018-12; FRED, public):
    ``US_AAA_BOND``, ``US_BAA_BOND``: total-return APPROXIMATIONS, not index returns. The
    month's return is the carry minus the duration loss,
    ``r_m = y_{m-1} / 12 - D(y_{m-1}) * (y_m - y_{m-1})``, with yields in decimals and
    ``D(y) = (1 - (1 + y/2) ** -40) / y`` the modified duration of a 20-year par bond with
    semi-annual coupons (about 11 at a 7% yield; Moody's seasoned bonds have 20 to 30
    years left). Convexity, defaults, downgrades and the index's roll are ignored, and the
    yields are monthly averages, so month-to-month moves are smoothed.

Commodities (``arch.data.wti``: daily WTI Cushing spot, 1986-01-02..2019-01-03; EIA via
FRED, public):
    ``OIL_WTI``: the spot price's month-end to month-end change (the last trading day's
    price in each month). A SPOT return: futures roll yield and collateral are not in it,
    so it is not the return of an investable oil position.

Cash (``linearmodels.datasets.french``):
    ``CASH``: the one-month T-bill return (``RF``), the risk-free leg of the French data.

Assets enter when their data begin (oil in 1986-02): earlier months are NaN.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from alphafactory.data.errors import DataError

INDUSTRIES = [
    "NoDur",
    "Durbl",
    "Manuf",
    "Enrgy",
    "Chems",
    "BusEq",
    "Telcm",
    "Utils",
    "Shops",
    "Hlth",
    "Money",
    "Other",
]
SIZE_VALUE = ["S1V1", "S1V3", "S1V5", "S3V1", "S3V3", "S3V5", "S5V1", "S5V3", "S5V5"]
BONDS = {"US_AAA_BOND": "AAA", "US_BAA_BOND": "BAA"}
ASSET_CLASSES = {"equity": 0, "bonds": 1, "commodities": 2, "cash": 3}
BOND_YEARS = 20  # the maturity the duration approximation assumes


def bond_duration(yields: np.ndarray, years: int = BOND_YEARS) -> np.ndarray:
    """Modified duration of a ``years``-year par bond with semi-annual coupons, at the
    decimal yields given."""
    yields = np.asarray(yields, dtype=np.float64)
    return (1.0 - (1.0 + yields / 2.0) ** (-2 * years)) / yields


def bond_returns(yields_percent: pd.Series) -> pd.Series:
    """Monthly total-return approximation from a monthly yield series in percent: carry
    minus modified duration times the yield change (the module docstring states the
    assumptions). The first month has no return."""
    y = yields_percent.astype(float) / 100.0
    previous = y.shift(1)
    return previous / 12.0 - bond_duration(previous.to_numpy()) * (y - previous)


def month_end_returns(prices: pd.Series) -> pd.Series:
    """Month-end to month-end simple returns of a daily price series, on month starts."""
    last = prices.dropna().astype(float).resample("MS").last()
    return last.pct_change().iloc[1:]


def asset_returns(french: pd.DataFrame) -> tuple[pd.DataFrame, dict[str, int]]:
    """Every bundled asset's monthly return on a month-start index, and its asset class."""
    try:
        from arch.data import default, wti
    except ImportError as e:
        raise DataError("the bundled dataset needs arch: pip install arch") from e
    yields = default.load()
    yields.index = pd.DatetimeIndex(yields.index).to_period("M").to_timestamp()
    columns = {
        "US_EQUITY": french["MktRF"] + french["RF"],
        **{name: french[name] for name in INDUSTRIES + SIZE_VALUE},
        **{name: bond_returns(yields[column]) for name, column in BONDS.items()},
        "OIL_WTI": month_end_returns(wti.load()["DCOILWTICO"]),
        "CASH": french["RF"],
    }
    classes = {name: ASSET_CLASSES["equity"] for name in ["US_EQUITY", *INDUSTRIES, *SIZE_VALUE]}
    classes |= {name: ASSET_CLASSES["bonds"] for name in BONDS}
    classes |= {"OIL_WTI": ASSET_CLASSES["commodities"], "CASH": ASSET_CLASSES["cash"]}
    frame = pd.DataFrame({name: series.astype(float) for name, series in columns.items()})
    return frame.sort_index(), classes
