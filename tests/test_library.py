"""The known-factor library's classic signals: valid in the bundled strategy's language,
and time-series momentum computed as Moskowitz, Ooi and Pedersen define it."""

from __future__ import annotations

import numpy as np
import pandas as pd

from alphafactory.data import synthetic_market
from alphafactory.data.bundled import RELEASE_RULES
from alphafactory.evaluate.evaluator import evaluate
from alphafactory.formula import LanguageConfig, Vocabulary
from alphafactory.library import CLASSIC_FAMILY, LIBRARY, TIME_SERIES_MOMENTUM, known_factors

MONTHLY = LanguageConfig.monthly()


def test_every_classic_signal_is_a_formula_of_the_bundled_monthly_language():
    operands = {"returns": "panel", "close": "panel"} | dict.fromkeys(RELEASE_RULES, "macro")
    vocab = Vocabulary(operands, MONTHLY)
    classic = [e.text for e in LIBRARY if e.family == CLASSIC_FAMILY]
    kept = [entry.text for entry, _ in known_factors(vocab, max_tokens=12)]
    assert len(classic) == 6 and set(classic) <= set(kept)
    texts = [e.text for e in LIBRARY]
    assert len(texts) == len(set(texts))  # no formula twice in the library


def test_time_series_momentum_is_the_12_1_month_return_over_its_volatility():
    panel = synthetic_market(n_assets=4, n_dates=60, seed=5, frequency="M").panel
    got = evaluate(TIME_SERIES_MOMENTUM, panel, config=MONTHLY)
    returns = pd.DataFrame(panel.returns)
    past_year = returns.rolling(12).sum().shift(1)  # months t-12 .. t-1
    volatility = returns.rolling(36).std(ddof=1)
    want = (past_year / volatility).to_numpy()
    assert np.isfinite(want[36:]).all()
    np.testing.assert_allclose(got[36:], want[36:], rtol=1e-9)
