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

# The pipeline's consumer groups, each with the topic it reads (its lag: alphafactory status)
RELEASE_HANDLER_GROUP = "alphafactory-release-handler"
MARKET_DATA_GROUP = "alphafactory-market-data"
GENERATOR_GROUP = "alphafactory-generator"
ALLOCATOR_GROUP = "alphafactory-allocator"
CONSUMER_GROUPS = {
    RELEASE_HANDLER_GROUP: MACRO_RELEASES,
    MARKET_DATA_GROUP: MARKET_DATA,
    GENERATOR_GROUP: GENERATION_REQUESTS,
    ALLOCATOR_GROUP: BACKTEST_RESULTS,
}
