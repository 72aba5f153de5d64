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

Variants with generation of their own, at the strategy's candidate count (each its own
requests, evaluations and pool): ``random`` (formulas drawn at random from the grammar)
and ``library`` (the known factors and their one-move variations), see
``inference.baselines``; they have no ``[ml]`` alphas (formulas at equal count only).
"""

from __future__ import annotations

import re

import numpy as np

from alphafactory.ml.candidate import is_ml, parse_candidate
from alphafactory.ml.models import MODEL_NAMES
from alphafactory.panel import Panel
from alphafactory.strategy import VARIANT_NAME, VARIANT_NAMES_HELP, Strategy

SEPARATOR = "@"
BENCHMARKS = ("risk_parity", "equal_weight", "60_40")
GENERATORS = ("random", "library")
DEFAULT_NAMES = ("pool10", "pool25", "pool100", *GENERATORS, *BENCHMARKS)
PORTFOLIO_KINDS = ("long_short", "long_only", "tilt")
_POOL = re.compile(r"^pool([1-9][0-9]{0,3})$")
_COMBINATION = re.compile(r"^combo_(equal|ic_weighted|ridge|lightgbm)$")


class VariantError(ValueError):
    """A variant name that is not one, or one the strategy cannot run; names both."""


def check_name(name: str) -> str:
    if VARIANT_NAME.match(name):
        return name
    raise VariantError(f"variant {name!r} is not one of {VARIANT_NAMES_HELP}")


def variant_id(strategy_id: str, name: str) -> str:
    return f"{strategy_id}{SEPARATOR}{name}"


def base_id(strategy_id: str) -> str:
    """The strategy a variant's id belongs to (the id itself for a strategy)."""
    return strategy_id.partition(SEPARATOR)[0]


def derive(strategy: Strategy, name: str) -> Strategy:
    """The variant ``name`` of ``strategy`` as a strategy of its own (id ``<id>@<name>``)."""
    check_name(name)
    # a variant has no variants of its own
    nothing = strategy.variants.model_copy(update={"names": ()})
    update: dict = {"id": variant_id(strategy.id, name), "variants": nothing}
    if match := _POOL.match(name):
        update["pool"] = strategy.pool.model_copy(update={"size": int(match.group(1))})
    elif match := _COMBINATION.match(name):
        update["combination"] = strategy.combination.model_copy(update={"method": match.group(1)})
    elif name in PORTFOLIO_KINDS:
        update["portfolio"] = strategy.portfolio.model_copy(update={"kind": name})
    elif name in GENERATORS:
        update["generation"] = strategy.generation.model_copy(update={"source": name})
        update["ml"] = strategy.ml.model_copy(update={"models": ()})
    elif name in MODEL_NAMES and name not in strategy.ml.models:
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
    return [derive(strategy, n) for n in strategy.variants.names if n in GENERATORS]


def allocation_variants(strategy: Strategy) -> list[tuple[str, Strategy]]:
    """(name, variant) of the variants allocated from the strategy's own request."""
    return [(n, derive(strategy, n)) for n in strategy.variants.names if n not in GENERATORS]


def variant_alphas(name: str, formulas: list[str]) -> list[int]:
    """Which of the request's qualified alphas variant ``name`` allocates from: an
    ML variant (named by its model) its ML alpha of that model only, any other all."""
    if name not in MODEL_NAMES:
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
