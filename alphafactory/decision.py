"""One strategy's decision at one decision time: what it may see, which formulas qualify,
and the target weights. Pure; the workers and the allocator call it with data read from
Postgres as of the decision time, and the historical replay calls it the same way.

The decision panel (point-in-time): the market panel's dates whose data had been
published by the decision time (a date's data at the end of its New York day), the last
``history_rows`` of them. The decision is made ``offset`` after the last row's close (a
release that triggers it comes mid-period); the decision row sees every release made by
the decision time, and each training row is its twin: it sees the releases made by the
same ``offset`` past its own close. So every operator spans the same periods at the
decision as on the training rows, whatever each series' release lag (``delta(x, 1)`` is
one period of ``x`` on every row, never two on the last). A series with no release for
``stale_after`` times its cadence is missing, not carried forward. A release after the
decision time is never read: the caller passes only releases made by then, and
``decision_panel`` checks it.

Execution lag: a decision's positions earn from the second close after it
(``alphafactory.performance.held_returns``), so a training row's signal, made ``offset``
past its close, is scored against the return of the period after next too
(``EXECUTION_LAG``): what is scored is what would have been held.

Qualification scores each formula over the last ``training_months`` rows before the
decision row (the decision row has no forward return yet, so it is never scored), on the
active return of the position a tilt or long-only strategy would build from it alone at
each of those rows (``alphafactory.traded``; a long-short strategy: the quantile
long-short).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime

import numpy as np
import pandas as pd

from alphafactory import portfolio
from alphafactory.clock import known_dates, visible_from
from alphafactory.combinations import combination
from alphafactory.constructions import Market, construction, standardize
from alphafactory.data.releases import STALE_AFTER_CADENCES, point_in_time_macro
from alphafactory.decision_inputs import (
    DecisionError,
    benchmark_weights,
    decision_market,
    exposures_of,
    position_rule,
)
from alphafactory.exposures import ClassExposure
from alphafactory.formula import Node
from alphafactory.metrics import FactorMetrics, infer_periods_per_year, parse_definition
from alphafactory.ml.cv import CVError
from alphafactory.ml.models import ModelError
from alphafactory.panel import Panel
from alphafactory.pool import Candidates, Member, Record, carry, confirmed, record_weights
from alphafactory.risk import forecasts
from alphafactory.scoring import FormulaScorer, ScoringOptions, config_for_panel, lagged_returns
from alphafactory.strategy import Strategy, Universe

# periods between a decision's last row and the first return its positions earn, beyond
# the next (module doc): held_returns holds from the second close after the decision
EXECUTION_LAG = 1


def universe_of(market: Panel, universe: Universe) -> Panel:
    """The strategy's assets of ``market``: those listed (``market`` holds only them
    already) and, with a group, those whose latest stored code is one of its codes."""
    if not universe.group:
        return market
    if universe.group not in market.groups:
        raise DecisionError(
            f"universe.group {universe.group!r} is not stored; the stored groups are "
            f"{sorted(market.groups) or 'none'}"
        )
    codes = market.groups[universe.group]
    stored = codes >= 0  # -1: no code stored for that date
    last = len(codes) - 1 - np.argmax(stored[::-1], axis=0)
    latest = np.where(stored.any(axis=0), codes[last, np.arange(codes.shape[1])], -1)
    keep = np.isin(latest, universe.group_codes)
    if not keep.any():
        raise DecisionError(
            f"no asset has universe.group {universe.group!r} code in "
            f"{list(universe.group_codes)} on {str(market.dates[-1])[:10]}"
        )
    return market.columns(keep)


def decision_rows(dates: np.ndarray, decision_time: datetime, history_rows: int) -> tuple[int, int]:
    """(first, stop): the rows of a market panel's ``dates`` that a decision at
    ``decision_time`` uses, the last ``history_rows`` dates published by then."""
    cutoff = pd.Timestamp(decision_time)
    published = known_dates(dates, cutoff)
    stop = int(published.sum())
    if stop < 2 or not published[:stop].all():
        raise DecisionError(f"fewer than 2 market dates were published by {cutoff.isoformat()}")
    return max(0, stop - history_rows), stop


def decision_panel(
    market: Panel,
    releases: pd.DataFrame,
    decision_time: datetime,
    history_rows: int,
    *,
    twin_rows: bool = True,
    stale_after: float | None = STALE_AFTER_CADENCES,
) -> Panel:
    """The panel a decision at ``decision_time`` may use (module doc); without
    ``twin_rows``, every row sees what was released by its own close (a report's view of
    history, not a decision's)."""
    cutoff = pd.Timestamp(decision_time)
    if cutoff.tzinfo is None:
        raise DecisionError(f"decision_time {decision_time!r} must carry a time zone")
    late = releases["released_at"] > cutoff
    if late.any():
        first = releases.loc[late, "event_id"].iloc[0]
        raise DecisionError(
            f"{int(late.sum())} release(s) after the decision time {cutoff.isoformat()} were "
            f"passed in (e.g. {first!r}): only data released by then may be used"
        )
    panel = market.rows(*decision_rows(market.dates, cutoff, history_rows))
    macro: dict[str, np.ndarray] = {}
    if len(releases):
        # the last row's cutoff moves to the decision time, every other row's with it
        offset = cutoff - visible_from(panel.dates[-1:])[0] if twin_rows else None
        macro = point_in_time_macro(releases, panel.dates, offset=offset, stale_after=stale_after)
    return Panel(panel.dates, panel.assets, dict(panel.fields), macro, dict(panel.groups))


@dataclass(frozen=True)
class Evaluation:
    formula: str
    metrics: FactorMetrics | None  # None: the formula is not valid on this panel
    qualified: bool


def evaluate_formulas(
    panel: Panel, strategy: Strategy, formulas: Sequence[str | Node]
) -> list[Evaluation]:
    """Metrics over the training window and the strategy's alpha definition, per formula."""
    scorer = _scorer(panel, strategy)
    definition = parse_definition(strategy.alpha.definition)
    out = []
    for formula, metrics in zip(formulas, scorer.score(list(formulas)), strict=True):
        qualified = metrics is not None and bool(definition.evaluate(metrics))
        out.append(Evaluation(str(formula), metrics, qualified))
    return out


@dataclass(frozen=True)
class Allocation:
    weights: dict[str, float]  # asset -> target weight
    pool: dict[str, float]  # formula -> weight in the combined signal
    # asset -> the combined signal on the decision row (empty: no alpha in the pool)
    signal: dict[str, float] = field(default_factory=dict)
    # the persistent pool's changes (alphafactory.pool): formula -> the sign it entered
    # with, formula -> why it retired, and each member's out-of-sample record
    entered: dict[str, float] = field(default_factory=dict)
    retired: dict[str, str] = field(default_factory=dict)
    records: dict[str, Record] = field(default_factory=dict)
    # members held but not traded yet (alphafactory.pool's probation): no weight in ``pool``
    probation: tuple[str, ...] = ()
    # the Sharpe ratio of this position's construction over the training window, held as
    # out of sample (portfolio.in_sample_sharpe); NaN for a learned combination
    in_sample_sharpe: float = float("nan")
    # per class of each stored group: weight, active weight, forecast (alphafactory.exposures)
    exposures: tuple[ClassExposure, ...] = ()


def valid_formulas(panel: Panel, strategy: Strategy, formulas: Sequence[str]) -> list[str]:
    """The ``formulas`` that parse and type-check on ``panel`` (its fields and series)."""
    scorer = _scorer(panel, strategy)
    return [f for f in formulas if scorer.prepare(f) is not None]


def alpha_signals(panel: Panel, strategy: Strategy, alphas: Sequence[str]) -> np.ndarray:
    """The alphas' values per asset on the decision panel, (K, T, N)."""
    if not alphas:
        return np.empty((0, *panel.shape))
    return _scorer(panel, strategy).signals(list(alphas))


def allocate(
    panel: Panel,
    strategy: Strategy,
    alphas: Sequence[str],
    scores: Sequence[float],
    *,
    signals: np.ndarray | None = None,
    signs: Sequence[float] | None = None,
    members: Sequence[Member] = (),
    previous: Mapping[str, float] | None = None,
) -> Allocation:
    """Carry the persistent pool's ``members`` (``alphafactory.pool``: their records,
    retirements), add the newly admitted ``alphas`` (best ``scores`` first, admitted with
    ``signs``, +1 by default), prune, combine the members whose probation is over and
    turn the combined signal on the decision row into weights. No such alpha: the
    benchmark (risk parity for a tilt or long-only strategy, flat for long-short).
    ``signals``: the alphas' ``alpha_signals``, when the caller has them (variants share
    them); ``previous``: the weights the strategy holds (its last allocation), which a
    tilt pays the strategy's costs to trade away from."""
    returns = panel.returns
    benchmark = benchmark_weights(panel, strategy, len(returns))
    market = decision_market(panel, strategy, benchmark, previous)
    if signals is None:
        signals = alpha_signals(panel, strategy, alphas)
    signs = np.ones(len(alphas)) if signs is None else np.asarray(signs, dtype=float)
    # the returns each row's signal would have earned, held from a period later
    earned = lagged_returns(returns, EXECUTION_LAG)
    found = carry(
        _scorer(panel, strategy),
        earned,
        members,
        Candidates(list(alphas), np.asarray(scores, dtype=float), signs, signals),
        retire_after=strategy.pool.retire_after,
        retire_below=strategy.pool.retire_below,
        retire_t=strategy.pool.retire_t,
    )
    window = slice(-strategy.alpha.training_months - 1, None)
    rules = strategy.pool
    kept = portfolio.prune(
        found.scores,
        found.signals[:, window],
        max_correlation=rules.max_correlation,
        size=rules.size,
        settled=np.array([r is not None for r in found.records], dtype=bool),
    )
    held = {m.formula for m in members}
    retired = found.retired | {
        f: "crowded out of the pool by its size"
        for k, f in enumerate(found.formulas)
        if f in held and k not in kept
    }
    member_records = found.retired_records | {
        f: r for f, r in zip(found.formulas, found.records, strict=True) if r is not None
    }
    entered = {found.formulas[k]: float(found.signs[k]) for k in kept if found.records[k] is None}
    on_trial = {
        k: not confirmed(
            found.records[k], probation=rules.probation, retire_below=rules.retire_below
        )
        for k in kept
    }
    probation = tuple(found.formulas[k] for k in kept if on_trial[k])
    kept = [k for k in kept if not on_trial[k]]
    assets = [str(a) for a in panel.assets]
    if not kept:
        flat = construction(strategy.portfolio.kind).without_alpha(benchmark)
        return Allocation(
            dict(zip(assets, flat.tolist(), strict=True)),
            {},
            entered=entered,
            retired=retired,
            records=member_records,
            probation=probation,
            in_sample_sharpe=_in_sample(panel, strategy, earned, window, market),
            exposures=exposures_of(panel, strategy, flat, benchmark),
        )
    pool = found.signals[kept][:, window]
    signal, combo = _combine(pool, earned, window, strategy)
    if combination(strategy.combination.method).weighted_by_record:
        combo = record_weights(
            combo,
            [found.records[k] for k in kept],
            found.signs[kept],
            mature=rules.retire_after,
        )
        signal = portfolio.combined_signal(pool, combo)
    sizing = position_rule(strategy, infer_periods_per_year(panel.dates)).sizing
    weights = construction(strategy.portfolio.kind).decide(signal, sizing, market)
    return Allocation(
        dict(zip(assets, weights.tolist(), strict=True)),
        {found.formulas[k]: float(w) for k, w in zip(kept, combo, strict=True)},
        dict(zip(assets, np.asarray(signal, dtype=float).tolist(), strict=True)),
        entered,
        retired,
        member_records,
        probation,
        _in_sample(panel, strategy, earned, window, market, pool, combo),
        exposures_of(
            panel,
            strategy,
            weights,
            benchmark,
            forecasts(standardize(signal), market.risks[0], sizing.information_coefficient),
        ),
    )


def _combine(pool: np.ndarray, returns: np.ndarray, window: slice, strategy: Strategy):
    """The combined signal on the decision row and each alpha's weight in it, by the
    strategy's method (``alphafactory.combinations``)."""
    method = combination(strategy.combination.method)
    try:
        return method.combine(
            pool, _forward(returns, window), returns[window], strategy.combination.ridge_alpha
        )
    except (CVError, ModelError) as error:
        raise DecisionError(f"combination {method.name!r} cannot be fitted: {error}") from error


def _forward(earned: np.ndarray, window: slice) -> np.ndarray:
    """Row t: the return a position taken at row t earns (``earned`` one row on), over
    ``window``; NaN on the last row, whose return is not known yet."""
    return np.vstack([earned[1:], np.full((1, earned.shape[1]), np.nan)])[window]


def _in_sample(
    panel: Panel,
    strategy: Strategy,
    earned: np.ndarray,
    window: slice,
    market: Market,
    pool: np.ndarray | None = None,
    combo: np.ndarray | None = None,
) -> float:
    """The allocation's position rebuilt at every row of the training window against
    the decision's benchmark and risk model, and held as out of sample
    (``portfolio.in_sample_sharpe``); NaN for a learned combination, which has no
    per-row signal to rebuild."""
    if combination(strategy.combination.method).learned and pool is not None:
        return float("nan")
    forward = _forward(earned, window)
    if pool is None:
        pool, combo = np.empty((0, *forward.shape)), np.zeros(0)
    periods_per_year = infer_periods_per_year(panel.dates)
    return portfolio.in_sample_sharpe(
        pool,
        combo,
        forward,
        strategy.portfolio.kind,
        periods_per_year=periods_per_year,
        # sized as the decision's optimiser sizes it: the closed form raised to the budget
        sizing=replace(position_rule(strategy, periods_per_year).sizing, budget_rounds=3),
        market=Market(market.benchmark, market.risks),
    )


def _scorer(panel: Panel, strategy: Strategy) -> FormulaScorer:
    rows = panel.shape[0]
    score_from = max(0, rows - 1 - strategy.alpha.training_months)
    if rows - score_from < 3:
        raise DecisionError(f"the decision panel has {rows} rows: too short to score")
    return FormulaScorer(
        panel,
        config=config_for_panel(panel),
        options=scoring_options(strategy, infer_periods_per_year(panel.dates)),
        score_from=score_from,
    )


def scoring_options(strategy: Strategy, periods_per_year: float = 12.0) -> ScoringOptions:
    """How a strategy's candidates are scored: macro forecasts shrink toward the asset
    classes its risk parity uses (``portfolio.risk_parity_group``), when it names them,
    and a tilt or long-only strategy judges the active return of the position it would
    hold from each candidate alone (``alphafactory.traded``); a long-short one keeps the
    quantile long-short."""
    judged_on_position = construction(strategy.portfolio.kind).judged_on_position
    judged = position_rule(strategy, periods_per_year) if judged_on_position else None
    return ScoringOptions(
        class_group=strategy.portfolio.risk_parity_group or None,
        execution_lag=EXECUTION_LAG,
        position=judged,
    )
