"""A strategy's variants: the same decisions read several ways, each written under its own
strategy id ``<strategy>@<variant>``, so a trading system can follow any of them. Pure.

Variants that share the strategy's generation and evaluation (its request's alphas):

- ``poolN`` (``pool10``, ``pool25``, ``pool100``...): the pool capped at N alphas;
- ``combo_equal``, ``combo_ic_weighted``, ``combo_ridge``, ``combo_lightgbm``: another
  combination method;
- ``long_short``, ``long_only``, ``tilt``: another portfolio kind;
- a model's name (``ridge``, ``lightgbm``...): the strategy's supervised alpha of that
  ``[ml]`` model alone, when it qualifies (the benchmark otherwise);
- ``risk_parity``: the strategy's risk-parity benchmark, no alpha;
- ``equal_weight``: every asset of the universe outside ``benchmark_excludes`` alike;
- ``60_40``: 60% in ``[variants] stocks``, 40% in ``[variants] bonds`` (equal within).

Baselines, the published signals a quant compares a new alpha with, combined by the
strategy's method and traded with its construction, no admission and no pool record
(``alphafactory.library``'s classic family): ``tsmom`` (time-series momentum, 12-1 months
over volatility) alone, and ``classic`` (it with cross-asset momentum and the term and
credit spreads, level and change).

Variants with generation of their own, at the strategy's candidate count (each its own
requests, evaluations and pool): ``random`` (formulas drawn at random from the grammar)
and ``library`` (the known factors and their one-move variations), see
``inference.baselines``; they have no ``[ml]`` alphas (formulas at equal count only).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import replace
from typing import TYPE_CHECKING

import numpy as np

from alphafactory.decision import Allocation, allocate, alpha_signals, valid_formulas
from alphafactory.decision_inputs import benchmark_weights, exposures_of
from alphafactory.library import CLASSIC_FAMILY, LIBRARY, TIME_SERIES_MOMENTUM
from alphafactory.ml.candidate import is_ml, parse_candidate
from alphafactory.panel import Panel
from alphafactory.variant_names import (
    BASELINES,
    BENCHMARKS,
    SEPARATOR,
    VariantError,
    VariantKind,
    parse,
)

if TYPE_CHECKING:
    from alphafactory.pool import Member
    from alphafactory.strategy import Strategy


def variant_id(strategy_id: str, name: str) -> str:
    return f"{strategy_id}{SEPARATOR}{name}"


def base_id(strategy_id: str) -> str:
    """The strategy a variant's id belongs to (the id itself for a strategy)."""
    return strategy_id.partition(SEPARATOR)[0]


def derive(strategy: Strategy, name: str) -> Strategy:
    """The variant ``name`` of ``strategy`` as a strategy of its own (id ``<id>@<name>``)."""
    variant = parse(name)
    # a variant has no variants of its own
    nothing = strategy.variants.model_copy(update={"names": ()})
    update: dict = {"id": variant_id(strategy.id, name), "variants": nothing}
    if variant.kind is VariantKind.POOL:
        update["pool"] = strategy.pool.model_copy(update={"size": int(variant.argument)})
    elif variant.kind is VariantKind.COMBINATION:
        update["combination"] = strategy.combination.model_copy(update={"method": variant.argument})
    elif variant.kind is VariantKind.CONSTRUCTION:
        update["portfolio"] = strategy.portfolio.model_copy(update={"kind": variant.argument})
    elif variant.kind is VariantKind.BASELINE:
        # every signal traded from its first decision, none pruned: the baseline is the set
        formulas = baseline_formulas(name)
        update["pool"] = strategy.pool.model_copy(
            update={"size": len(formulas), "max_correlation": 1.0, "probation": 0}
        )
    elif variant.kind is VariantKind.GENERATOR:
        update["generation"] = strategy.generation.model_copy(update={"source": name})
        update["ml"] = strategy.ml.model_copy(update={"models": ()})
    elif variant.kind is VariantKind.MODEL and name not in strategy.ml.models:
        raise VariantError(
            f"strategy {strategy.id!r} has no {name} variant: add {name!r} to its [ml] models"
        )
    elif name == "60_40" and not (strategy.variants.stocks and strategy.variants.bonds):
        raise VariantError(
            f"strategy {strategy.id!r} has no 60_40 variant: name its assets in "
            "[variants] stocks = [...] and bonds = [...]"
        )
    return strategy.model_copy(update=update)


def generator_variants(strategy: Strategy) -> list[Strategy]:
    """The strategy's variants that generate their own candidates (own requests)."""
    return [derive(strategy, n) for n in strategy.variants.names if parse(n).own_requests]


def allocation_variants(strategy: Strategy) -> list[tuple[str, Strategy]]:
    """(name, variant) of the variants allocated from the strategy's own request."""
    names = strategy.variants.names
    return [(n, derive(strategy, n)) for n in names if not parse(n).own_requests]


def baseline_formulas(name: str) -> list[str]:
    """The formulas of baseline variant ``name`` (module doc)."""
    if name == "tsmom":
        return [TIME_SERIES_MOMENTUM]
    if name == "classic":
        return [entry.text for entry in LIBRARY if entry.family == CLASSIC_FAMILY]
    raise VariantError(f"{name!r} is not a baseline variant ({', '.join(BASELINES)})")


def variant_alphas(name: str, formulas: list[str]) -> list[int]:
    """Which of the request's qualified alphas variant ``name`` allocates from: an
    ML variant (named by its model) its ML alpha of that model only, any other (and the
    strategy itself, ``""``) all."""
    if not name or parse(name).kind is not VariantKind.MODEL:
        return list(range(len(formulas)))
    return [k for k, f in enumerate(formulas) if is_ml(f) and parse_candidate(f).model == name]


def benchmark_allocation(
    panel: Panel, strategy: Strategy, name: str, risk_parity: np.ndarray
) -> np.ndarray:
    """Weights per asset of benchmark variant ``name`` (``risk_parity``: the strategy's
    risk-parity weights on this panel, computed by the caller)."""
    assets = panel.assets.astype(str)
    if name == "risk_parity":
        return risk_parity
    if name == "equal_weight":
        held = ~np.isin(assets, list(strategy.portfolio.benchmark_excludes))
        return held / held.sum() if held.any() else np.full(len(assets), 1.0 / len(assets))
    if name == "60_40":
        weights = np.zeros(len(assets))
        for share, group in ((0.6, strategy.variants.stocks), (0.4, strategy.variants.bonds)):
            members = np.isin(assets, list(group))
            if not members.any():
                raise VariantError(
                    f"60_40: none of {list(group)} is in the panel's assets {list(assets)}"
                )
            weights[members] = share / members.sum()
        return weights
    raise VariantError(f"{name!r} is not a benchmark variant ({', '.join(BENCHMARKS)})")


def decide(
    panel: Panel,
    strategy: Strategy,
    variant: str,
    alphas: Sequence[str],
    t_stats: Sequence[float],
    *,
    signals: np.ndarray,
    members: Sequence[Member] = (),
    previous: Mapping[str, float] | None = None,
) -> Allocation:
    """Every decision: the allocation of ``strategy`` (the request's own when
    ``variant`` is "", else that variant, derived already) from the request's admitted
    ``alphas`` with their HAC t-statistics and ``signals`` (``decision.alpha_signals``),
    carrying the pool ``members`` the variant's earlier decisions left and the weights
    it holds (``previous``: its last allocation's, None for its first). A benchmark
    variant holds its benchmark; an ML variant allocates its model's alpha alone; every
    other the alphas, each admitted in the direction of its t-statistic."""
    assets = panel.assets.astype(str).tolist()
    kind = parse(variant).kind if variant else None
    if kind is VariantKind.BASELINE:
        return _baseline(panel, strategy, variant, previous)
    if kind is VariantKind.BENCHMARK:
        mix = benchmark_weights(panel, strategy, len(panel.returns))
        weights = benchmark_allocation(panel, strategy, variant, mix)
        return Allocation(
            dict(zip(assets, weights.tolist(), strict=True)),
            {},
            exposures=exposures_of(panel, strategy, weights, mix),
        )
    mine = variant_alphas(variant, list(alphas))
    t = np.nan_to_num(np.asarray(t_stats, dtype=np.float64)[mine], nan=0.0)
    return allocate(
        panel,
        strategy,
        [alphas[k] for k in mine],
        np.abs(t).tolist(),
        signals=signals[mine],
        signs=np.where(t < 0, -1.0, 1.0),
        members=members,
        previous=previous,
    )


def _baseline(
    panel: Panel, strategy: Strategy, name: str, previous: Mapping[str, float] | None
) -> Allocation:
    """Baseline ``name``'s signals that this panel can compute, combined and traded as
    the strategy (derived already) would: a fresh set at every decision, so nothing
    enters or retires a pool."""
    formulas = valid_formulas(panel, strategy, baseline_formulas(name))
    signals = alpha_signals(panel, strategy, formulas)
    found = allocate(
        panel, strategy, formulas, np.ones(len(formulas)), signals=signals, previous=previous
    )
    return replace(found, entered={}, retired={}, records={}, probation=())
