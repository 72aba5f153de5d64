"""Market data: panel files, the synthetic market and the bundled real dataset."""

from alphafactory.data.errors import DataError
from alphafactory.data.panel_files import load_panel, save_panel

_SYNTHETIC = ("PlantedSignal", "SyntheticMarket", "synthetic_market")
_MACRO_MARKET = ("MacroMarket", "macro_market", "oracle_information_ratio")


def __getattr__(name: str):
    # the synthetic market needs pandas (0.4 s to import): loaded when first asked for, so
    # reading a panel file does not pay for it
    if name in _SYNTHETIC:
        from alphafactory.data import synthetic

        return getattr(synthetic, name)
    if name in _MACRO_MARKET:
        from alphafactory.data import macro_markets

        return getattr(macro_markets, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = [
    "DataError",
    "MacroMarket",
    "PlantedSignal",
    "SyntheticMarket",
    "load_panel",
    "macro_market",
    "oracle_information_ratio",
    "save_panel",
    "synthetic_market",
]
