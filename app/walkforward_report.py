"""The walk-forward's report, built from what the pipeline stored: ``report.json``
(contract in DESIGN.md) and the series its HTML page plots.

Per variant: the out-of-sample record (``alphafactory.walkforward.variant_record``) of its
allocations held month by month (``performance.held_returns``) against the strategy's
risk-parity benchmark at the same decisions, alpha survival and pool sizes. Per
generator version: its cutoff, the decisions it served, its hit rate (alphas per
candidate) and the IC decay of the alphas it wrote: their mean signed rank IC over the
training window before the decision and in each of the 12 months after it (the sign is
the in-sample one, so a reversed alpha counts the way the combination used it).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime

import numpy as np
import pandas as pd

from alphafactory.admission import describe
from alphafactory.constructions import construction
from alphafactory.costs import describe_costs
from alphafactory.decision_inputs import trading_costs
from alphafactory.metrics import infer_periods_per_year
from alphafactory.settings import Settings
from alphafactory.strategy import Strategy

DECAY_MONTHS = 12
MAX_ALPHAS_PER_VERSION = 200  # IC decay on an even sample: a version may write thousands


def build_report(settings: Settings, strategy: Strategy, plan) -> tuple[dict, dict]:
    """(report.json's object, {variant: monthly returns} for the plots)."""
    from alphafactory.variants import variant_id
    from alphafactory.walkforward import pool_size_answer
    from consumers.market_data import strategy_panel
    from storage.db import connect
    from storage.walkforward_reads import allocations_of

    ids = {name: variant_id(strategy.id, name) for name in plan.variants}
    with connect(settings.postgres.dsn("app"), autocommit=True) as conn:
        panel = strategy_panel(
            conn, strategy, datetime.now(UTC), history_rows=1_000_000, twin_rows=False
        )
        stored = allocations_of(conn, [strategy.id, *ids.values()])
        window = [a for a in stored[strategy.id] if plan.first <= a.decision_time < plan.last]
        rates = trading_costs(panel, strategy)
        benchmark = benchmark_returns(panel, strategy, window)
        benchmark_net = benchmark_returns(panel, strategy, window, costs=rates)
        cash = cash_returns(panel, strategy, window)
        periods_per_year = infer_periods_per_year(panel.dates)
        series, records = {}, {}
        for name, strategy_id in ids.items():
            allocations = [
                a for a in stored[strategy_id] if plan.first <= a.decision_time < plan.last
            ]
            if not allocations:
                continue
            series[name] = held_allocation_returns(panel, allocations)
            records[name] = _variant(conn, strategy, name, strategy_id, allocations, series[name])
            records[name] |= _against(
                series[name], benchmark, cash, allocations, records[name], periods_per_year
            )
            # the same figures net of costs, against the benchmark net of its own
            net = held_allocation_returns(panel, allocations, costs=rates)
            records[name]["net"] = _against(
                net, benchmark_net, cash, allocations, records[name], periods_per_year
            )
            records[name] |= _traded_signal_ic(panel, name, allocations)
        models = _models(conn, strategy, panel)
    series["benchmark (risk parity)"] = benchmark
    report = {
        "strategy": strategy.id,
        "from": f"{plan.first:%Y-%m}",
        "to": f"{pd.Timestamp(plan.last) - pd.Timedelta(days=1):%Y-%m}",
        "variants": records,
        "models": models,
        "pool_sizes": pool_size_answer(records),
        "settings": {
            "candidates": strategy.generation.candidates,
            "retrain_every_months": strategy.generation.retrain_every_months,
            "pool_size": strategy.pool.size,
            "alpha_definition": strategy.alpha.definition,
            "admission_control": describe(strategy.alpha.control, strategy.alpha.level),
            "benchmark": (
                "cash (a long-short book's excess is its return)"
                if construction(strategy.portfolio.kind).excess_over_cash
                else "the strategy's risk-parity mix at the same decisions"
            ),
            "periods_per_year": periods_per_year,
            "costs": describe_costs(strategy.costs),
            "data_caveats": list(strategy.universe.caveats),
        },
    }
    return report, series


def held_allocation_returns(
    panel, allocations, *, hold_last: int | None = 1, costs: np.ndarray | None = None
) -> pd.Series:
    """The return per panel date of ``allocations`` (stored, in decision order), each held
    until the next; the last one ``hold_last`` dates (None: to the panel's end); net of
    ``costs`` (per asset of ``panel``) when given."""
    from alphafactory.performance import held_returns

    decisions = pd.DatetimeIndex([a.decision_time for a in allocations]).tz_convert("UTC")
    return held_returns(
        panel.dates,
        panel.assets,
        panel.returns,
        decisions,
        [a.weights for a in allocations],
        hold_last=hold_last,
        costs=costs,
    )


def benchmark_returns(
    panel,
    strategy: Strategy,
    allocations,
    *,
    hold_last: int | None = 1,
    costs: np.ndarray | None = None,
) -> pd.Series:
    """The strategy's risk-parity mix, decided at the same times as ``allocations`` and
    held the same way (net of ``costs`` when given)."""
    from alphafactory.clock import known_dates
    from alphafactory.decision import benchmark_weights
    from alphafactory.performance import held_returns

    if not allocations:
        return pd.Series(dtype=np.float64)
    if construction(strategy.portfolio.kind).excess_over_cash:  # no benchmark
        flat = {str(a): 0.0 for a in panel.assets}
        return held_allocation_returns(
            panel, [_Held(a.decision_time, flat) for a in allocations], hold_last=hold_last
        )
    decisions = pd.DatetimeIndex([a.decision_time for a in allocations]).tz_convert("UTC")
    weights = []
    for when in decisions:
        rows = int(known_dates(panel.dates, when).sum())
        mix = benchmark_weights(panel, strategy, rows)
        weights.append(dict(zip(panel.assets.astype(str), mix.tolist(), strict=True)))
    return held_returns(
        panel.dates,
        panel.assets,
        panel.returns,
        decisions,
        weights,
        hold_last=hold_last,
        costs=costs,
    )


def cash_returns(panel, strategy: Strategy, allocations) -> pd.Series | None:
    """The universe's cash asset (``[universe] cash``) held over the same periods as
    ``allocations``; None when the strategy names none."""
    cash = strategy.universe.cash
    if not cash or not allocations:
        return None
    if cash not in panel.assets.astype(str):
        raise ValueError(
            f"universe.cash {cash!r} is not an asset of the strategy's panel; "
            f"expected one of {sorted(panel.assets.astype(str))[:10]}"
        )
    held = [_Held(a.decision_time, {cash: 1.0}) for a in allocations]
    return held_allocation_returns(panel, held)


def _variant(conn, strategy, name, strategy_id, allocations, returns) -> dict:
    from alphafactory.variant_names import VariantKind, parse
    from alphafactory.walkforward import alpha_survival
    from storage.walkforward_reads import pools_of

    variant = parse(name)
    if variant.kind in (VariantKind.BENCHMARK, VariantKind.BASELINE):
        # nothing generated, admitted or pooled: a baseline trades its fixed signals
        pools = pools_of(conn, strategy_id) if variant.kind is VariantKind.BASELINE else {}
        return {
            "kind": variant.kind.value,
            "alpha_survival": None,
            "mean_pool_size": float(np.mean([len(pools.get(a.as_of, {})) for a in allocations])),
            **dict.fromkeys(_NOT_SEARCHED),
        }
    # a pool variant's alphas were evaluated under the strategy, a generator's under itself
    evaluated_as = strategy_id if variant.own_requests else strategy.id
    pools = pools_of(conn, strategy_id)
    ordered = [pools.get(a.as_of, {}) for a in allocations]
    # like for like: each allocation's own position over its training window
    in_sample = [a.in_sample_sharpe for a in allocations if a.in_sample_sharpe is not None]
    finite = [v for v in in_sample if np.isfinite(v)]
    kinds = {VariantKind.GENERATOR: "generator", VariantKind.MODEL: "ml"}
    return {
        "kind": kinds.get(variant.kind, "pool"),
        **_admissions(conn, evaluated_as, allocations),
        **_pool_history(conn, strategy_id, allocations),
        "in_sample_sharpe": float(np.mean(finite)) if finite else float("nan"),
        "alpha_survival": alpha_survival([sorted(pool) for pool in ordered]),
        "mean_pool_size": float(np.mean([len(pool) for pool in ordered])),
    }


def _admissions(conn, evaluated_as: str, allocations) -> dict:
    """Over the variant's decisions: the candidates scored (``trials``), those admitted
    (``accepted``) and those that met the definition alone (``qualified``); and the rates
    the same definition and control give on the decisions' noise twins
    (``alphafactory.noise``), null where no decision scored its twin."""
    from storage.admissions import admissions_of

    decided = {a.decision_time for a in allocations}
    mine = [a for a in admissions_of(conn, evaluated_as) if a.decision_time in decided]
    trials = sum(a.trials for a in mine)
    accepted = sum(a.admitted for a in mine)
    # noise alone under the same rule: over the decisions that scored their noise twin
    twinned = [a for a in mine if a.noise_admitted is not None]
    twin_trials = sum(a.trials for a in twinned)
    return {
        "trials": trials,
        "accepted": accepted,
        "qualified": sum(a.qualified for a in mine),
        "hit_rate": accepted / trials if trials else float("nan"),
        "noise_qualified_rate": (
            sum(a.noise_qualified for a in twinned) / twin_trials if twin_trials else None
        ),
        "noise_hit_rate": (
            sum(a.noise_admitted for a in twinned) / twin_trials if twin_trials else None
        ),
    }


# the report's search figures, null for a variant that searched nothing
_NOT_SEARCHED = (
    "trials",
    "accepted",
    "qualified",
    "hit_rate",
    "noise_qualified_rate",
    "noise_hit_rate",
    "pool_entered",
    "pool_retired",
    "retired_mean_oos_periods",
    "retired_mean_oos_ic",
)


@dataclass(frozen=True)
class _Held:
    """An allocation as ``held_allocation_returns`` reads one."""

    decision_time: datetime
    weights: dict[str, float]


def _traded_signal_ic(panel, name: str, allocations) -> dict:
    """``oos_ic``, ``oos_ic_t`` (``walkforward.out_of_sample_ic``) of the combined signals
    the variant's allocations were built from, against the returns of the periods they
    were held; null for a benchmark (no signal)."""
    from alphafactory.performance import held_asset_returns
    from alphafactory.variant_names import VariantKind, parse
    from alphafactory.walkforward import out_of_sample_ic

    if parse(name).kind is VariantKind.BENCHMARK:
        return {"oos_ic": None, "oos_ic_t": None, "oos_ic_decisions": 0}
    assets = [str(a) for a in panel.assets]
    # None (a signal not stored, or a non-finite one) reads as NaN
    signals = np.array([_signal_row(a.signal, assets) for a in allocations], dtype=float)
    decisions = pd.DatetimeIndex([a.decision_time for a in allocations]).tz_convert("UTC")
    held = held_asset_returns(panel.dates, panel.returns, decisions, hold_last=1)
    return out_of_sample_ic(signals, held)


def _signal_row(signal, assets: list[str]) -> list:
    signal = signal or {}
    return [signal.get(asset) for asset in assets]


def _pool_history(conn, strategy_id: str, allocations) -> dict:
    """The persistent pool over the variant's decisions (``alphafactory.pool``): members
    that entered, that retired, and the retired ones' mean out-of-sample record."""
    from storage.pool_members import pool_history

    first, last = allocations[0].decision_time, allocations[-1].decision_time
    history = pool_history(
        conn, strategy_id=strategy_id, since=first, until=last + pd.Timedelta(seconds=1)
    )
    return {
        "pool_entered": history.entered,
        "pool_retired": history.retired,
        "retired_mean_oos_periods": history.mean_periods_at_retirement,
        "retired_mean_oos_ic": history.mean_oos_ic_at_retirement,
    }


def _against(returns, benchmark, cash, allocations, record, periods_per_year: float) -> dict:
    from alphafactory.walkforward import variant_record

    numbers = variant_record(
        returns,
        benchmark,
        [a.weights for a in allocations],
        periods_per_year=periods_per_year,
        in_sample_sharpe=record.get("in_sample_sharpe", float("nan")),
        cash=cash,
    )
    wealth = float(np.prod(1.0 + returns.to_numpy())) if len(returns) else float("nan")
    numbers["cumulative_return"] = wealth - 1.0
    numbers["overfit"] = numbers["in_sample_sharpe"] - numbers["sharpe"]
    return numbers


def _models(conn, strategy: Strategy, panel) -> list[dict]:
    from storage.models import list_versions
    from storage.walkforward_reads import alphas_by_decision, yield_per_version

    yields = {y.version: y for y in yield_per_version(conn, strategy.id)}
    alphas = alphas_by_decision(conn, strategy.id)
    decay = _ic_decay(panel, strategy, alphas)
    models = []
    for version in list_versions(conn, strategy.generation.generator):
        served = yields.get(version.version)
        candidates = served.candidates if served else 0
        models.append(
            {
                "version": version.version,
                "cutoff": version.cutoff.isoformat(),
                "trained_until": version.trained_until.isoformat(),
                "first_decision": served.first_decision.isoformat() if served else None,
                "last_decision": served.last_decision.isoformat() if served else None,
                "requests": served.requests if served else 0,
                "candidates": candidates,
                "qualified": served.qualified if served else 0,
                "alphas": served.admitted if served else 0,
                "hit_rate": (served.admitted / candidates) if candidates else float("nan"),
                "training_seconds": version.training.get("seconds"),
                "warm_start_from": version.training.get("warm_start_from"),
                "ic_decay": decay.get(version.version),
            }
        )
    return models


def _ic_decay(panel, strategy: Strategy, alphas) -> dict[int, dict]:
    """version -> {"in_sample": mean signed rank IC, "months": [month 1..12 after]}."""
    from alphafactory.clock import known_dates
    from alphafactory.metrics._kernels import stable_order
    from alphafactory.metrics.crosssection import ForwardReturns, ic_series
    from alphafactory.scoring import FormulaScorer, config_for_panel

    by_version: dict[int, list[tuple[datetime, str]]] = {}
    for decided, version, _hash, formula in alphas:
        if version is not None:
            by_version.setdefault(int(version), []).append((decided, formula))
    scorer = FormulaScorer(panel, config=config_for_panel(panel))
    forward = ForwardReturns.build(panel.returns, 1)
    training = strategy.alpha.training_months
    out = {}
    for version, written in by_version.items():
        step = max(1, len(written) // MAX_ALPHAS_PER_VERSION)
        sample = written[::step][:MAX_ALPHAS_PER_VERSION]
        signals = scorer.signals([formula for _, formula in sample])
        _, rank_ic = ic_series(signals, stable_order(signals), forward)
        inside, after = [], [[] for _ in range(DECAY_MONTHS)]
        for k, (decided, _formula) in enumerate(sample):
            row = int(known_dates(panel.dates, pd.Timestamp(decided)).sum()) - 1
            history = rank_ic[k, max(0, row - training) : row]
            sign = np.sign(np.nanmean(history)) if np.isfinite(history).any() else 0.0
            if sign == 0:
                continue
            inside.append(sign * np.nanmean(history))
            # the IC at the decision row is against the first month after the decision
            for month in range(DECAY_MONTHS):
                t = row + month
                if t < rank_ic.shape[1] and np.isfinite(rank_ic[k, t]):
                    after[month].append(sign * rank_ic[k, t])
        out[version] = {
            "alphas": len(sample),
            "in_sample": float(np.mean(inside)) if inside else float("nan"),
            "months": [float(np.mean(m)) if m else float("nan") for m in after],
        }
    return out
