"""Operator base classes: the typing and lookback rules of each family of operators.

Concrete operators in ``operators.py`` are one-liners; their numeric kernels live in
``alphafactory.evaluate``, so generators and services that only handle text never import
the numeric code::

    Unary(x)                 elementwise, MACRO -> MACRO, PANEL -> PANEL
    Binary(x, y)             elementwise with broadcasting; not both SCALAR
    Lag(x, lag)              time series, shift by ``lag`` rows
    Rolling(x, window)       time series over the last ``window`` rows (min_periods = window)
    PairRolling(x, y, window)
    CrossSectional(x)        per date across assets; PANEL only
    Winsorize(x, k), GroupDemean(x, group)
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import ClassVar

from alphafactory.formula.errors import FormulaTypeError, WindowError
from alphafactory.formula.nodes import (
    SERIES_KINDS,
    VALUE_KINDS,
    Kind,
    Node,
    Slot,
    cached_property,
    join,
)


def _require(op: str, kind: Kind, allowed: frozenset[Kind], what: str) -> None:
    if kind not in allowed:
        hint = {
            Kind.SCALAR: "a constant; write the value itself",
            Kind.MACRO: "a macro series (date only)",
            Kind.GROUP: "a group field (labels, not numbers)",
            Kind.PANEL: "a per-asset panel",
        }[kind]
        raise FormulaTypeError(f"{op} needs {what}, got {hint}")


@dataclass(frozen=True)
class Unary(Node):
    x: Node
    signature = (Slot.VALUE,)

    @classmethod
    def result_kind(cls, kinds):
        _require(cls.name, kinds[0], SERIES_KINDS, "a panel or macro series")
        return kinds[0]


@dataclass(frozen=True)
class Binary(Node):
    x: Node
    y: Node
    signature = (Slot.VALUE, Slot.VALUE)
    symbol: ClassVar[str | None] = None  # infix spelling, None for calls like max(x, y)
    commutative: ClassVar[bool] = False

    def __post_init__(self) -> None:
        if self.commutative:
            _order_pair(self)
        super().__post_init__()

    @classmethod
    def result_kind(cls, kinds):
        for kind in kinds:
            _require(cls.name, kind, VALUE_KINDS, "numbers")
        if kinds[0] is Kind.SCALAR and kinds[1] is Kind.SCALAR:
            raise FormulaTypeError(f"{cls.name} of two constants is a constant; write the value")
        return join(*kinds)

    @property
    def precedence(self) -> int:  # type: ignore[override]
        return {"+": 1, "-": 1, "*": 2, "/": 2}.get(self.symbol or "", 4)

    def _text(self) -> str:
        if self.symbol is None:
            return super()._text()
        left, right = self.x.canonical, self.y.canonical
        if self.x.precedence < self.precedence:
            left = f"({left})"
        if self.y.precedence <= self.precedence:  # left-associative: a - (b - c)
            right = f"({right})"
        return f"{left} {self.symbol} {right}"


def _order_pair(node: Node) -> None:
    """Put a symmetric operator's arguments in canonical (text) order."""
    x, y = node.x, node.y  # type: ignore[attr-defined]
    if isinstance(x, Node) and isinstance(y, Node) and y.canonical < x.canonical:
        object.__setattr__(node, "x", y)
        object.__setattr__(node, "y", x)


def _check_int(op: str, value, slot: Slot) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise WindowError(f"{op}: the {slot} must be a positive integer literal, got {value!r}")


@dataclass(frozen=True)
class Lag(Node):
    x: Node
    lag: int
    signature = (Slot.VALUE, Slot.LAG)

    def __post_init__(self) -> None:
        _check_int(self.name, self.lag, Slot.LAG)
        super().__post_init__()

    @classmethod
    def result_kind(cls, kinds):
        _require(cls.name, kinds[0], SERIES_KINDS, "a panel or macro series")
        return kinds[0]

    @cached_property
    def lookback(self) -> int:
        return self.x.lookback + self.lag


@dataclass(frozen=True)
class Rolling(Node):
    x: Node
    window: int
    signature = (Slot.VALUE, Slot.WINDOW)

    def __post_init__(self) -> None:
        _check_int(self.name, self.window, Slot.WINDOW)
        super().__post_init__()

    @classmethod
    def result_kind(cls, kinds):
        _require(cls.name, kinds[0], SERIES_KINDS, "a panel or macro series")
        return kinds[0]

    @cached_property
    def lookback(self) -> int:
        return self.x.lookback + self.window - 1


@dataclass(frozen=True)
class PairRolling(Node):
    """Symmetric in x and y (correlation, covariance), so the pair is ordered canonically."""

    x: Node
    y: Node
    window: int
    signature = (Slot.VALUE, Slot.VALUE, Slot.WINDOW)

    def __post_init__(self) -> None:
        _check_int(self.name, self.window, Slot.WINDOW)
        _order_pair(self)
        super().__post_init__()

    @classmethod
    def result_kind(cls, kinds):
        for kind in kinds:
            _require(cls.name, kind, SERIES_KINDS, "panels or macro series")
        return join(*kinds)

    @cached_property
    def lookback(self) -> int:
        return max(self.x.lookback, self.y.lookback) + self.window - 1


@dataclass(frozen=True)
class CrossSectional(Node):
    x: Node
    signature = (Slot.VALUE,)

    @classmethod
    def result_kind(cls, kinds):
        _require(cls.name, kinds[0], frozenset({Kind.PANEL}), "a per-asset panel (cross-sectional)")
        return Kind.PANEL


@dataclass(frozen=True)
class Winsorize(Node):
    """Per date, clip x to mean +- k standard deviations (ddof=1) of that date's values."""

    x: Node
    k: float
    name = "winsorize"
    signature = (Slot.VALUE, Slot.K)

    def __post_init__(self) -> None:
        if isinstance(self.k, bool) or not isinstance(self.k, int | float):
            raise FormulaTypeError(f"winsorize: k must be a number, got {self.k!r}")
        if not (math.isfinite(self.k) and self.k > 0):
            raise FormulaTypeError(f"winsorize: k must be a positive finite number, got {self.k}")
        object.__setattr__(self, "k", float(self.k))
        super().__post_init__()

    @classmethod
    def result_kind(cls, kinds):
        _require(cls.name, kinds[0], frozenset({Kind.PANEL}), "a per-asset panel (cross-sectional)")
        return Kind.PANEL


@dataclass(frozen=True)
class GroupDemean(Node):
    """Per date, x minus the mean of x over the assets of the same group."""

    x: Node
    group: Node
    name = "group_demean"
    signature = (Slot.VALUE, Slot.GROUP)

    @classmethod
    def result_kind(cls, kinds):
        _require(cls.name, kinds[0], frozenset({Kind.PANEL}), "a per-asset panel (cross-sectional)")
        if kinds[1] is not Kind.GROUP:
            raise FormulaTypeError("group_demean's second argument must be a group field")
        return Kind.PANEL
