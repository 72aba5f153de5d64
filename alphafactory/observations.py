"""Market observations as columns: what a loader stores and a reader resolves.

One entry per (asset, date, available_at) with a value per field: a panel file's rows, a
market-data event's fields, or a dense :class:`Panel` spread out at its dates' visibility
(``alphafactory.clock.visible_from``). Two entries with the same (asset, date) and different
``available_at`` are two vintages: the later one is a revision. A group's integer codes
travel as the field ``group:<name>`` (``GROUP_PREFIX``) so a reader turns them back into a
group.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np

from alphafactory.clock import visible_from
from alphafactory.panel import Panel

GROUP_PREFIX = "group:"


@dataclass(frozen=True)
class MarketObservations:
    asset_names: np.ndarray  # (k,) str, unique
    asset_index: np.ndarray  # (n,) int, each entry's asset as a position in asset_names
    dates: np.ndarray  # (n,) datetime64[D]
    available_at: np.ndarray  # (n,) datetime64[us], UTC
    fields: Mapping[str, np.ndarray]  # field -> (n,) float64, NaN: the vintage has no value

    def __post_init__(self) -> None:
        n = len(self.asset_index)
        if n and not 0 <= int(self.asset_index.min()) <= int(self.asset_index.max()) < len(
            self.asset_names
        ):
            raise ValueError(f"asset_index must lie in [0, {len(self.asset_names)})")
        for name, column in {"dates": self.dates, "available_at": self.available_at}.items():
            if len(column) != n:
                raise ValueError(f"{name} has {len(column)} entries, assets {n}")
        for name, values in self.fields.items():
            if values.shape != (n,):
                raise ValueError(f"field {name!r} has shape {values.shape}, expected ({n},)")

    def __len__(self) -> int:
        return len(self.asset_index)

    @property
    def assets(self) -> np.ndarray:
        """Each entry's asset name."""
        return self.asset_names[self.asset_index]

    @property
    def count(self) -> int:
        """Observations held: entries times fields."""
        return len(self) * len(self.fields)

    @classmethod
    def from_panel(cls, panel: Panel) -> MarketObservations:
        """Every cell of ``panel``'s fields and groups, available at the end of its date's
        New York day; a missing group code (-1) is NaN."""
        t, n = panel.shape
        visible = visible_from(panel.dates).tz_convert("UTC").tz_localize(None)
        groups = {
            GROUP_PREFIX + name: np.where(codes >= 0, codes, np.nan).astype(np.float64)
            for name, codes in panel.groups.items()
        }
        columns = {**panel.fields, **groups}
        return cls(
            asset_names=panel.assets.astype(str),
            asset_index=np.tile(np.arange(n), t),
            dates=np.repeat(panel.dates.astype("datetime64[D]"), n),
            available_at=np.repeat(visible.to_numpy().astype("datetime64[us]"), n),
            fields={name: np.asarray(v, np.float64).reshape(-1) for name, v in columns.items()},
        )
