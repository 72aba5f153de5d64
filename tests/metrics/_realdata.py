"""Real data shipped inside PyPI packages, as (T, N) panels.

- Ken French's 12 industry portfolios, monthly simple returns 1949-2016 (Kenneth R.
  French Data Library, as shipped by ``linearmodels.datasets.french``).
- US quarterly macro data 1959-2009 (``statsmodels.datasets.macrodata``): the quarterly
  growth of seven series, used as if they were seven assets.
"""

from __future__ import annotations

from functools import cache

import numpy as np
import pandas as pd

from alphafactory.data.bundled_assets import INDUSTRIES

MACRO_SERIES = ["realgdp", "realcons", "realinv", "realgovt", "realdpi", "cpi", "m1"]


@cache
def industry_returns() -> pd.DataFrame:
    from linearmodels.datasets import french

    frame = french.load()
    frame["dates"] = pd.to_datetime(frame["dates"])
    return frame.set_index("dates")[INDUSTRIES].astype(float)


@cache
def macro_growth() -> pd.DataFrame:
    from statsmodels.datasets import macrodata

    frame = macrodata.load_pandas().data
    dates = pd.PeriodIndex.from_fields(
        year=frame["year"].astype(int), quarter=frame["quarter"].astype(int), freq="Q"
    ).to_timestamp()
    levels = frame[MACRO_SERIES].set_axis(dates)
    return levels.pct_change().iloc[1:]


def momentum(returns: pd.DataFrame, lookback: int, skip: int) -> pd.DataFrame:
    """Compounded return from ``t - lookback`` to ``t - skip`` (12-1 momentum: 12, 1)."""
    wealth = (1.0 + returns).cumprod()
    return wealth.shift(skip) / wealth.shift(lookback) - 1.0


def as_arrays(frame: pd.DataFrame) -> np.ndarray:
    return np.ascontiguousarray(frame.to_numpy(dtype=np.float64))
