"""The bundled real dataset: built at run time, offline, from data shipped in PyPI wheels.

Assets: the multi-asset universe of ``bundled_assets`` (US equity market, 12 industry
and 9 size x value portfolios, long AAA and BAA corporate bond total-return
approximations, WTI crude oil spot, one-month T-bills as cash), monthly simple returns on
month-end dates, with the group ``asset_class``; that module documents each source and
approximation.

Macro series (``series`` lists each with source, frequency, lag and clock):
    - ``statsmodels.datasets.macrodata`` (statsmodels, BSD-3; the dataset is public domain,
      FRED and BLS): US quarterly 1959Q1..2009Q3 - real GDP and its parts, CPI, M1,
      3-month T-bill rate, unemployment, inflation, real interest rate.
    - ``arch.data`` (arch, NCSA; FRED/EIA public data): monthly core CPI (CPILFESL),
      Moody's AAA and BAA yields, Brent and WTI monthly spot prices.
    - ``linearmodels.datasets.french``: the Fama-French factors (market, SMB, HML,
      momentum, risk-free rate).

Publication lags (a modern calendar applied to the whole history, an approximation): a
release lands ``lag_days`` calendar days after the period's last day, rolled forward to a
business day, at the given New York wall-clock time, stored in UTC. GDP and its parts 30
days 08:30 (advance estimate), CPI and core CPI 15 days 08:30, unemployment 7 days 08:30
(first-Friday report), M1 12 days 16:30 (H.6), inflation and the real rate with CPI;
market series (T-bill, AAA/BAA, oil, factor returns) are averages or totals over the
period, known once it ends: next business day 09:00.

Caveat: the packages ship today's revised values, not first prints, so every period has one
vintage (no revisions) and values carry revision look-ahead; only the timing is real-time.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from alphafactory.clock import local_times, visible_from
from alphafactory.data.bundled_assets import asset_returns
from alphafactory.data.errors import DataError
from alphafactory.data.releases import RELEASE_COLUMNS, event_ids, point_in_time_macro
from alphafactory.panel import Panel

# series id -> (source column, frequency, lag days, New York clock, description)
RELEASE_RULES: dict[str, tuple[str, str, int, str, str]] = {
    "us_realgdp": ("realgdp", "Q", 30, "08:30", "real GDP, bn chained 2005 USD, SAAR"),
    "us_realcons": ("realcons", "Q", 30, "08:30", "real personal consumption"),
    "us_realinv": ("realinv", "Q", 30, "08:30", "real private investment"),
    "us_realgovt": ("realgovt", "Q", 30, "08:30", "real government spending"),
    "us_realdpi": ("realdpi", "Q", 30, "08:30", "real disposable personal income"),
    "us_cpi_q": ("cpi", "Q", 15, "08:30", "CPI, quarter end"),
    "us_infl": ("infl", "Q", 15, "08:30", "inflation rate, annualised"),
    "us_realint": ("realint", "Q", 15, "08:30", "real interest rate (T-bill - inflation)"),
    "us_unemp": ("unemp", "Q", 7, "08:30", "unemployment rate, %"),
    "us_m1": ("m1", "Q", 12, "16:30", "M1 money stock"),
    "us_tbill3m": ("tbilrate", "Q", 1, "09:00", "3-month T-bill rate, quarterly average"),
    "us_core_cpi": ("CPILFESL", "M", 15, "08:30", "CPI less food and energy, SA"),
    "us_aaa": ("AAA", "M", 1, "09:00", "Moody's AAA corporate yield, monthly average"),
    "us_baa": ("BAA", "M", 1, "09:00", "Moody's BAA corporate yield, monthly average"),
    "oil_brent": ("Brent", "M", 1, "09:00", "Brent spot, USD/bbl, monthly average"),
    "oil_wti": ("WTI", "M", 1, "09:00", "WTI spot, USD/bbl, monthly average"),
    "ff_mkt_rf": ("MktRF", "M", 1, "09:00", "Fama-French market excess return"),
    "ff_smb": ("SMB", "M", 1, "09:00", "Fama-French size factor"),
    "ff_hml": ("HML", "M", 1, "09:00", "Fama-French value factor"),
    "ff_mom": ("Mom", "M", 1, "09:00", "Fama-French momentum factor"),
    "ff_rf": ("RF", "M", 1, "09:00", "one-month T-bill return"),
}


@dataclass(frozen=True)
class MarketData:
    panel: Panel
    releases: pd.DataFrame  # RELEASE_COLUMNS, one vintage per period here
    series: pd.DataFrame  # series_id, frequency, lag_days, clock, source, description


def bundled_market(*, start: str = "1960-01", end: str = "2017-03") -> MarketData:
    """Monthly multi-asset panel (month-end dates ``start``..``end``) with point-in-time
    macro.

    The default range ends where the French portfolios end (2017-03). The quarterly
    statsmodels series end with 2009Q3 (released in October 2009) and stay at that value
    afterwards; the monthly ones run to the end.
    """
    french = _french()
    returns, classes = asset_returns(french)
    returns = returns.loc[start:end].dropna(axis=1, how="all")
    if returns.empty:
        raise DataError(f"no bundled asset data between {start!r} and {end!r} (1949-01..2017-03)")
    dates = (returns.index + pd.offsets.MonthEnd(0)).to_numpy(dtype="datetime64[ns]")
    values = returns.to_numpy(np.float64)
    close = _total_return_index(values)
    asset_class = np.array([classes[name] for name in returns.columns])
    releases, series = _releases(_macro_sources(french), dates[-1])
    panel = Panel(
        dates=dates,
        assets=np.array(returns.columns, dtype=str),
        fields={"returns": values, "close": close},
        macro=point_in_time_macro(releases, dates),
        groups={"asset_class": np.broadcast_to(asset_class, values.shape).copy()},
    )
    return MarketData(panel, releases, series)


def _total_return_index(returns: np.ndarray) -> np.ndarray:
    """1 + the first month's return onwards, per asset; NaN before an asset's data begin
    and carried over a missing month."""
    growth = np.where(np.isnan(returns), 1.0, 1.0 + returns)
    index = np.cumprod(growth, axis=0)
    started = np.cumsum(~np.isnan(returns), axis=0) > 0
    return np.where(started, index, np.nan)


def _french() -> pd.DataFrame:
    try:
        from linearmodels.datasets import french
    except ImportError as e:
        raise DataError("the bundled dataset needs linearmodels: pip install linearmodels") from e
    frame = french.load()
    return frame.set_index(pd.DatetimeIndex(frame["dates"])).drop(columns="dates").astype(float)


def _macro_sources(french: pd.DataFrame) -> pd.DataFrame:
    """Every source column on one period-start index (quarter or month start)."""
    try:
        from arch.data import core_cpi, crude, default
        from statsmodels.datasets import macrodata
    except ImportError as e:
        raise DataError("the bundled dataset needs arch and statsmodels: pip install both") from e
    quarterly = macrodata.load_pandas().data
    quarterly.index = pd.PeriodIndex.from_fields(
        year=quarterly["year"].astype(int), quarter=quarterly["quarter"].astype(int), freq="Q"
    ).to_timestamp()
    oil = crude.load()
    oil.index = oil.index.to_period("M").to_timestamp()  # shipped mid-month; a monthly average
    monthly = [core_cpi.load(), default.load(), oil, french[["MktRF", "SMB", "HML", "Mom", "RF"]]]
    frames = [quarterly.drop(columns=["year", "quarter"]), *monthly]
    return pd.concat([f.astype(float) for f in frames], axis=1).sort_index()


def _releases(sources: pd.DataFrame, last_date) -> tuple[pd.DataFrame, pd.DataFrame]:
    parts = []
    for series_id, (column, freq, lag, clock, _) in RELEASE_RULES.items():
        column_values = sources[column].dropna()
        period = pd.DatetimeIndex(column_values.index)
        last_day = (period.to_period(freq).end_time.normalize()).to_numpy("datetime64[D]")
        day = np.busday_offset(last_day + np.timedelta64(lag, "D"), 0, roll="forward")
        parts.append(
            pd.DataFrame(
                {
                    "series_id": series_id,
                    "period": period.to_numpy("datetime64[ns]"),
                    "value": column_values.to_numpy(),
                    "released_at": local_times(day, clock),
                }
            )
        )
    rows = pd.concat(parts, ignore_index=True)
    rows["event_id"] = event_ids(rows["series_id"], rows["period"], np.zeros(len(rows), int))
    # releases after the panel's last date are not part of this history
    rows = rows[rows["released_at"] <= visible_from(np.array([last_date]))[0]]
    rows = rows.sort_values(["released_at", "series_id"], kind="stable", ignore_index=True)
    series = pd.DataFrame(
        [
            {
                "series_id": k,
                "frequency": f,
                "lag_days": lag,
                "clock": c,
                "source": col,
                "description": d,
            }
            for k, (col, f, lag, c, d) in RELEASE_RULES.items()
        ]
    )
    return rows[RELEASE_COLUMNS], series
