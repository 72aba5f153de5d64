"""Kafka topic names (fixed by the contract in DESIGN.md; the dead-letter topic is ours)."""

MACRO_RELEASES = "macro.releases"
MARKET_DATA = "market.data"
GENERATION_REQUESTS = "alpha.generation.requests"
BACKTEST_RESULTS = "alpha.backtest.results"
PORTFOLIO_REBALANCES = "portfolio.rebalances"
DEAD_LETTERS = "alphafactory.dead-letters"

ALL_TOPICS = (
    MACRO_RELEASES,
    MARKET_DATA,
    GENERATION_REQUESTS,
    BACKTEST_RESULTS,
    PORTFOLIO_REBALANCES,
    DEAD_LETTERS,
)
