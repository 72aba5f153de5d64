"""Checks for formulas built in code or received from elsewhere; identity (canonical hash).

``parse`` already enforces everything here while reading text; ``check`` applies the same
rules to a ``Node`` tree built directly (or parsed without an operand schema), and ``bind``
re-reads operand kinds from a panel's schema so a formula is typed for that panel.
"""

from __future__ import annotations

import hashlib

from alphafactory.formula.config import DEFAULT_CONFIG, LanguageConfig
from alphafactory.formula.errors import (
    FormulaLimitError,
    FormulaSyntaxError,
    FormulaTypeError,
    UnknownOperatorError,
)
from alphafactory.formula.nodes import Constant, Kind, Node, Operand, Slot
from alphafactory.formula.operators import OPERATORS
from alphafactory.formula.parser import OperandKinds, parse, resolve_operand


def bind(node: Node, operands: OperandKinds) -> Node:
    """The same formula with every operand's kind taken from ``operands`` (re-typed)."""
    if all(_bound(leaf, operands) for leaf in node.walk() if isinstance(leaf, Operand)):
        return node  # already typed for these operands: nothing to rebuild
    return _rebuild(node, operands)


def _bound(operand: Operand, operands: OperandKinds) -> bool:
    kind = operands.get(operand.name)
    return kind is not None and kind == operand.kind


def _rebuild(node: Node, operands: OperandKinds) -> Node:
    if isinstance(node, Operand):
        return resolve_operand(node.name, operands, group_slot=node.kind is Kind.GROUP)
    if isinstance(node, Constant):
        return node
    rebuilt = [_rebuild(a, operands) if isinstance(a, Node) else a for a in node.arguments]
    return type(node)(*rebuilt)


def check(
    node: Node, operands: OperandKinds | None = None, config: LanguageConfig = DEFAULT_CONFIG
) -> Node:
    """Validate ``node`` against ``config`` (and ``operands`` if given); return it typed.

    Raises ``FormulaLimitError`` for size limits, ``WindowError`` for a window or lag
    outside 1..``config.max_window``, ``UnknownOperatorError`` for operators the config
    excludes, and ``UnknownOperandError`` / ``FormulaTypeError`` for operands and kinds.
    """
    if not isinstance(node, Node):
        raise FormulaSyntaxError(f"expected a formula node, got {type(node).__name__}")
    if operands is not None:
        node = bind(node, operands)
    if node.depth > config.max_depth:
        raise FormulaLimitError("max_depth", node.depth, config.max_depth)
    if node.size > config.max_nodes:
        raise FormulaLimitError("max_nodes", node.size, config.max_nodes)
    if len(node.canonical) > config.max_length:
        raise FormulaLimitError("max_length", len(node.canonical), config.max_length)
    if node.kind in (Kind.SCALAR, Kind.GROUP):
        raise FormulaTypeError(f"a formula must be a panel or macro expression, got {node.kind}")
    for sub in node.walk():
        _check_operator(sub, config)
    return node


def _check_operator(node: Node, config: LanguageConfig) -> None:
    if isinstance(node, Operand | Constant):
        return
    if OPERATORS.get(node.name) is not type(node) or not config.allows_operator(node.name):
        raise UnknownOperatorError(f"operator {node.name!r} is not allowed by this LanguageConfig")
    for slot, value in zip(node.signature, node.arguments, strict=True):
        if slot in (Slot.WINDOW, Slot.LAG):
            config.text_literal(node.name, slot, value)


def canonical(formula: Node | str) -> str:
    """The canonical text: the formula's identity (database key, cache key, message key)."""
    if isinstance(formula, str):
        formula = parse(formula)
    return formula.canonical


def formula_hash(formula: Node | str) -> str:
    """SHA-256 (hex) of the canonical text, UTF-8 encoded; stable across processes."""
    return hashlib.sha256(canonical(formula).encode("utf-8")).hexdigest()
