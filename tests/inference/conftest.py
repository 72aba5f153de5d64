"""A small monthly market with macro series, shared by the generator tests."""

from __future__ import annotations

import pytest

from alphafactory.data import synthetic_market
from alphafactory.formula import LanguageConfig, Vocabulary


@pytest.fixture(scope="session")
def panel():
    """10 assets x 130 months, macro series M0000..M0004."""
    return synthetic_market(n_assets=10, n_dates=130, n_macro=5, seed=4, frequency="M").panel


@pytest.fixture(scope="session")
def vocab(panel):
    return Vocabulary(panel.operand_kinds, LanguageConfig.monthly())
