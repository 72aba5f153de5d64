"""The long-short and long-only books' decisions (alphafactory.optimiser.solve_book, through
the constructions): the same forecasts as the tilt, each book's own limits kept, costs
paid, and the closed form a candidate is scored on pointing the same way."""

from __future__ import annotations

import numpy as np
import pytest

from alphafactory.constructions import Market, PortfolioError, Sizing, construction
from alphafactory.portfolio import positions
from alphafactory.risk import shrunk_risk
from alphafactory.strategy import Strategy

RNG = np.random.default_rng(33)
VOLS = np.array([0.02, 0.03, 0.04, 0.05, 0.06, 0.04, 0.03, 0.05])


def _market(rows: int = 48) -> Market:
    returns = 0.005 + VOLS * RNG.standard_normal((rows, len(VOLS)))
    return Market(risks=(shrunk_risk(returns),))


@pytest.mark.parametrize(
    ("sizing", "net"),
    [(Sizing(gross=1.0, name_limit=0.2), 0.0), (Sizing(gross=2.0, net=0.5, name_limit=0.4), 0.5)],
)
def test_a_long_short_book_keeps_its_gross_net_and_name_limits_and_follows_the_forecast(
    sizing, net
):
    agreements = []
    for _ in range(10):
        market, signal = _market(), RNG.standard_normal(len(VOLS))
        w = construction("long_short").decide(signal, sizing, market)
        assert w.sum() == pytest.approx(net, abs=1e-6)
        assert np.abs(w).sum() <= sizing.gross + 1e-6
        assert np.abs(w).max() <= sizing.name_limit + 1e-6
        scored = positions(signal, "long_short", sizing, market)
        agreements.append(np.corrcoef(w, scored)[0, 1])
        assert w[np.argmax(signal)] > 0 > w[np.argmin(signal)] - net / len(VOLS)
    assert np.mean(agreements) > 0.7  # the closed form it is scored on points the same way


def test_a_long_only_book_is_fully_invested_without_shorts_and_overweights_the_forecast():
    sizing = Sizing(name_limit=0.3, risk_aversion=0.1)
    for _ in range(10):
        market, signal = _market(), RNG.standard_normal(len(VOLS))
        w = construction("long_only").decide(signal, sizing, market)
        assert w.sum() == pytest.approx(1.0) and (w >= 0).all()
        assert w.max() <= 0.3 + 1e-6
        assert w[np.argmax(signal)] > w[np.argmin(signal)]


def test_a_book_holds_what_it_held_unless_the_forecast_pays_for_trading():
    market, signal = _market(), RNG.standard_normal(len(VOLS))
    sizing = Sizing(name_limit=0.25)
    held = construction("long_short").decide(-signal, sizing, market)
    for rate, moved in ((0.5, False), (1e-6, True)):
        priced = Market(risks=market.risks, previous=held, costs=np.full(len(VOLS), rate))
        w = construction("long_short").decide(signal, sizing, priced)
        assert bool(np.abs(w - held).max() > 0.1) == moved


def test_an_asset_without_a_risk_model_is_not_held():
    returns = 0.005 + VOLS * RNG.standard_normal((48, len(VOLS)))
    returns[:-1, 2] = np.nan  # one return: no risk model
    market = Market(risks=(shrunk_risk(returns),))
    signal = np.zeros(len(VOLS))
    signal[2] = 5.0
    for kind in ("long_short", "long_only"):
        w = construction(kind).decide(signal, Sizing(name_limit=0.5), market)
        assert w[2] == pytest.approx(0.0, abs=1e-9)


def test_limits_that_leave_nothing_feasible_are_named():
    with pytest.raises(PortfolioError, match="cannot hold a net 1 with a name limit of 0.1 on 8"):
        construction("long_only").decide(np.ones(len(VOLS)), Sizing(name_limit=0.1), _market())
    with pytest.raises(PortfolioError, match="a long-short book's decision needs the risk model"):
        construction("long_short").decide(np.ones(len(VOLS)), Sizing(), Market())
    with pytest.raises(ValueError, match=r"portfolio.net 1.5 is more than the book's gross 1"):
        Strategy.model_validate({"id": "s", "portfolio": {"net": 1.5}})
