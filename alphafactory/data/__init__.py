"""Market data: panel files, the synthetic market and the bundled real dataset."""

from alphafactory.data.errors import DataError
from alphafactory.data.panel_files import load_panel, save_panel

_SYNTHETIC = ("PlantedSignal", "SyntheticMarket", "synthetic_market")


def __getattr__(name: str):
    # the synthetic market needs pandas (0.4 s to import): loaded when first asked for, so
    # reading a panel file does not pay for it
    if name in _SYNTHETIC:
        from alphafactory.data import synthetic

        return getattr(synthetic, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = [
    "DataError",
    "PlantedSignal",
    "SyntheticMarket",
    "load_panel",
    "save_panel",
    "synthetic_market",
]
