"""Market data: panel files, the synthetic market and the bundled real dataset."""

from alphafactory.data.errors import DataError
from alphafactory.data.panel_files import load_panel, save_panel
from alphafactory.data.synthetic import PlantedSignal, SyntheticMarket, synthetic_market

__all__ = [
    "DataError",
    "PlantedSignal",
    "SyntheticMarket",
    "load_panel",
    "save_panel",
    "synthetic_market",
]
