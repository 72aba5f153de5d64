"""Variant names: what each name a strategy's ``[variants] names`` may hold stands for.

Read from the registries (``alphafactory.constructions``, ``alphafactory.combinations``,
``alphafactory.ml.models``), so a construction or combination method added there is a
variant name too, in the strategy schema, its errors and the CLI's help alike. What a
variant does is in ``alphafactory.variants``. Pure and light (no data code), so the schema
can import it.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from enum import StrEnum

from alphafactory.combinations import COMBINATIONS
from alphafactory.constructions import CONSTRUCTIONS
from alphafactory.ml.models import MODEL_NAMES

SEPARATOR = "@"
BENCHMARKS = ("risk_parity", "equal_weight", "60_40")
GENERATORS = ("random", "library")
BASELINES = ("tsmom", "classic")
DEFAULT_NAMES = ("pool10", "pool25", "pool100", *GENERATORS, *BASELINES, *BENCHMARKS)
COMBINATION_PREFIX = "combo_"
_POOL = re.compile(r"^pool([1-9][0-9]{0,3})$")


class VariantError(ValueError):
    """A variant name that is not one, or one the strategy cannot run; names both."""


class VariantKind(StrEnum):
    POOL = "pool"  # poolN: the pool capped at N
    COMBINATION = "combination"  # combo_<method>
    CONSTRUCTION = "construction"  # a portfolio construction's name
    MODEL = "model"  # an [ml] model's alpha alone
    GENERATOR = "generator"  # candidates of its own: random, library
    BASELINE = "baseline"  # published signals, traded as the strategy trades: tsmom, classic
    BENCHMARK = "benchmark"  # no alpha: risk_parity, equal_weight, 60_40


@dataclass(frozen=True)
class Variant:
    """A variant name read: what kind of variant it is and what it changes."""

    name: str
    kind: VariantKind
    argument: str = ""  # the pool size, method, construction, model or generator

    @property
    def own_requests(self) -> bool:
        """Generates (and evaluates) candidates of its own instead of sharing the
        strategy's request."""
        return self.kind is VariantKind.GENERATOR


def parse(name: str) -> Variant:
    """The variant ``name`` stands for; :class:`VariantError` naming what is allowed."""
    if match := _POOL.match(name):
        return Variant(name, VariantKind.POOL, match.group(1))
    method = name.removeprefix(COMBINATION_PREFIX)
    if name.startswith(COMBINATION_PREFIX) and method in COMBINATIONS:
        return Variant(name, VariantKind.COMBINATION, method)
    for kind, known in (
        (VariantKind.CONSTRUCTION, CONSTRUCTIONS),
        (VariantKind.MODEL, MODEL_NAMES),
        (VariantKind.GENERATOR, GENERATORS),
        (VariantKind.BASELINE, BASELINES),
        (VariantKind.BENCHMARK, BENCHMARKS),
    ):
        if name in known:
            return Variant(name, kind, name)
    raise VariantError(f"variant {name!r} is not one of {names_help()}")


def is_variant(name: str) -> bool:
    try:
        parse(name)
    except VariantError:
        return False
    return True


def names_help() -> str:
    """Every variant name allowed, for errors and the CLI's help."""
    return ", ".join(
        (
            "poolN (e.g. pool10, pool25, pool100)",
            *(COMBINATION_PREFIX + method for method in COMBINATIONS),
            *CONSTRUCTIONS,
            f"a model of [ml] models ({', '.join(MODEL_NAMES)})",
            *GENERATORS,
            *BASELINES,
            *BENCHMARKS,
        )
    )
