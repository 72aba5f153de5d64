"""Recursive-descent parser: formula text -> typed, canonical ``Node`` tree.

Grammar (``-`` binds tighter than ``*``; a minus directly on a literal makes a negative
literal)::

    formula := expr END
    expr    := term (("+" | "-") term)*
    term    := unary (("*" | "/") unary)*
    unary   := "-" unary | primary
    primary := NUMBER | NAME | NAME "(" arguments ")" | "(" expr ")"

Each call's arguments follow its operator's signature: expressions, integer window / lag
literals (any integer from 1 to ``max_window``, not only the generator's sets), a positive
literal ``k``, or a group field name. Limits are enforced while parsing (source length
before anything else, nesting and node count as they grow), so hostile input is rejected
in time proportional to the allowed size, never the input size.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterator, Mapping

from alphafactory.formula.config import DEFAULT_CONFIG, LanguageConfig
from alphafactory.formula.errors import (
    FormulaError,
    FormulaLimitError,
    FormulaSyntaxError,
    FormulaTypeError,
    UnknownOperandError,
    UnknownOperatorError,
)
from alphafactory.formula.lexer import Token, tokenize
from alphafactory.formula.nodes import Constant, Kind, Node, Operand, Slot
from alphafactory.formula.operators import CALLABLE, INFIX, OPERATORS, Neg

OperandKinds = Mapping[str, Kind | str]


def parse(
    text: str, operands: OperandKinds | None = None, config: LanguageConfig = DEFAULT_CONFIG
) -> Node:
    """Parse ``text`` into a formula.

    ``operands`` maps each allowed operand name to its kind (``"panel"``, ``"macro"`` or
    ``"group"``; ``Panel.operand_kinds`` gives it). Without it any name is accepted as a
    per-asset field (or a group field in group position): enough to canonicalise or hash,
    not to type-check macro formulas. Raises only ``FormulaError`` subclasses.
    """
    if not isinstance(text, str):
        raise FormulaSyntaxError(f"a formula must be a string, got {type(text).__name__}")
    if len(text) > config.max_length:
        raise FormulaLimitError("max_length", len(text), config.max_length)
    return _Parser(text, operands, config).formula()


def resolve_operand(name: str, operands: OperandKinds | None, *, group_slot: bool) -> Operand:
    """The operand ``name`` with its kind from ``operands`` (unknown names are errors)."""
    if operands is None:
        return Operand(name, Kind.GROUP if group_slot else Kind.PANEL)
    kind = operands.get(name)
    if kind is None:
        hint = ""
        if name in OPERATORS:
            hint = f"; {name} is an operator, call it as {name}(...)"
        else:
            close = difflib.get_close_matches(name, list(operands), n=3)
            hint = f"; did you mean {', '.join(close)}?" if close else ""
        raise UnknownOperandError(
            f"unknown operand {name!r}: not a field, macro series or group of the panel{hint}"
        )
    try:
        return Operand(name, Kind(kind))
    except ValueError:
        raise FormulaTypeError(
            f"operand {name!r} has kind {kind!r}; kinds are panel, macro and group"
        ) from None


class _Parser:
    def __init__(self, text: str, operands: OperandKinds | None, config: LanguageConfig):
        self._tokens: Iterator[Token] = tokenize(text)
        self._token = next(self._tokens)
        self._operands = operands
        self._config = config
        self._nesting = 0
        self._count = 0

    # -- token helpers ---------------------------------------------------------------
    def _advance(self) -> Token:
        token = self._token
        self._token = next(self._tokens)
        return token

    def _expect(self, kind: str, expected: str) -> Token:
        if self._token.kind != kind:
            raise FormulaSyntaxError(
                f"unexpected {self._token.describe()}",
                column=self._token.column,
                expected=[expected],
            )
        return self._advance()

    def _enter(self, column: int) -> None:
        # Nesting (parentheses, calls, unary minus) never exceeds the depth of a canonical
        # formula, so bounding it by max_depth rejects nothing valid and caps recursion.
        self._nesting += 1
        if self._nesting > self._config.max_depth:
            raise FormulaLimitError(
                "max_depth", self._nesting, self._config.max_depth, column=column
            )

    def _make(self, cls: type[Node], args: tuple, column: int) -> Node:
        try:
            node = cls(*args)
        except FormulaError as error:
            raise error.at(column) from None
        self._count += 1
        if self._count > self._config.max_nodes:
            raise FormulaLimitError("max_nodes", self._count, self._config.max_nodes, column=column)
        if node.depth > self._config.max_depth:
            raise FormulaLimitError("max_depth", node.depth, self._config.max_depth, column=column)
        return node

    # -- grammar -----------------------------------------------------------------------
    def formula(self) -> Node:
        node = self._expr()
        if self._token.kind != "end":
            raise FormulaSyntaxError(
                f"unexpected {self._token.describe()}",
                column=self._token.column,
                expected=["an operator (+ - * /)", "end of formula"],
            )
        if node.kind in (Kind.SCALAR, Kind.GROUP):
            raise FormulaTypeError(
                f"a formula must be a panel or macro expression, got a {node.kind} ({node})",
                column=1,
            )
        return node

    def _binary_chain(self, symbols: str, operand) -> Node:
        left = operand()
        while self._token.kind in symbols:
            token = self._advance()
            cls = INFIX[token.kind]
            self._check_allowed(cls.name, token.column)
            left = self._make(cls, (left, operand()), token.column)
        return left

    def _expr(self) -> Node:
        return self._binary_chain("+-", self._term)

    def _term(self) -> Node:
        return self._binary_chain("*/", self._unary)

    def _unary(self) -> Node:
        if self._token.kind != "-":
            return self._primary()
        token = self._advance()
        self._enter(token.column)
        inner = self._unary()
        self._nesting -= 1
        if isinstance(inner, Constant):  # a negative literal, not an operator
            return Constant(-inner.value)
        self._check_allowed("neg", token.column)
        return self._make(Neg, (inner,), token.column)

    def _primary(self) -> Node:
        token = self._token
        if token.kind == "number":
            self._advance()
            return self._make(Constant, (token.value,), token.column)
        if token.kind == "name":
            self._advance()
            if self._token.kind == "(":
                return self._call(token)
            return self._leaf(token, group_slot=False)
        if token.kind == "(":
            self._advance()
            self._enter(token.column)
            node = self._expr()
            self._nesting -= 1
            self._expect(")", "')'")
            return node
        raise FormulaSyntaxError(
            f"unexpected {token.describe()}",
            column=token.column,
            expected=["a number", "a name", "'('", "'-'"],
        )

    def _leaf(self, token: Token, *, group_slot: bool) -> Node:
        try:
            operand = resolve_operand(token.text, self._operands, group_slot=group_slot)
        except FormulaError as error:
            raise error.at(token.column) from None
        return self._make(Operand, (operand.name, operand.operand_kind), token.column)

    def _check_allowed(self, name: str, column: int) -> None:
        if not self._config.allows_operator(name):
            raise UnknownOperatorError(
                f"operator {name!r} is not allowed by this LanguageConfig", column=column
            )

    def _call(self, name: Token) -> Node:
        cls = CALLABLE.get(name.text)
        if cls is None:
            close = difflib.get_close_matches(name.text, list(CALLABLE), n=3)
            raise UnknownOperatorError(
                f"unknown operator {name.text!r}", column=name.column, expected=close
            )
        self._check_allowed(cls.name, name.column)
        self._enter(name.column)
        self._advance()  # "("
        args = []
        for index, slot in enumerate(cls.signature):
            if index:
                self._expect(",", f"',' before argument {index + 1} of {cls.name}")
            args.append(self._argument(cls, slot))
        self._expect(")", f"')' closing {cls.name}(...) ({len(cls.signature)} arguments)")
        self._nesting -= 1
        return self._make(cls, tuple(args), name.column)

    def _argument(self, cls: type[Node], slot: Slot):
        if slot is Slot.VALUE:
            return self._expr()
        if slot is Slot.GROUP:
            token = self._expect("name", f"a group field name for {cls.name}")
            return self._leaf(token, group_slot=True)
        what = {Slot.WINDOW: "an integer window", Slot.LAG: "an integer lag", Slot.K: "a number k"}
        token = self._expect("number", f"{what[slot]} literal for {cls.name}")
        return self._literal(cls, slot, token)

    def _literal(self, cls: type[Node], slot: Slot, token: Token) -> int | float:
        if slot is Slot.K:
            return token.value
        # the text, not the float value, decides: "20.0" or "2e1" is not an integer literal
        value = int(token.text) if token.text.isdigit() else token.text
        try:
            return self._config.text_literal(cls.name, slot, value)
        except FormulaError as error:
            raise error.at(token.column) from None
