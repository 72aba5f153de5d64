"""Small random panels with missing values, ties, macro series and groups, for tests."""

from __future__ import annotations

import numpy as np

from alphafactory.panel import Panel


def make_panel(rows: int = 60, assets: int = 7, seed: int = 0, missing: float = 0.08) -> Panel:
    rng = np.random.default_rng(seed)

    def field(scale=1.0, loc=0.0):
        values = loc + scale * rng.standard_normal((rows, assets))
        values[rng.random((rows, assets)) < missing] = np.nan
        return values

    close = 50.0 * np.exp(np.cumsum(0.02 * rng.standard_normal((rows, assets)), axis=0))
    close[rng.random((rows, assets)) < missing] = np.nan
    volume = np.round(rng.lognormal(10, 1, (rows, assets)), -3)  # rounded: many ties
    volume[rng.random((rows, assets)) < missing] = np.nan
    cpi = 100 + np.cumsum(rng.standard_normal(rows))
    oil = rng.standard_normal(rows)
    oil[rng.random(rows) < missing] = np.nan
    return Panel(
        dates=np.datetime64("2020-01-01") + np.arange(rows).astype("timedelta64[D]"),
        assets=np.array([f"A{i}" for i in range(assets)]),
        fields={"close": close, "volume": volume, "returns": field(0.02)},
        macro={"cpi": cpi, "oil": oil},
        groups={"sector": rng.integers(-1, 3, (rows, assets))},
    )


def scrambled_after(panel: Panel, row: int, seed: int) -> Panel:
    """The same panel with every value after ``row`` replaced by random numbers."""
    rng = np.random.default_rng(seed)

    def scramble(values, kind=float):
        out = values.copy()
        tail = out[row + 1 :]
        if kind is int:
            tail[...] = rng.integers(-1, 4, tail.shape)
        else:
            tail[...] = rng.standard_normal(tail.shape) * 10
            tail[rng.random(tail.shape) < 0.1] = np.nan
        return out

    return Panel(
        dates=panel.dates,
        assets=panel.assets,
        fields={k: scramble(v) for k, v in panel.fields.items()},
        macro={k: scramble(v) for k, v in panel.macro.items()},
        groups={k: scramble(v, int) for k, v in panel.groups.items()},
    )


def assert_bit_identical(actual: np.ndarray, expected: np.ndarray, message: str = "") -> None:
    """Same shape, same missing positions, and identical bits everywhere else."""
    assert actual.shape == expected.shape, message
    missing = np.isnan(expected)
    np.testing.assert_array_equal(np.isnan(actual), missing, err_msg=message)
    np.testing.assert_array_equal(
        actual[~missing].view(np.uint64 if actual.dtype == np.float64 else np.uint32),
        expected[~missing].view(np.uint64 if expected.dtype == np.float64 else np.uint32),
        err_msg=message,
    )
