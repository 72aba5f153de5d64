"""Every operator against a naive pandas implementation, with missing values and ties."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from alphafactory.evaluate import KERNELS, Evaluator, evaluate
from alphafactory.formula import OPERATORS, SEMANTICS, LanguageConfig
from tests.evaluate.panels import make_panel

PANEL = make_panel(rows=70, assets=7, seed=3)
CONFIG = LanguageConfig(windows=(2, 3, 5, 10, 20), lags=(1, 2, 5))
EVALUATOR = Evaluator(PANEL, config=CONFIG)
X = pd.DataFrame(PANEL.fields["returns"])
C = pd.DataFrame(PANEL.fields["close"])
V = pd.DataFrame(PANEL.fields["volume"])  # rounded: ties
OIL = pd.Series(PANEL.macro["oil"])
TINY = 1e-12


def close_to(expression: str, expected) -> None:
    got = EVALUATOR.evaluate(expression)
    expected = np.asarray(expected, dtype=np.float64)
    assert got.shape == expected.shape, expression
    np.testing.assert_allclose(
        got, expected, rtol=1e-9, atol=1e-12, equal_nan=True, err_msg=expression
    )


def safe(numerator, denominator):
    return numerator.where(denominator.abs() >= TINY) / denominator.where(denominator.abs() >= TINY)


def test_every_operator_has_a_kernel_semantics_and_an_oracle():
    assert set(OPERATORS.values()) == set(KERNELS)
    assert set(OPERATORS) == set(SEMANTICS)
    tested = set(ELEMENTWISE) | {"add", "sub", "mul", "div", "max", "min"}
    tested |= set(LAGGED) | set(ROLLING) | {"ts_corr", "ts_cov"} | set(CROSS_SECTIONAL)
    tested |= {"winsorize", "group_demean"}
    assert tested == set(OPERATORS)


ELEMENTWISE = {
    "neg": lambda x: -x,
    "abs": lambda x: x.abs(),
    "sign": np.sign,
    "log": lambda x: np.log(x.where(x > 0)),
    "slog": lambda x: np.sign(x) * np.log1p(x.abs()),
    "sqrt": lambda x: np.sqrt(x.where(x >= 0)),
    "square": lambda x: x * x,
    "inv": lambda x: safe(x * 0 + 1, x),
}


@pytest.mark.parametrize("name", list(ELEMENTWISE))
def test_elementwise(name):
    text = "-returns" if name == "neg" else f"{name}(returns)"
    close_to(text, ELEMENTWISE[name](X))
    macro = "-oil" if name == "neg" else f"{name}(oil)"
    close_to(macro, ELEMENTWISE[name](OIL))


def test_binary_with_broadcasting():
    close_to("returns + close", X + C)
    close_to("returns - oil", X.sub(OIL, axis=0))
    close_to("2 * returns", 2 * X)
    close_to("oil * oil", OIL * OIL)
    close_to("returns / close", safe(X, C))
    close_to("close / returns", safe(C, X))  # near-zero returns give NaN, never inf
    close_to("1 / oil", safe(OIL * 0 + 1, OIL))
    close_to("max(returns, oil)", np.maximum(X, np.asarray(OIL)[:, None]))
    close_to("min(returns, 0.01)", np.minimum(X, 0.01))
    assert not np.isinf(EVALUATOR.evaluate("close / (returns - returns)")).any()


LAGGED = {
    "delay": lambda x, d: x.shift(d),
    "delta": lambda x, d: x - x.shift(d),
    "pct_change": lambda x, d: safe(x, x.shift(d)) - 1,
}


@pytest.mark.parametrize("name", list(LAGGED))
@pytest.mark.parametrize("lag", [1, 2, 5])
def test_lagged(name, lag):
    close_to(f"{name}(close, {lag})", LAGGED[name](C, lag))
    close_to(f"{name}(oil, {lag})", LAGGED[name](OIL, lag))


def _decay(values):
    weights = np.arange(1, len(values) + 1)
    return values @ weights / weights.sum()


def _ema(values):
    return pd.Series(values).ewm(span=len(values), adjust=True).mean().iloc[-1]


def _zscore(r):
    std = r.std()
    return (r.obj - r.mean()) / std.where(std >= TINY)


ROLLING = {
    "ts_mean": lambda r: r.mean(),
    "ts_sum": lambda r: r.sum(),
    "ts_std": lambda r: r.std(ddof=1),
    "ts_min": lambda r: r.min(),
    "ts_max": lambda r: r.max(),
    "ts_rank": lambda r: r.rank(pct=True),
    "ts_zscore": _zscore,
    "ts_argmax": lambda r: r.apply(np.argmax, raw=True),
    "ts_argmin": lambda r: r.apply(np.argmin, raw=True),
    "decay_linear": lambda r: r.apply(_decay, raw=True),
    "ema": lambda r: r.apply(_ema, raw=True),
}


@pytest.mark.parametrize("name", list(ROLLING))
@pytest.mark.parametrize("window", [2, 3, 5, 20])
def test_rolling(name, window):
    for field, frame in (("returns", X), ("volume", V), ("oil", OIL)):
        close_to(
            f"{name}({field}, {window})", ROLLING[name](frame.rolling(window, min_periods=window))
        )


@pytest.mark.parametrize("window", [2, 5, 20])
def test_pair_rolling(window):
    corr = X.rolling(window, min_periods=window).corr(C)
    close_to(f"ts_corr(returns, close, {window})", corr)
    close_to(f"ts_cov(returns, close, {window})", X.rolling(window, min_periods=window).cov(C))
    oil = pd.DataFrame({column: OIL for column in X.columns})
    close_to(f"ts_cov(oil, close, {window})", oil.rolling(window, min_periods=window).cov(C))
    # pandas leaves inf / nan noise where a window is constant; ours is NaN there
    expected = oil.rolling(window, min_periods=window).corr(V)
    expected = expected.where(V.rolling(window).std() > 0)
    close_to(f"ts_corr(oil, volume, {window})", expected)


def test_constant_windows_give_zero_std_and_nan_zscore_and_corr():
    flat = make_panel(rows=30, assets=3, seed=1)
    flat.fields["close"][:] = 0.1
    std = evaluate("ts_std(close, 5)", flat)
    assert np.all(std[4:] == 0.0)
    assert np.isnan(evaluate("ts_zscore(close, 5)", flat)[4:]).all()
    assert np.isnan(evaluate("ts_corr(close, returns, 5)", flat)[4:]).all()


CROSS_SECTIONAL = {
    "rank": lambda x: x.rank(axis=1, pct=True),
    "zscore": lambda x: x.sub(x.mean(axis=1), axis=0).div(_nonzero(x.std(axis=1)), axis=0),
    "demean": lambda x: x.sub(x.mean(axis=1), axis=0),
    "scale": lambda x: x.div(_nonzero(x.abs().sum(axis=1)), axis=0),
}


def _nonzero(series):
    return series.where(series.abs() >= TINY)


@pytest.mark.parametrize("name", list(CROSS_SECTIONAL))
@pytest.mark.parametrize("frame_name", ["returns", "volume"])
def test_cross_sectional(name, frame_name):
    frame = {"returns": X, "volume": V}[frame_name]
    close_to(f"{name}({frame_name})", CROSS_SECTIONAL[name](frame))


def test_rank_of_a_panel_built_from_a_macro_series():
    close_to("rank(oil + returns)", X.add(OIL, axis=0).rank(axis=1, pct=True))
    close_to("rank(oil * close)", C.mul(OIL, axis=0).rank(axis=1, pct=True))


@pytest.mark.parametrize("k", [0.5, 1, 2.5])
def test_winsorize(k):
    mean, std = X.mean(axis=1), X.std(axis=1)
    close_to(f"winsorize(returns, {k})", X.clip(lower=mean - k * std, upper=mean + k * std, axis=0))


def test_group_demean():
    groups = pd.DataFrame(PANEL.groups["sector"])
    long = pd.DataFrame({"x": X.stack(future_stack=True), "g": groups.stack(future_stack=True)})
    dates = long.index.get_level_values(0)
    means = long.groupby([dates, "g"])["x"].transform("mean")
    expected = (long["x"] - means).where(long["g"] >= 0).unstack()
    close_to("group_demean(returns, sector)", expected)


def test_nested_formula_matches_composed_oracle():
    inner = X.rolling(5, min_periods=5).mean()
    expected = safe(C, inner.abs()).rank(axis=1, pct=True) - 0.5
    close_to("rank(close / abs(ts_mean(returns, 5))) - 0.5", expected)
