"""Windows a user writes (any integer 1..max_window), not only the generator's sets, against
the naive pandas oracle of ``test_eval_oracle``: degenerate one-row windows, the 14-day
stochastic, and windows longer than a year on a long panel."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from alphafactory.evaluate import Evaluator, evaluate, evaluate_batch
from alphafactory.formula import WindowError, parse
from alphafactory.panel import Panel
from tests.evaluate.panels import make_panel
from tests.evaluate.test_eval_oracle import CROSS_SECTIONAL, LAGGED, ROLLING, safe

SHORT = make_panel(rows=80, assets=7, seed=5, missing=0.02)  # missing values, volume ties
LONG = make_panel(rows=700, assets=5, seed=11, missing=0.0005)  # long windows keep values
STOCHASTIC = "zscore((close - ts_min(low, 14)) / (ts_max(high, 14) - ts_min(low, 14)))"

# every numpy warning (a division by zero, an invalid value) fails these tests
pytestmark = pytest.mark.filterwarnings("error")


def frames(panel: Panel) -> dict[str, pd.DataFrame | pd.Series]:
    out: dict[str, pd.DataFrame | pd.Series] = {k: pd.DataFrame(v) for k, v in panel.fields.items()}
    return out | {k: pd.Series(v) for k, v in panel.macro.items()}


def close_to(panel: Panel, expression: str, expected) -> None:
    got = Evaluator(panel).evaluate(expression)  # the default config: text rules, not tokens
    expected = np.asarray(expected, dtype=np.float64)
    assert got.shape == expected.shape, expression
    np.testing.assert_allclose(
        got, expected, rtol=1e-9, atol=1e-12, equal_nan=True, err_msg=expression
    )


CASES = [(SHORT, 1), (SHORT, 7), (SHORT, 14), (LONG, 14), (LONG, 300)]
IDS = ["short-1", "short-7", "short-14", "long-14", "long-300"]


@pytest.mark.parametrize("name", list(ROLLING))
@pytest.mark.parametrize(("panel", "window"), CASES, ids=IDS)
def test_rolling_at_any_window(name, panel, window):
    data = frames(panel)
    for field in ("returns", "volume", "oil"):
        expected = ROLLING[name](data[field].rolling(window, min_periods=window))
        undefined = window == 1 and name in ("ts_std", "ts_zscore")  # ddof=1 over one row
        assert expected.isna().all(axis=None) if undefined else expected.notna().any(axis=None)
        close_to(panel, f"{name}({field}, {window})", expected)


@pytest.mark.parametrize("name", list(LAGGED))
@pytest.mark.parametrize(("panel", "lag"), CASES, ids=IDS)
def test_lagged_at_any_lag(name, panel, lag):
    data = frames(panel)
    for field in ("close", "oil"):
        close_to(panel, f"{name}({field}, {lag})", LAGGED[name](data[field], lag))


@pytest.mark.parametrize(("panel", "window"), CASES, ids=IDS)
def test_pair_rolling_at_any_window(panel, window):
    data = frames(panel)
    x, c, v = data["returns"], data["close"], data["volume"]
    oil = pd.DataFrame({column: data["oil"] for column in x.columns})
    close_to(panel, f"ts_corr(returns, close, {window})", x.rolling(window, window).corr(c))
    close_to(panel, f"ts_cov(returns, close, {window})", x.rolling(window, window).cov(c))
    close_to(panel, f"ts_cov(oil, volume, {window})", oil.rolling(window, window).cov(v))
    # pandas leaves inf / nan noise where a window is constant; ours is NaN there
    expected = oil.rolling(window, window).corr(v).where(v.rolling(window).std() > 0)
    close_to(panel, f"ts_corr(oil, volume, {window})", expected)


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_a_window_of_one_row_is_the_row_or_undefined(dtype):
    """The degenerate window: means, sums, extremes and weighted means give the row itself;
    ddof=1 moments are undefined (NaN, never 0 and never a division by zero); the row ranks
    1.0 and is its own argmax."""
    evaluator = Evaluator(SHORT, dtype=dtype)
    x = SHORT.fields["returns"].astype(dtype)
    present = ~np.isnan(x)
    for name in ("ts_mean", "ts_sum", "ts_min", "ts_max", "decay_linear", "ema"):
        np.testing.assert_array_equal(evaluator.evaluate(f"{name}(returns, 1)"), x, err_msg=name)
    for name in ("ts_std", "ts_zscore"):
        assert np.isnan(evaluator.evaluate(f"{name}(returns, 1)")).all(), name
    for name in ("ts_corr", "ts_cov"):
        assert np.isnan(evaluator.evaluate(f"{name}(returns, close, 1)")).all(), name
        assert np.isnan(evaluator.evaluate(f"{name}(oil, cpi, 1)")).all(), name
    for name, value in (("ts_rank", 1.0), ("ts_argmax", 0.0), ("ts_argmin", 0.0)):
        got = evaluator.evaluate(f"{name}(returns, 1)")
        assert (got[present] == value).all() and np.isnan(got[~present]).all(), name
        assert got.dtype == dtype


def test_windows_and_lags_longer_than_the_panel_give_missing_values():
    for text in ("ts_mean(close, 1000)", "ts_corr(close, volume, 701)", "delta(close, 1000)"):
        got = evaluate(text, LONG)
        assert got.shape == LONG.shape and np.isnan(got).all(), text
    assert np.isnan(evaluate("ts_rank(cpi, 1000)", LONG)).all()
    with pytest.raises(WindowError, match="from 1 to 1000"):
        evaluate("ts_mean(close, 1001)", LONG)


def stochastic_panel(rows: int = 90, assets: int = 9, seed: int = 2) -> Panel:
    rng = np.random.default_rng(seed)
    close = 50.0 * np.exp(np.cumsum(0.02 * rng.standard_normal((rows, assets)), axis=0))
    high = close * (1 + np.abs(0.01 * rng.standard_normal((rows, assets))))
    low = close * (1 - np.abs(0.01 * rng.standard_normal((rows, assets))))
    for values in (close, high, low):
        values[rng.random((rows, assets)) < 0.01] = np.nan
    return Panel(
        dates=np.datetime64("2021-01-01") + np.arange(rows).astype("timedelta64[D]"),
        assets=np.array([f"S{i}" for i in range(assets)]),
        fields={"close": close, "high": high, "low": low},
    )


def test_the_14_day_stochastic_end_to_end():
    panel = stochastic_panel()
    c, h, lo = (pd.DataFrame(panel.fields[k]) for k in ("close", "high", "low"))
    lowest, highest = lo.rolling(14, 14).min(), h.rolling(14, 14).max()
    expected = CROSS_SECTIONAL["zscore"](safe(c - lowest, highest - lowest))
    assert expected.iloc[13:].notna().sum().sum() > 0.5 * expected.iloc[13:].size
    evaluator = Evaluator(panel)
    formula = evaluator.prepare(STOCHASTIC)
    assert str(formula) == STOCHASTIC and formula.lookback == 13
    for got in (
        evaluate(STOCHASTIC, panel),
        evaluator.evaluate(STOCHASTIC),
        evaluator.evaluate(parse(STOCHASTIC)),  # a node goes through check, same rules
        next(evaluate_batch([STOCHASTIC], panel)),
    ):
        np.testing.assert_allclose(got, expected, rtol=1e-9, atol=1e-12, equal_nan=True)
    assert np.isnan(evaluate(STOCHASTIC, panel)[:13]).all()
