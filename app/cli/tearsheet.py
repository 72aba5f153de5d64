"""One-page PNG tear sheet of a factor: the plot behind ``factor eval --plot``.

Four panels from :meth:`FactorScorer.series` and the metrics dict: cumulative long-short
return ``W_t - 1`` with ``W = cumprod(1 + ls)`` (dates where ``ls`` is NaN count as flat),
its drawdown ``1 - W_t / max(1, max_{s<=t} W_s)`` (the convention of ``ls_max_drawdown``),
IC and rank IC per date with rolling means, and the quantile mean returns (bottom to top).
matplotlib is imported inside :func:`write_tearsheet` so the CLI starts fast.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np


def write_tearsheet(path, *, formula: str, dates, series: dict, metrics: dict) -> Path:
    """Write the tear sheet of one factor to ``path`` (a PNG) and return the path."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    path = Path(path)
    dates = np.asarray(dates)
    ls = np.asarray(series["ls"], dtype=np.float64)
    wealth = np.cumprod(np.where(np.isfinite(ls), 1.0 + ls, 1.0))
    peak = np.maximum(np.maximum.accumulate(wealth), 1.0)
    drawdown = 1.0 - wealth / peak

    fig, axes = plt.subplots(
        4,
        1,
        figsize=(11, 13),
        constrained_layout=True,
        gridspec_kw={"height_ratios": [3, 1.4, 2.2, 2]},
    )
    try:
        _cumulative(axes[0], dates, wealth - 1.0)
        _drawdown(axes[1], dates, drawdown)
        _ic(axes[2], dates, series["ic"], series["rank_ic"])
        _quantiles(
            axes[3],
            metrics.get("quantile_mean_returns") or _quantile_means(series["quantile_returns"], ls),
        )
        fig.suptitle(_title(formula, metrics), fontsize=11, x=0.01, ha="left")
        path.parent.mkdir(parents=True, exist_ok=True)
        fig.savefig(path, format="png", dpi=100)
    finally:
        plt.close(fig)
    return path


def _cumulative(ax, dates, cumulative) -> None:
    ax.plot(dates, cumulative * 100, color="tab:blue", lw=1.3)
    ax.axhline(0, color="grey", lw=0.8)
    ax.set_title("Cumulative long-short return (top minus bottom quantile)", loc="left")
    ax.set_ylabel("%")
    ax.grid(alpha=0.3)


def _drawdown(ax, dates, drawdown) -> None:
    ax.fill_between(dates, -drawdown * 100, 0, color="tab:red", alpha=0.35, lw=0)
    ax.plot(dates, -drawdown * 100, color="tab:red", lw=0.8)
    ax.set_title("Drawdown of the long-short portfolio", loc="left")
    ax.set_ylabel("%")
    ax.grid(alpha=0.3)


def _ic(ax, dates, ic, rank_ic) -> None:
    ic = np.asarray(ic, dtype=np.float64)
    rank_ic = np.asarray(rank_ic, dtype=np.float64)
    window = max(5, min(63, len(ic) // 10))
    ax.vlines(dates, 0, np.nan_to_num(ic), color="tab:blue", alpha=0.25, lw=1, label="IC")
    ax.plot(
        dates, _rolling_mean(ic, window), color="tab:blue", lw=1.5, label=f"IC, {window}-date mean"
    )
    ax.plot(
        dates,
        _rolling_mean(rank_ic, window),
        color="tab:orange",
        lw=1.5,
        label=f"rank IC, {window}-date mean",
    )
    ax.axhline(0, color="grey", lw=0.8)
    ax.set_title("Information coefficient per date", loc="left")
    ax.legend(loc="upper left", fontsize=8, ncols=3)
    ax.grid(alpha=0.3)


def _quantiles(ax, means) -> None:
    means = np.asarray([np.nan if v is None else v for v in means], dtype=np.float64) * 1e4
    labels = [f"Q{i + 1}" for i in range(len(means))]
    colors = ["tab:green" if v >= 0 else "tab:red" for v in np.nan_to_num(means)]
    ax.bar(labels, np.nan_to_num(means), color=colors, alpha=0.8)
    ax.axhline(0, color="grey", lw=0.8)
    ax.set_title("Mean next-period return by factor quantile (Q1 = lowest)", loc="left")
    ax.set_ylabel("bp")
    ax.grid(alpha=0.3, axis="y")


def _rolling_mean(values: np.ndarray, window: int) -> np.ndarray:
    """Mean of the finite values among the last ``window`` dates; NaN with fewer than half."""
    finite = np.isfinite(values)
    sums = np.concatenate([[0.0], np.cumsum(np.where(finite, values, 0.0))])
    counts = np.concatenate([[0], np.cumsum(finite)])
    lo = np.maximum(np.arange(1, len(values) + 1) - window, 0)
    total, count = sums[1:] - sums[lo], counts[1:] - counts[lo]
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(count >= max(1, window // 2), total / count, np.nan)


def _quantile_means(quantile_returns, ls) -> np.ndarray:
    rows = np.asarray(quantile_returns, dtype=np.float64)[np.isfinite(ls)]
    if not len(rows):
        return np.full(np.shape(quantile_returns)[-1], np.nan)
    return rows.mean(axis=0)


def _title(formula: str, metrics: dict) -> str:
    cells = [
        ("IC", "ic", ".4f"),
        ("rank IC", "rank_ic", ".4f"),
        ("ICIR", "icir", ".2f"),
        ("Sharpe", "ls_sharpe", ".2f"),
        ("ann. return", "ls_annual_return", ".1%"),
        ("max DD", "ls_max_drawdown", ".1%"),
        ("turnover", "turnover", ".2f"),
        ("HAC t", "hac_tstat", ".2f"),
        ("periods", "n_periods", "d"),
    ]
    text = "   ".join(f"{name} {_format(metrics.get(key), spec)}" for name, key, spec in cells)
    shown = formula if len(formula) <= 110 else formula[:107] + "..."
    return f"{shown}\n{text}"


def _format(value, spec: str) -> str:
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return "n/a"
    return format(value, spec)
