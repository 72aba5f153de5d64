"""Planted and null macro markets: the proof a method must pass before real data.

A seeded monthly multi-asset universe with asset classes (equity portfolios, bonds,
commodities and a cash asset, in a ``group:asset_class`` group) and macro series released
point-in-time with lags of zero or one period and occasional revisions (the releases of
:mod:`alphafactory.data.synthetic`). In the *planted* market, K formulas the grammar can
write move class returns, and equity portfolios against each other, ``LEAD`` periods
later::

    r[t, i] = mu_c + vol_c * (class_shock[t, c] + idio[t, i])
              + strength * vol_c * sum_k loading[k, i] * z_k[t - LEAD]

where ``z_k`` is planted formula k evaluated by the formula language on what a decision
made at the trigger's release sees (below), standardised over the sample,
``loading[k, i]`` is its class's loading (+-1) plus, for equity portfolios, a spread of
their own. The *null* twin is the
same market with ``strength`` 0: the same noise, the same releases, no signal. Cash earns a
constant rate and no signal.

``LEAD`` is 2: a formula known at a decision moves the return of the month after next,
which is what the decision can still earn (its positions start a period late,
``alphafactory.decision``). The first series (``MAC00``) is the trigger: it is released
``TRIGGER_LAG_DAYS`` after each month's end, and the planted formulas read every release made
within that many days of the month's close, which is the view a decision at that release
has of its last row (``alphafactory.decision``'s twin rows). Planting on the month-end view
instead moved returns with values that a decision made weeks later no longer sees as
they were: it sees newer prints of the fast series, so even the planted formulas themselves
scored an out-of-sample IC t of 2.4 there.

``oracle_information_ratio`` measures what knowing the planted formulas is worth: the
annualised information ratio of a class tilt that holds, each month, the demeaned expected
returns (unit gross) the planted formulas imply. Calibrate ``strength`` with it
(``PLANTED_STRENGTH`` gives about 1.5 over 1990-2016 on the default universe).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from alphafactory.data.releases import RELEASE_COLUMNS, point_in_time_macro
from alphafactory.data.synthetic import _series_rows
from alphafactory.panel import Panel

LEAD = 2  # periods from a planted formula's value to the returns it moves
PLANTED_STRENGTH = 0.10  # the oracle's class-tilt IR is about 1.5 at this strength
TRIGGER_LAG_DAYS = 10  # MAC00, the trigger, is released this long after each month's end
CLASS_GROUP = "asset_class"
# class: (assets, mean monthly return, monthly volatility)
CLASSES = {
    "equity": (8, 0.007, 0.045),
    "bond": (3, 0.004, 0.02),
    "commodity": (2, 0.004, 0.07),
    "cash": (1, 0.003, 0.0),
}
# formulas the grammar writes; {0}, {1}... are the market's series, each used once
PLANTED_TEMPLATES = (
    "ts_zscore({0}, 12)",
    "delta({1}, 3)",
    "-ts_mean({2}, 6)",
    "{3} - {4}",
    "ts_zscore(delta({5}, 1), 24)",
    "-delta({6}, 12)",
)


@dataclass(frozen=True)
class MacroMarket:
    panel: Panel  # monthly; fields returns and close; group asset_class
    releases: pd.DataFrame  # RELEASE_COLUMNS, every vintage
    series: pd.DataFrame  # series_id, frequency, lag_days, revision_prob
    planted: tuple[str, ...]  # the planted formulas (empty in a null market)
    expected: np.ndarray  # (T, N) the planted part of each return (zero in a null market)
    strength: float
    seed: int


def macro_market(
    *,
    seed: int,
    start: str = "1980-01-31",
    end: str = "2016-12-31",
    n_series: int = 10,
    n_planted: int = 6,
    strength: float = PLANTED_STRENGTH,
    null: bool = False,
) -> MacroMarket:
    """A planted macro market (``null``: its twin with no signal, the same noise)."""
    if not 1 <= n_planted <= len(PLANTED_TEMPLATES):
        raise ValueError(f"n_planted must be 1 to {len(PLANTED_TEMPLATES)}, got {n_planted}")
    if n_series < 7:
        raise ValueError(
            f"n_series must be at least 7 (the planted formulas' series), got {n_series}"
        )
    rng = np.random.default_rng(seed)
    dates = pd.date_range(start, end, freq="ME").to_numpy("datetime64[ns]")
    if len(dates) < 24:
        raise ValueError(f"{start} to {end} holds {len(dates)} month ends; at least 24 are needed")
    releases, series = _releases(rng, n_series, dates)
    macro = point_in_time_macro(releases, dates)
    at_trigger = point_in_time_macro(releases, dates, offset=pd.Timedelta(days=TRIGGER_LAG_DAYS))
    assets, classes, mu, vol = _universe()
    planted = tuple(
        template.format(*series["series_id"]) for template in PLANTED_TEMPLATES[:n_planted]
    )
    # the noise is drawn before anything depends on the strength: the null twin shares it
    class_shock = rng.standard_normal((len(dates), len(CLASSES)))
    idio = 0.6 * rng.standard_normal((len(dates), len(assets)))
    loading = _loadings(rng, n_planted, classes)
    signal = _planted_values(planted, dates, assets, at_trigger)  # (T, K), standardised
    expected = np.zeros((len(dates), len(assets)))
    if not null:
        lagged = np.full_like(signal, np.nan)
        lagged[LEAD:] = signal[:-LEAD]
        expected = strength * vol * np.nan_to_num(lagged @ loading)
    returns = mu + vol * (class_shock[:, classes] + idio) + expected
    returns[0] = np.nan
    close = 100.0 * np.cumprod(1.0 + np.nan_to_num(returns), axis=0)
    panel = Panel(
        dates=dates,
        assets=assets,
        fields={"returns": returns, "close": close},
        macro=macro,
        groups={CLASS_GROUP: np.broadcast_to(classes, returns.shape).copy()},
    )
    return MacroMarket(
        panel, releases, series, () if null else planted, expected, 0.0 if null else strength, seed
    )


def oracle_information_ratio(market: MacroMarket, first: str | None = None) -> float:
    """Annualised IR of the oracle's class tilt (module doc), from month ``first`` on."""
    expected = market.expected
    returns = market.panel.returns
    demeaned = expected - expected.mean(axis=1, keepdims=True)
    gross = np.abs(demeaned).sum(axis=1, keepdims=True)
    weights = np.divide(demeaned, gross, out=np.zeros_like(demeaned), where=gross > 0)
    active = np.nansum(weights * returns, axis=1)
    keep = gross[:, 0] > 0
    if first is not None:
        keep &= pd.DatetimeIndex(market.panel.dates) >= pd.Timestamp(first)
    active = active[keep]
    if len(active) < 2 or active.std(ddof=1) == 0:
        return float("nan")
    return float(active.mean() / active.std(ddof=1) * np.sqrt(12))


def _universe():
    names, codes, mu, vol = [], [], [], []
    for code, (name, (count, mean, volatility)) in enumerate(CLASSES.items()):
        for k in range(count):
            names.append(name.upper() if count == 1 else f"{name.upper()}_{k + 1}")
            codes.append(code)
            mu.append(mean)
            vol.append(volatility)
    return np.array(names), np.array(codes), np.array(mu), np.array(vol)


def _releases(rng, n_series: int, dates: np.ndarray) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Monthly series released 5 to 45 days after their period (a lag of zero or one
    period; the trigger ``MAC00`` after ``TRIGGER_LAG_DAYS``), some revised a month later;
    periods start a year before the first date."""
    lags = rng.integers(5, 46, n_series)
    lags[0] = TRIGGER_LAG_DAYS
    series = pd.DataFrame(
        {
            "series_id": [f"MAC{i:02d}" for i in range(n_series)],
            "frequency": "M",
            "lag_days": lags,
            "revision_prob": rng.choice([0.0, 0.3], n_series),
        }
    )
    first = pd.Timestamp(dates[0]) - pd.DateOffset(years=1)
    rows = _series_rows(rng, series, first, pd.Timestamp(dates[-1]), "M")
    rows = rows.sort_values(["released_at", "series_id"], kind="stable", ignore_index=True)
    return rows[RELEASE_COLUMNS], series


def _loadings(rng, n_planted: int, classes: np.ndarray) -> np.ndarray:
    """(K, N): each formula's class loadings (+-1; none for cash), and for equity
    portfolios a spread of their own, so the formula also ranks them."""
    per_class = rng.choice([-1.0, 1.0], (n_planted, len(CLASSES)))
    loading = per_class[:, classes]
    equity = classes == list(CLASSES).index("equity")
    loading[:, equity] += rng.normal(0.0, 0.7, (n_planted, int(equity.sum())))
    loading[:, classes == list(CLASSES).index("cash")] = 0.0
    return loading


def _planted_values(planted, dates, assets, macro) -> np.ndarray:
    """(T, K): each planted formula evaluated by the formula language, standardised."""
    from alphafactory.evaluate import Evaluator
    from alphafactory.formula import LanguageConfig

    panel = Panel(dates, assets, {"close": np.ones((len(dates), len(assets)))}, macro, {})
    evaluator = Evaluator(panel, config=LanguageConfig.monthly())
    values = np.column_stack([evaluator.evaluate(formula) for formula in planted])
    mean, std = np.nanmean(values, axis=0), np.nanstd(values, axis=0)
    return (values - mean) / np.where(std > 0, std, 1.0)
