"""Alpha definitions: the user's rule for which factors count as alphas.

Grammar (keywords and names are case-insensitive; never ``eval``)::

    definition := or
    or         := and ("or" and)*
    and        := not ("and" not)*
    not        := "not" not | "(" or ")" | comparison
    comparison := operand (OP operand)+      OP: < <= > >= == !=
    operand    := METRIC | ["-" | "+"] NUMBER["%"]

``10%`` is 0.10. A chain ``0.1 < turnover < 0.5`` means ``0.1 < turnover and turnover <
0.5``; each comparison must name a metric. Metric names come from :data:`KNOWN_METRICS`
(aliases such as ``sharpe`` or ``cagr`` map to them). A factor whose metrics used by the
definition include a NaN is not qualified, whatever the logic (so ``not`` cannot turn an
undefined metric into a pass). The canonical ``str()`` parses back to an equal definition.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import NoReturn

import numpy as np

from alphafactory.metrics.errors import DefinitionError
from alphafactory.metrics.factor import CONTRACT_KEYS, FactorMetrics

KNOWN_METRICS = CONTRACT_KEYS + ("n_ic_dates", "max_pool_correlation")
ALIASES = {
    "sharpe": "ls_sharpe",
    "cagr": "ls_annual_return",
    "annual_return": "ls_annual_return",
    "max_drawdown": "ls_max_drawdown",
    "drawdown": "ls_max_drawdown",
    "tstat": "hac_tstat",
}
MAX_LENGTH = 10_000  # characters
MAX_DEPTH = 50  # nested parentheses and nots

_COMPARE = {
    "<": np.less,
    "<=": np.less_equal,
    ">": np.greater,
    ">=": np.greater_equal,
    "==": np.equal,
    "!=": np.not_equal,
}
_TOKEN = re.compile(
    r"(?P<number>(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?%?)|(?P<name>[A-Za-z_]\w*)"
    r"|(?P<op><=|>=|==|!=|<|>)|(?P<punct>[()+-])",
    re.ASCII,
)


@dataclass(frozen=True)
class Metric:
    name: str

    def __str__(self) -> str:
        return self.name


@dataclass(frozen=True)
class Number:
    value: float

    def __str__(self) -> str:
        v = self.value
        return str(int(v)) if v.is_integer() and abs(v) < 1e15 else repr(v)


@dataclass(frozen=True)
class Compare:
    left: Metric | Number
    op: str
    right: Metric | Number

    def __str__(self) -> str:
        return f"{self.left} {self.op} {self.right}"


@dataclass(frozen=True)
class Not:
    term: Node

    def __str__(self) -> str:
        return f"not ({self.term})"


@dataclass(frozen=True)
class And:
    terms: tuple[Node, ...]

    def __str__(self) -> str:
        return " and ".join(f"({t})" if isinstance(t, Or) else str(t) for t in self.terms)


@dataclass(frozen=True)
class Or:
    terms: tuple[Node, ...]

    def __str__(self) -> str:
        return " or ".join(str(t) for t in self.terms)


Node = Compare | Not | And | Or


@dataclass(frozen=True)
class AlphaDefinition:
    root: Node

    def __str__(self) -> str:
        return str(self.root)

    @property
    def metrics(self) -> frozenset[str]:
        """Canonical names of the metrics the definition reads."""
        return frozenset(_metric_names(self.root))

    def evaluate(self, metrics: Mapping[str, float | None] | FactorMetrics) -> bool:
        """Whether one factor's metrics qualify it; a NaN (or None, JSON's null) among
        the metrics the definition uses means no."""
        if isinstance(metrics, FactorMetrics):
            metrics = metrics.to_dict()
        return bool(self.evaluate_batch(metrics))

    def evaluate_batch(self, metrics: Mapping[str, float | np.ndarray]) -> np.ndarray:
        """Element-wise over arrays of metrics (one entry per factor) -> bool array."""
        values = {}
        for name in self.metrics:
            if name not in metrics:
                raise DefinitionError(
                    f"metric {name!r} is not among the metrics given ({sorted(metrics)})"
                )
            try:
                values[name] = np.asarray(metrics[name], dtype=np.float64)
            except (TypeError, ValueError) as e:
                raise DefinitionError(f"metric {name!r} is not a number: {metrics[name]!r}") from e
        undefined = np.zeros((), dtype=bool)
        for value in values.values():
            undefined = undefined | np.isnan(value)
        return np.asarray(_evaluate(self.root, values) & ~undefined)


def _metric_names(node: Node) -> list[str]:
    if isinstance(node, Compare):
        return [o.name for o in (node.left, node.right) if isinstance(o, Metric)]
    if isinstance(node, Not):
        return _metric_names(node.term)
    return [name for term in node.terms for name in _metric_names(term)]


def _evaluate(node: Node, values: dict[str, np.ndarray]) -> np.ndarray:
    if isinstance(node, Compare):
        left, right = (
            values[o.name] if isinstance(o, Metric) else o.value for o in (node.left, node.right)
        )
        return _COMPARE[node.op](left, right)
    if isinstance(node, Not):
        return ~_evaluate(node.term, values)
    combine = np.logical_and if isinstance(node, And) else np.logical_or
    result = _evaluate(node.terms[0], values)
    for term in node.terms[1:]:
        result = combine(result, _evaluate(term, values))
    return result


def parse_definition(text: str) -> AlphaDefinition:
    """Parse a user's alpha definition; every rejection is a :class:`DefinitionError`."""
    if not isinstance(text, str):
        raise DefinitionError(f"a definition is text, got {type(text).__name__}")
    if len(text) > MAX_LENGTH:
        raise DefinitionError(f"definition is {len(text)} characters; the limit is {MAX_LENGTH}")
    parser = _Parser(text)
    root = parser.parse_or(0)
    if parser.peek()[0] != "end":
        parser.fail("expected 'and', 'or' or the end of the definition")
    return AlphaDefinition(root)


class _Parser:
    """Recursive descent over a token list ``(kind, text, column)``."""

    def __init__(self, text: str) -> None:
        self.text = text
        self.tokens = _tokenize(text)
        self.pos = 0

    def peek(self) -> tuple[str, str, int]:
        return self.tokens[self.pos]

    def take(self) -> tuple[str, str, int]:
        token = self.tokens[self.pos]
        self.pos += 1
        return token

    def fail(self, expected: str) -> NoReturn:
        kind, word, column = self.peek()
        found = "the end" if kind == "end" else repr(word)
        raise DefinitionError(f"{expected}, found {found}", text=self.text, column=column)

    def keyword(self, word: str) -> bool:
        kind, text, _ = self.peek()
        if kind == "name" and text.lower() == word:
            self.pos += 1
            return True
        return False

    def parse_or(self, depth: int) -> Node:
        terms = _flatten(Or, [self.parse_and(depth)])
        while self.keyword("or"):
            terms += _flatten(Or, [self.parse_and(depth)])
        return terms[0] if len(terms) == 1 else Or(tuple(terms))

    def parse_and(self, depth: int) -> Node:
        terms = _flatten(And, [self.parse_not(depth)])
        while self.keyword("and"):
            terms += _flatten(And, [self.parse_not(depth)])
        return terms[0] if len(terms) == 1 else And(tuple(terms))

    def parse_not(self, depth: int) -> Node:
        if depth >= MAX_DEPTH:
            raise DefinitionError(
                f"nesting deeper than {MAX_DEPTH} levels", text=self.text, column=self.peek()[2]
            )
        if self.keyword("not"):
            return Not(self.parse_not(depth + 1))
        if self.peek()[1] == "(":
            self.take()
            inner = self.parse_or(depth + 1)
            if self.peek()[1] != ")":
                self.fail("expected ')'")
            self.take()
            return inner
        return self.parse_comparison()

    def parse_comparison(self) -> Node:
        column = self.peek()[2]
        operands = [self.parse_operand()]
        ops = []
        while self.peek()[0] == "op":
            ops.append(self.take()[1])
            operands.append(self.parse_operand())
        if not ops:
            self.fail("expected a comparison operator (< <= > >= == !=)")
        if not any(isinstance(o, Metric) for o in operands):
            raise DefinitionError("a comparison must name a metric", text=self.text, column=column)
        pairs = [Compare(a, op, b) for a, op, b in zip(operands, ops, operands[1:], strict=False)]
        return pairs[0] if len(pairs) == 1 else And(tuple(pairs))

    def parse_operand(self) -> Metric | Number:
        kind, word, column = self.peek()
        if kind == "name" and word.lower() not in ("and", "or", "not"):
            self.take()
            return Metric(_metric_name(word, self.text, column))
        sign = 1.0
        if word in ("-", "+"):
            self.take()
            sign = -1.0 if word == "-" else 1.0
            kind, word, column = self.peek()
        if kind != "number":
            self.fail("expected a metric name or a number")
        self.take()
        return Number(sign * _number(word, self.text, column))


def _flatten(kind: type[And] | type[Or], nodes: list[Node]) -> list[Node]:
    return [t for n in nodes for t in (n.terms if isinstance(n, kind) else (n,))]


def _metric_name(word: str, text: str, column: int) -> str:
    name = ALIASES.get(word.lower(), word.lower())
    if name not in KNOWN_METRICS:
        raise DefinitionError(
            f"unknown metric {word!r}; known metrics: {', '.join(KNOWN_METRICS)} "
            f"(aliases: {', '.join(f'{a}={m}' for a, m in ALIASES.items())})",
            text=text,
            column=column,
        )
    return name


def _number(word: str, text: str, column: int) -> float:
    value = float(word.rstrip("%")) / (100.0 if word.endswith("%") else 1.0)
    if not math.isfinite(value):
        raise DefinitionError(f"number {word!r} is not finite", text=text, column=column)
    return value


def _tokenize(text: str) -> list[tuple[str, str, int]]:
    tokens, pos = [], 0
    while True:
        while pos < len(text) and text[pos].isspace():
            pos += 1
        if pos == len(text):
            return tokens + [("end", "", pos + 1)]
        match = _TOKEN.match(text, pos)
        if match is None:
            hint = " (use '==')" if text[pos] == "=" else ""
            raise DefinitionError(
                f"unexpected character {text[pos]!r}{hint}", text=text, column=pos + 1
            )
        kind = match.lastgroup or "punct"
        tokens.append((kind, match.group(kind), match.start(kind) + 1))
        pos = match.end()
