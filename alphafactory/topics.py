"""Kafka topic names (fixed by the contract in DESIGN.md; the dead-letter topic is ours)."""

MACRO_RELEASES = "macro.releases"
GENERATION_REQUESTS = "alpha.generation.requests"
BACKTEST_RESULTS = "alpha.backtest.results"
PORTFOLIO_REBALANCES = "portfolio.rebalances"
DEAD_LETTERS = "alphafactory.dead-letters"

ALL_TOPICS = (
    MACRO_RELEASES,
    GENERATION_REQUESTS,
    BACKTEST_RESULTS,
    PORTFOLIO_REBALANCES,
    DEAD_LETTERS,
)
