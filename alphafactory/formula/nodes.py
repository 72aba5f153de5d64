"""Expression tree of the formula language: kinds, the node base class, and leaves.

A formula is an immutable tree of ``Node`` objects. Construction validates kinds, so a node
that exists is well typed; commutative arguments are put in canonical order at construction,
so structural equality is canonical equality and ``str(node)`` is the canonical text.

Kinds of values::

    SCALAR   a numeric literal
    MACRO    one series over dates, shape (T,); broadcast over assets where combined
    PANEL    dates x assets, shape (T, N)
    GROUP    integer group codes (dates x assets); only as group_demean's second argument

Operator base classes are in ``bases.py``; concrete operators in ``operators.py``.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field, fields
from enum import StrEnum
from functools import cache
from typing import Any, ClassVar

from alphafactory.formula.errors import FormulaTypeError

IDENTIFIER = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


class Kind(StrEnum):
    SCALAR = "scalar"
    MACRO = "macro"
    PANEL = "panel"
    GROUP = "group"


class Slot(StrEnum):
    """What an operator argument position accepts."""

    VALUE = "value"  # any expression of a numeric kind
    WINDOW = "window"  # integer literal from LanguageConfig.windows
    LAG = "lag"  # integer literal from LanguageConfig.lags
    K = "k"  # positive numeric literal (winsorize threshold)
    GROUP = "group"  # a group operand


VALUE_KINDS = frozenset({Kind.SCALAR, Kind.MACRO, Kind.PANEL})
SERIES_KINDS = frozenset({Kind.MACRO, Kind.PANEL})
_ORDER = {Kind.SCALAR: 0, Kind.MACRO: 1, Kind.PANEL: 2}


def join(*kinds: Kind) -> Kind:
    """The kind of an elementwise combination: a panel wins over a series over a scalar."""
    return max(kinds, key=_ORDER.__getitem__)


def format_number(value: float) -> str:
    """Canonical literal text; the lexer reads back exactly this value."""
    if value.is_integer() and abs(value) < 1e16:
        return str(int(value))
    return repr(value)


class cached_property:  # noqa: N801  (named as the functools one it stands in for)
    """``functools.cached_property`` without its lock: Python 3.11's takes an RLock on
    every first read, a third of the cost of building a node, and every formula the
    parser, the grammar walks and the mutations build reads several. Values are pure
    functions of a frozen node, so two threads racing compute the same value."""

    def __init__(self, function) -> None:
        self.function = function
        self.__doc__ = function.__doc__

    def __set_name__(self, owner: type, name: str) -> None:
        self.name = name

    def __get__(self, instance, owner: type | None = None) -> Any:
        if instance is None:
            return self
        value = instance.__dict__[self.name] = self.function(instance)
        return value


@dataclass(frozen=True)
class Node:
    name: ClassVar[str] = ""
    signature: ClassVar[tuple[Slot, ...]] = ()
    precedence: ClassVar[int] = 4  # 1: + -, 2: * /, 3: unary minus, 4: atoms and calls

    def __post_init__(self) -> None:
        for slot, argument in zip(self.signature, self.arguments, strict=True):
            if slot in (Slot.VALUE, Slot.GROUP) and not isinstance(argument, Node):
                raise FormulaTypeError(f"{self.name}: argument {argument!r} is not an expression")
        _ = self.kind  # validates the argument kinds now, not at first use

    @cached_property
    def arguments(self) -> tuple:
        """Field values in signature order: child nodes and literal parameters."""
        return tuple(getattr(self, name) for name in _field_names(type(self)))

    @cached_property
    def children(self) -> tuple[Node, ...]:
        return tuple(a for a in self.arguments if isinstance(a, Node))

    @cached_property
    def kind(self) -> Kind:
        return self.result_kind(tuple(child.kind for child in self.children))

    @classmethod
    def result_kind(cls, kinds: tuple[Kind, ...]) -> Kind:
        raise NotImplementedError

    @cached_property
    def depth(self) -> int:
        return 1 + max((child.depth for child in self.children), default=0)

    @cached_property
    def size(self) -> int:
        """Number of nodes (operators, operands, constants)."""
        return 1 + sum(child.size for child in self.children)

    @cached_property
    def lookback(self) -> int:
        """Rows of history before row t that the value at row t depends on."""
        return max((child.lookback for child in self.children), default=0)

    @cached_property
    def canonical(self) -> str:
        return self._text()

    def _text(self) -> str:
        parts = [format_literal(a) for a in self.arguments]
        return f"{self.name}({', '.join(parts)})"

    def __str__(self) -> str:
        return self.canonical

    def walk(self):
        """Every node of the tree, children before parents (post-order)."""
        for child in self.children:
            yield from child.walk()
        yield self


@cache
def _field_names(cls: type) -> tuple[str, ...]:
    return tuple(f.name for f in fields(cls))


def format_literal(argument: Node | int | float) -> str:
    if isinstance(argument, Node):
        return argument.canonical
    return format_number(float(argument))


@dataclass(frozen=True)
class Operand(Node):
    """A panel field, macro series or group field, by name."""

    name: str  # type: ignore[misc]  # instance field shadows the operator-name ClassVar
    operand_kind: Kind = field(default=Kind.PANEL, compare=False)

    def __post_init__(self) -> None:
        if not isinstance(self.name, str) or not IDENTIFIER.fullmatch(self.name):
            raise FormulaTypeError(f"operand name {self.name!r} is not an identifier")
        object.__setattr__(self, "operand_kind", Kind(self.operand_kind))

    @property
    def arguments(self) -> tuple:
        return ()

    @cached_property
    def kind(self) -> Kind:
        return self.operand_kind

    def _text(self) -> str:
        return self.name


@dataclass(frozen=True)
class Constant(Node):
    value: float

    def __post_init__(self) -> None:
        if isinstance(self.value, bool) or not isinstance(self.value, int | float):
            raise FormulaTypeError(f"constant must be a number, got {self.value!r}")
        if not math.isfinite(self.value):
            raise FormulaTypeError(f"constant must be finite, got {self.value!r}")
        object.__setattr__(self, "value", float(self.value) + 0.0)  # -0.0 -> 0.0

    @property
    def arguments(self) -> tuple:
        return ()

    @property
    def precedence(self) -> int:  # type: ignore[override]
        return 3 if self.value < 0 else 4

    @cached_property
    def kind(self) -> Kind:
        return Kind.SCALAR

    def _text(self) -> str:
        return format_number(self.value)
