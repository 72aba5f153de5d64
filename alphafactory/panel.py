"""The in-memory market panel every formula is evaluated on.

A panel is dense: ``T`` decision dates (ascending, unique) by ``N`` assets. Per-asset
fields are ``(T, N)`` float arrays (NaN where missing); macro series are ``(T,)`` arrays
aligned to the same dates, holding at row ``t`` only what had been released by date ``t``
(the point-in-time loaders build them that way). ``returns[t, i]`` is the simple return of
asset ``i`` from date ``t-1`` to date ``t``.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np


class PanelError(ValueError):
    """A panel's arrays disagree in shape, order or type."""


@dataclass(frozen=True)
class Panel:
    dates: np.ndarray  # (T,) datetime64[ns], strictly increasing
    assets: np.ndarray  # (N,) str
    fields: dict[str, np.ndarray] = field(default_factory=dict)  # name -> (T, N) float
    macro: dict[str, np.ndarray] = field(default_factory=dict)  # series id -> (T,) float
    groups: dict[str, np.ndarray] = field(default_factory=dict)  # name -> (T, N) int codes

    def __post_init__(self) -> None:
        t, n = len(self.dates), len(self.assets)
        if t and np.any(np.diff(self.dates.astype("datetime64[ns]").astype(np.int64)) <= 0):
            raise PanelError("panel dates must be strictly increasing")
        for name, values in self.fields.items():
            if values.shape != (t, n):
                raise PanelError(f"field {name!r} has shape {values.shape}, expected {(t, n)}")
        for name, values in self.groups.items():
            if values.shape != (t, n):
                raise PanelError(f"group {name!r} has shape {values.shape}, expected {(t, n)}")
        for name, values in self.macro.items():
            if values.shape != (t,):
                raise PanelError(f"macro series {name!r} has shape {values.shape}, expected {(t,)}")
        overlap = (
            (set(self.fields) & set(self.macro))
            | (set(self.fields) & set(self.groups))
            | (set(self.macro) & set(self.groups))
        )
        if overlap:
            raise PanelError(
                f"names used in more than one of fields, macro series and groups: {sorted(overlap)}"
            )

    @property
    def shape(self) -> tuple[int, int]:
        return len(self.dates), len(self.assets)

    @property
    def operands(self) -> set[str]:
        """Every name a formula may use as an operand."""
        return set(self.fields) | set(self.macro) | set(self.groups)

    @property
    def operand_kinds(self) -> dict[str, str]:
        """Each operand name with its kind for the formula language: panel, macro or group."""
        kinds = dict.fromkeys(self.fields, "panel")
        kinds.update(dict.fromkeys(self.macro, "macro"))
        kinds.update(dict.fromkeys(self.groups, "group"))
        return kinds

    @property
    def returns(self) -> np.ndarray:
        """Per-asset simple returns: the ``returns`` field, else derived from ``close``."""
        if "returns" in self.fields:
            return self.fields["returns"]
        if "close" in self.fields:
            close = self.fields["close"]
            out = np.full_like(close, np.nan, dtype=np.float64)
            with np.errstate(divide="ignore", invalid="ignore"):
                out[1:] = close[1:] / close[:-1] - 1.0
            return out
        raise PanelError("the panel has neither a 'returns' nor a 'close' field")

    def head(self, rows: int) -> Panel:
        """The first ``rows`` dates: what was known up to and including date ``rows - 1``."""
        return self.rows(0, rows)

    def columns(self, keep: np.ndarray) -> Panel:
        """The assets where the boolean mask ``keep`` is True (every date)."""
        return Panel(
            dates=self.dates,
            assets=self.assets[keep],
            fields={k: v[:, keep] for k, v in self.fields.items()},
            macro=dict(self.macro),
            groups={k: v[:, keep] for k, v in self.groups.items()},
        )

    def rows(self, start: int, stop: int) -> Panel:
        """Dates ``start .. stop - 1`` (views): e.g. the ``lookback + 1`` rows a formula needs."""
        return Panel(
            dates=self.dates[start:stop],
            assets=self.assets,
            fields={k: v[start:stop] for k, v in self.fields.items()},
            macro={k: v[start:stop] for k, v in self.macro.items()},
            groups={k: v[start:stop] for k, v in self.groups.items()},
        )
