"""Known factors written in the formula language: the seed trajectories of the generator,
the library baseline's starting points and the ML alphas' ``library`` features.

Each entry is a family and a formula text. ``known_factors(vocab)`` keeps the ones whose
operands exist in a vocabulary (and that fit its limits), so one library serves a daily
equity panel, a monthly asset-class panel and the macro strategies alike. Macro entries
use the bundled dataset's series ids (``alphafactory.data.bundled``); a strategy over other
series supplies its own list through ``extra``.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from alphafactory.formula import FormulaError, GrammarState, Node, Vocabulary, parse, to_tokens


@dataclass(frozen=True)
class KnownFactor:
    family: str
    text: str


def _entries(family: str, *texts: str) -> list[KnownFactor]:
    return [KnownFactor(family, text) for text in texts]


# each asset's return over the 12 months before the last, over its volatility
TIME_SERIES_MOMENTUM = "delay(ts_sum(returns, 12), 1) / ts_std(returns, 36)"
CLASSIC_FAMILY = "classic"

LIBRARY: tuple[KnownFactor, ...] = (
    # price momentum and reversal (windows exist in the daily and the monthly configs)
    *_entries(
        "momentum",
        "rank(ts_sum(returns, 12))",
        "rank(ts_sum(returns, 250) - ts_sum(returns, 20))",
        "rank(pct_change(close, 12))",
        "rank(pct_change(close, 6))",
        "rank(ts_mean(returns, 60))",
        "rank(close / ts_max(close, 250))",
        "zscore(pct_change(close, 24) - pct_change(close, 1))",
    ),
    *_entries(
        "reversal",
        "-rank(pct_change(close, 1))",
        "-rank(ts_sum(returns, 5))",
        "-rank(delta(close, 3))",
        "-rank(close / ts_mean(close, 20) - 1)",
        "-zscore(returns)",
    ),
    *_entries(
        "volatility",
        "-rank(ts_std(returns, 20))",
        "-rank(ts_std(returns, 60))",
        "-rank(ts_std(returns, 12))",
        "-rank((high - low) / close)",
        "-rank(ts_max(returns, 20) - ts_min(returns, 20))",
    ),
    *_entries(
        "liquidity",
        "-rank(ts_mean(volume, 20))",
        "rank(delta(log(volume), 5))",
        "-rank(ts_mean(abs(returns) / volume, 20))",
        "-ts_corr(rank(volume), rank(close), 10)",
    ),
    *_entries(
        "value_quality",
        "rank(book / close)",
        "rank(earnings / close)",
        "rank(gross_profit / assets)",
        "rank((revenue - cogs) / assets)",
        "rank(delta(earnings, 12) / assets)",
    ),
    # macro factors over the bundled series: growth, inflation, term and credit spreads
    *_entries(
        "macro_growth",
        "ts_zscore(pct_change(us_realgdp, 3), 24)",
        "pct_change(us_realcons, 12)",
        "-delta(us_unemp, 3)",
        "ts_zscore(pct_change(us_realinv, 3), 12)",
        "ff_mkt_rf - ts_mean(ff_mkt_rf, 12)",
    ),
    *_entries(
        "macro_inflation",
        "-pct_change(us_core_cpi, 12)",
        "-ts_zscore(us_infl, 24)",
        "-delta(pct_change(us_core_cpi, 12), 3)",
        "pct_change(oil_brent, 6)",
        "-ts_zscore(pct_change(oil_wti, 12), 24)",
    ),
    *_entries(
        "macro_rates",
        "-ts_zscore(us_baa - us_aaa, 24)",
        "us_aaa - ff_rf * 12",
        "-delta(us_realint, 3)",
        "ts_mean(ff_hml, 12)",
        "ts_mean(ff_mom, 6)",
        "ts_mean(ff_smb, 12)",
    ),
    # the signals a quant compares a new alpha with (CLASSIC_FAMILY)
    *_entries(
        CLASSIC_FAMILY,
        # time-series momentum (Moskowitz, Ooi and Pedersen 2012)
        TIME_SERIES_MOMENTUM,
        # cross-asset momentum: the same 12-1 months return, ranked across assets
        "rank(delay(ts_sum(returns, 12), 1))",
        # term spread (a long corporate yield over the 3-month bill), level and change
        "us_aaa - us_tbill3m",
        "delta(us_aaa - us_tbill3m, 3)",
        # credit spread (BAA over AAA), level and change
        "us_baa - us_aaa",
        "-delta(us_baa - us_aaa, 3)",
    ),
)


def known_factors(
    vocab: Vocabulary, *, max_tokens: int = 64, extra: Iterable[KnownFactor] = ()
) -> list[tuple[KnownFactor, Node]]:
    """The library entries (and ``extra``) that are valid formulas in this vocabulary."""
    out = []
    for entry in (*LIBRARY, *extra):
        try:
            node = parse(entry.text, vocab.operands, vocab.config)
        except FormulaError:
            continue  # an operand this panel lacks
        if _tokens_fit(node, vocab, max_tokens):
            out.append((entry, node))
    return out


def _tokens_fit(node: Node, vocab: Vocabulary, max_tokens: int) -> bool:
    """Whether the grammar could have written this formula within ``max_tokens``: text
    allows any number as a constant and any window up to ``max_window``, the token grammar
    only the configured ones (the generator's action space)."""
    tokens = to_tokens(node)
    if len(tokens) > max_tokens or not all(token in vocab for token in tokens):
        return False
    state = GrammarState(vocab, max_tokens=max_tokens)
    try:
        for token in tokens:
            state.step(token)
    except FormulaError:
        return False
    return state.done
