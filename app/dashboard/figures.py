"""The dashboard's Plotly figures, each returned as the JSON of a figure: a page puts it
in a ``data-figure`` attribute (autoescaped like any value) and ``static/dashboard.js``
draws it with the plotly.js the server itself serves."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd
import plotly.graph_objects as go
import plotly.io

LAYOUT = {
    "template": "plotly_white",
    "height": 420,
    "margin": {"l": 60, "r": 20, "t": 50, "b": 50},
    "legend": {"orientation": "h", "y": -0.15},
    "font": {"family": "system-ui, sans-serif", "size": 12},
}


def _json(figure: go.Figure) -> str:
    return plotly.io.to_json(figure, validate=True, pretty=False)


def positions_bars(positions: Sequence) -> str:
    """Target weight per asset, a bar group per strategy (``storage.operations.Position``
    rows)."""
    figure = go.Figure(layout={**LAYOUT, "barmode": "group"})
    by_strategy: dict[str, list] = {}
    for row in positions:
        by_strategy.setdefault(row.strategy_id, []).append(row)
    for strategy_id, rows in by_strategy.items():
        figure.add_bar(name=strategy_id, x=[r.asset for r in rows], y=[r.weight for r in rows])
    figure.update_layout(title="Latest target weights", yaxis={"tickformat": ".0%"})
    return _json(figure)


def growth_lines(series: dict[str, pd.Series], title: str) -> str:
    """Growth of 1 of each return series (compounded), one line each."""
    figure = go.Figure(layout=LAYOUT)
    for name, values in series.items():
        wealth = np.cumprod(1.0 + np.nan_to_num(values.to_numpy(np.float64)))
        figure.add_scatter(name=name, x=_dates(values.index), y=wealth, mode="lines")
    figure.update_layout(
        title=f"{title}: growth of 1, each allocation held until the next",
        yaxis={"title": "growth of 1"},
    )
    return _json(figure)


def drawdown_lines(series: dict[str, pd.Series]) -> str:
    figure = go.Figure(layout=LAYOUT)
    for name, values in series.items():
        wealth = np.cumprod(1.0 + np.nan_to_num(values.to_numpy(np.float64)))
        drawdown = wealth / np.maximum.accumulate(wealth) - 1.0
        figure.add_scatter(name=name, x=_dates(values.index), y=drawdown, mode="lines")
    figure.update_layout(title="Drawdown", yaxis={"tickformat": ".0%"})
    return _json(figure)


def walkforward_figures(stored_series: dict[str, dict[str, list]]) -> dict[str, str]:
    """Growth and drawdown of a stored walk-forward report's series
    (``{name: {"dates": [...], "returns": [...]}}``)."""
    series = {
        name: pd.Series(
            np.array([np.nan if r is None else r for r in data["returns"]], dtype=np.float64),
            index=pd.DatetimeIndex(data["dates"]),
        )
        for name, data in stored_series.items()
        if data.get("dates")
    }
    if not series:
        return {}
    return {"growth": growth_lines(series, "Out of sample"), "drawdown": drawdown_lines(series)}


def _dates(index: pd.Index) -> list[str]:
    return [f"{pd.Timestamp(when):%Y-%m-%d}" for when in index]
