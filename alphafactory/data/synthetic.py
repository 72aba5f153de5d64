"""A seeded synthetic market: prices, volumes, sectors, macro releases and planted signals.

Returns are ``r[t, i] = market[t] + dispersion * x[t, i]``, where the cross-sectional part
``x[t]`` mixes z-scored noise (sector moves, beta to the market, idiosyncratic) with the
z-scored value of each planted formula at ``t - 1``::

    x[t] = sum_k ic_k * z(f_k[t - 1]) + sqrt(1 - sum_k ic_k^2) * z(noise[t])

Pearson correlation is affine-invariant per date, so the realised IC of formula ``f_k``
against next-period returns is close to ``ic_k`` (exact in expectation while the planted
formulas are uncorrelated with each other). Planted formulas are computed here with numpy
from the generated fields; their text is in the formula language so tests and benchmarks
can evaluate it independently and check recovery.

Macro series follow AR(1) paths, monthly or quarterly, published a per-series number of
days after the period ends (08:30 New York, rolled to business days); some periods are
revised a month later. The panel's macro arrays are built from that table point-in-time
(see :mod:`alphafactory.data.releases`).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd

from alphafactory.clock import local_times, visible_from
from alphafactory.data.errors import DataError
from alphafactory.data.releases import RELEASE_COLUMNS, event_ids, point_in_time_macro
from alphafactory.panel import Panel

FIELDS = ("close", "returns", "volume", "open", "high", "low")
PLANTED_FORMULAS = {
    # short-term reversal: last week's losers bounce back
    "reversal": "-ts_mean(returns, 5)",
    # abnormal volume (log volume over its 20-period average) predicts returns
    "volume_shock": "log(volume) - ts_mean(log(volume), 20)",
}
_SCALE = {"B": (0.0003, 0.01, 0.02), "M": (0.006, 0.045, 0.07)}  # drift, market vol, dispersion


@dataclass(frozen=True)
class PlantedSignal:
    name: str
    formula: str  # in the formula language
    ic: float  # intended mean cross-sectional Pearson IC with next-period returns
    first_valid: int  # first date row where the formula has a value


@dataclass(frozen=True)
class SyntheticMarket:
    panel: Panel
    releases: pd.DataFrame  # RELEASE_COLUMNS, every vintage
    series: pd.DataFrame  # series_id, frequency ('M'/'Q'), lag_days, revision_prob
    planted: tuple[PlantedSignal, ...] = ()
    seed: int = 0


def synthetic_market(
    *,
    n_assets: int,
    n_dates: int,
    n_macro: int = 0,
    seed: int,
    frequency: str = "B",
    planted: Sequence[tuple[str, float]] = (),
    n_sectors: int = 10,
    start: str = "2010-01-01",
) -> SyntheticMarket:
    """Generate a market; ``planted`` is ``((name, ic), ...)`` with names from PLANTED_FORMULAS."""
    _check_arguments(n_assets, n_dates, frequency, planted)
    rng = np.random.default_rng(seed)
    dates = _dates(start, n_dates, frequency)
    assets = np.array([f"A{i:05d}" for i in range(n_assets)])
    sector = rng.integers(0, max(n_sectors, 1), size=n_assets)
    drift, market_vol, dispersion = _SCALE[frequency]
    market = drift + market_vol * rng.standard_normal(n_dates)
    noise = _noise(rng, market, sector, n_sectors, n_dates)
    volume = np.exp(rng.normal(13.0, 1.0, n_assets) + 0.4 * rng.standard_normal(noise.shape))
    specs = dict(planted)
    x = _cross_section(noise, volume, specs)
    returns = np.empty_like(x)
    returns[0] = np.nan
    np.clip(market[1:, None] + dispersion * x[1:], -0.95, None, out=returns[1:])
    fields = _prices(rng, returns, volume, dispersion)
    groups = {"sector": np.broadcast_to(sector, (n_dates, n_assets)).copy()} if n_sectors else {}
    releases, series = _macro_releases(rng, n_macro, dates, frequency)
    panel = Panel(
        dates=dates,
        assets=assets,
        fields=fields,
        macro=point_in_time_macro(releases, dates) if n_macro else {},
        groups=groups,
    )
    signals = tuple(
        PlantedSignal(name, PLANTED_FORMULAS[name], float(ic), _FIRST_VALID[name])
        for name, ic in planted
    )
    return SyntheticMarket(panel, releases, series, signals, seed)


_FIRST_VALID = {"reversal": 5, "volume_shock": 19}


def _check_arguments(n_assets, n_dates, frequency, planted) -> None:
    if frequency not in _SCALE:
        raise DataError(f"frequency {frequency!r} is not supported; expected 'B' or 'M'")
    if n_assets < 2 or n_dates < 2:
        raise DataError(f"need at least 2 assets and 2 dates, got {n_assets} x {n_dates}")
    names = [name for name, _ in planted]
    unknown = sorted(set(names) - set(PLANTED_FORMULAS))
    if unknown or len(set(names)) != len(names):
        raise DataError(
            f"planted signals {names} must be distinct names from {sorted(PLANTED_FORMULAS)}"
        )
    if sum(ic * ic for _, ic in planted) >= 1.0:
        raise DataError(f"planted ICs {[ic for _, ic in planted]}: the sum of squares must be < 1")


def _dates(start: str, n_dates: int, frequency: str) -> np.ndarray:
    if frequency == "B":
        index = pd.bdate_range(start, periods=n_dates)
    else:
        index = pd.date_range(start, periods=n_dates, freq="ME")
    return index.to_numpy(dtype="datetime64[ns]")


def _noise(rng, market, sector, n_sectors, n_dates) -> np.ndarray:
    n_assets = len(sector)
    beta = rng.normal(1.0, 0.3, n_assets)
    noise = rng.standard_normal((n_dates, n_assets))  # (T, N) idiosyncratic
    noise += np.outer(market / market.std(), beta - beta.mean())
    if n_sectors:
        moves = rng.standard_normal((n_dates, n_sectors))
        noise += 0.5 * moves[:, sector]
    return noise


def _zscore(x: np.ndarray) -> np.ndarray:
    """Per-row z-score (ddof=0); rows with no spread or any NaN become 0."""
    mean = x.mean(axis=-1, keepdims=True)
    std = x.std(axis=-1, keepdims=True)
    with np.errstate(invalid="ignore", divide="ignore"):
        z = (x - mean) / std
    return np.nan_to_num(z, nan=0.0, posinf=0.0, neginf=0.0)


def _rolling_mean(x: np.ndarray, window: int) -> np.ndarray:
    """Trailing mean over ``window`` rows (NaN for the first ``window - 1``)."""
    csum = np.cumsum(x, axis=0)
    out = np.full_like(x, np.nan)
    out[window - 1] = csum[window - 1] / window
    out[window:] = (csum[window:] - csum[:-window]) / window
    return out


def _cross_section(noise, volume, specs: dict[str, float]) -> np.ndarray:
    """The cross-sectional part ``x`` of returns, planting each signal one period ahead."""
    x = np.sqrt(1.0 - sum(ic * ic for ic in specs.values())) * _zscore(noise)
    if "volume_shock" in specs:
        log_volume = np.log(volume)
        shock = log_volume - _rolling_mean(log_volume, 20)
        x[1:] += specs["volume_shock"] * _zscore(shock[:-1])
    if "reversal" in specs:
        _plant_reversal(x, specs["reversal"], noise.shape[0])
    return x


def _plant_reversal(x: np.ndarray, ic: float, n_dates: int) -> None:
    # The signal depends on returns that the signal itself moves, so this one is sequential
    # (one vectorised step per date). Returns and x differ only by a per-date affine map
    # (market + dispersion * x), which Pearson correlation ignores, so z(mean of x) stands
    # in for z(mean of returns) exactly; the clip at -95% never binds at these scales.
    window = 5
    for t in range(window, n_dates - 1):
        signal = -x[t - window + 1 : t + 1].mean(axis=0)
        x[t + 1] += ic * _zscore(signal)


def _prices(rng, returns, volume, dispersion) -> dict[str, np.ndarray]:
    n_dates, n_assets = returns.shape
    growth = np.vstack([np.ones((1, n_assets)), 1.0 + returns[1:]])
    close = np.exp(rng.normal(3.5, 0.8, n_assets)) * np.cumprod(growth, axis=0)
    gap = 1.0 + 0.2 * dispersion * rng.standard_normal((n_dates, n_assets))
    open_ = np.empty_like(close)
    open_[0] = close[0] * gap[0]
    open_[1:] = close[:-1] * gap[1:]
    wick = 0.3 * dispersion * np.abs(rng.standard_normal((2, n_dates, n_assets)))
    high = np.maximum(open_, close) * (1.0 + wick[0])
    low = np.minimum(open_, close) * np.maximum(1.0 - wick[1], 0.05)
    return {
        "close": close,
        "returns": returns,
        "volume": volume,
        "open": open_,
        "high": high,
        "low": low,
    }


def _macro_releases(rng, n_macro, dates, frequency) -> tuple[pd.DataFrame, pd.DataFrame]:
    series = pd.DataFrame(
        {
            "series_id": [f"M{i:04d}" for i in range(n_macro)],
            "frequency": np.where(rng.random(n_macro) < 0.25, "Q", "M"),
            "lag_days": rng.integers(1, 46, n_macro),
            "revision_prob": rng.choice([0.0, 0.3, 0.7], n_macro),
        }
    )
    empty = pd.DataFrame({c: pd.Series(dtype=object) for c in RELEASE_COLUMNS})
    if n_macro == 0:
        return empty, series
    # periods start a year early so that values are already visible on the first dates
    first = pd.Timestamp(dates[0]) - pd.DateOffset(years=1)
    parts = [
        _series_rows(rng, series[series["frequency"] == freq], first, pd.Timestamp(dates[-1]), freq)
        for freq in ("M", "Q")
    ]
    rows = pd.concat([p for p in parts if len(p)], ignore_index=True)
    rows = rows[rows["released_at"] <= visible_from(dates[-1:])[0]]
    rows = rows.sort_values(["released_at", "series_id"], kind="stable", ignore_index=True)
    return rows[RELEASE_COLUMNS], series


def _series_rows(rng, series: pd.DataFrame, first, last, freq: str) -> pd.DataFrame:
    """Every release (first prints and revisions) of same-frequency series, vectorised."""
    if series.empty:
        return pd.DataFrame(columns=RELEASE_COLUMNS)
    periods = pd.period_range(first, last, freq=freq)
    n_periods, n_series = len(periods), len(series)
    path = np.empty((n_periods, n_series))  # (P, S) AR(1) truth per series
    path[0] = rng.standard_normal(n_series)
    shocks = rng.standard_normal((n_periods, n_series))
    for p in range(1, n_periods):
        path[p] = 0.9 * path[p - 1] + shocks[p]
    path = rng.normal(0, 10, n_series) + rng.uniform(0.5, 5, n_series) * path
    # a first print misses the truth by a little; the revision a month later reports it
    revised = rng.random((n_periods, n_series)) < series["revision_prob"].to_numpy()
    first_print = np.where(revised, path + 0.2 * rng.standard_normal(path.shape), path)
    period_end = periods.end_time.normalize().to_numpy().astype("datetime64[D]")
    lag = series["lag_days"].to_numpy().astype("timedelta64[D]")
    first_day = np.busday_offset(period_end[:, None] + lag[None, :], 0, roll="forward")
    revision_day = np.busday_offset(first_day + np.timedelta64(30, "D"), 0, roll="forward")
    ids = np.broadcast_to(series["series_id"].to_numpy(), (n_periods, n_series))
    starts = np.broadcast_to(periods.start_time.to_numpy()[:, None], (n_periods, n_series))
    frame = pd.DataFrame(
        {
            "series_id": np.r_[ids.ravel(), ids[revised]],
            "period": np.r_[starts.ravel(), starts[revised]],
            "value": np.r_[first_print.ravel(), path[revised]],
            "released_at": local_times(np.r_[first_day.ravel(), revision_day[revised]], "08:30"),
            "vintage": np.r_[np.zeros(path.size, int), np.ones(int(revised.sum()), int)],
        }
    )
    frame["event_id"] = event_ids(frame["series_id"], frame["period"], frame["vintage"].to_numpy())
    return frame
