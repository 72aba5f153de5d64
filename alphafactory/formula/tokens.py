"""Prefix-order token sequences: the form the generator reads and writes.

``to_tokens(parse("rank(close - ts_mean(close, 20))"))`` is
``["rank", "sub", "close", "ts_mean", "close", "20"]``: each operator (infix ones by name:
``add sub mul div neg``) is followed by its arguments in signature order; literals are their
canonical text. Arity is fixed per operator, so a sequence needs no brackets or end token.

A ``Vocabulary`` numbers the tokens: optional special tokens (never valid inside a formula,
e.g. padding for the model), the operators, the operand names of a panel or strategy, then
literal tokens (windows, lags, constants, winsorize thresholds). One literal token may serve
as a window in one position and as a constant in another; the position decides. The
windows and lags of tokens are the generator's action space (``LanguageConfig.windows`` /
``lags``); text accepts more (any integer up to ``max_window``), so ``to_tokens`` with a
vocabulary refuses the windows the generator could not have written.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
from collections.abc import Iterable, Mapping, Sequence

import numpy as np

from alphafactory.formula.check import check
from alphafactory.formula.config import DEFAULT_CONFIG, LanguageConfig
from alphafactory.formula.errors import FormulaError, FormulaLimitError, FormulaSyntaxError
from alphafactory.formula.nodes import Constant, Kind, Node, Operand, Slot, format_number
from alphafactory.formula.operators import OPERATORS

# Bumped whenever the meaning of a token sequence changes (operators, typing rules, order).
GRAMMAR_VERSION = 1


class Vocabulary:
    def __init__(
        self,
        operands: Mapping[str, Kind | str],
        config: LanguageConfig = DEFAULT_CONFIG,
        specials: Sequence[str] = (),
    ) -> None:
        self.config = config
        try:
            self.operands = {name: Kind(kind) for name, kind in sorted(operands.items())}
        except ValueError as error:
            raise FormulaError(f"operand kinds are panel, macro and group: {error}") from None
        self.specials = tuple(specials)
        unknown = set(config.operators or ()) - set(OPERATORS)
        if unknown:
            raise FormulaError(
                f"LanguageConfig.operators names unknown operators: {sorted(unknown)}"
            )
        self.operators = tuple(name for name in OPERATORS if config.allows_operator(name))
        values = {*config.windows, *config.lags, *config.constants, *config.winsorize_ks}
        self.literals = {format_number(float(v)): float(v) for v in sorted(values)}
        self.tokens: tuple[str, ...] = (
            *self.specials,
            *self.operators,
            *self.operands,
            *self.literals,
        )
        self.index = {token: i for i, token in enumerate(self.tokens)}
        if len(self.index) != len(self.tokens):
            seen: set[str] = set()
            clashes = sorted({t for t in self.tokens if t in seen or seen.add(t)})
            raise FormulaError(
                f"vocabulary tokens clash (operand named like an operator?): {clashes}"
            )

    def __len__(self) -> int:
        return len(self.tokens)

    def to_dict(self) -> dict:
        """Plain JSON data that ``from_dict`` turns back into an equal vocabulary."""
        return {
            "operands": {name: str(kind) for name, kind in self.operands.items()},
            "config": json.loads(json.dumps(dataclasses.asdict(self.config))),
            "specials": list(self.specials),
            "fingerprint": self.fingerprint,
            "grammar_version": GRAMMAR_VERSION,
        }

    @classmethod
    def from_dict(cls, data: Mapping) -> Vocabulary:
        """The vocabulary ``to_dict`` described; refuses another grammar version or a
        description that does not reproduce its fingerprint."""
        if data.get("grammar_version") != GRAMMAR_VERSION:
            raise FormulaError(
                f"vocabulary of grammar version {data.get('grammar_version')}; this "
                f"alphafactory has version {GRAMMAR_VERSION}: retrain the generator"
            )
        config = {
            name: tuple(value) if isinstance(value, list) else value
            for name, value in data["config"].items()
        }
        vocab = cls(data["operands"], LanguageConfig(**config), data.get("specials", ()))
        if vocab.fingerprint != data.get("fingerprint"):
            raise FormulaError("the vocabulary description does not reproduce its fingerprint")
        return vocab

    @property
    def fingerprint(self) -> str:
        """Identifies the token numbering and language rules: a model trained on one
        vocabulary may only be used with a vocabulary of the same fingerprint."""
        text = json.dumps(
            {
                "grammar": GRAMMAR_VERSION,
                "tokens": self.tokens,
                "operands": self.operands,
                "config": self.config.generator_rules(),
            },
            sort_keys=True,
            default=str,
        )
        return hashlib.sha256(text.encode()).hexdigest()[:16]

    def __contains__(self, token: str) -> bool:
        return token in self.index

    def words(self, tokens: Iterable[str | int]) -> list[str]:
        """Token strings for a sequence of token strings or vocabulary ids (checked)."""
        out = []
        for position, token in enumerate(tokens, start=1):
            if isinstance(token, str) and token in self.index:
                out.append(token)
            elif isinstance(token, int | np.integer) and 0 <= int(token) < len(self.tokens):
                out.append(self.tokens[int(token)])
            else:
                raise FormulaSyntaxError(
                    f"token {token!r} is not in the vocabulary", column=position
                )
        return out

    def encode(self, tokens: Iterable[str | int]) -> list[int]:
        return [self.index[word] for word in self.words(tokens)]

    def decode(self, ids: Iterable[int]) -> list[str]:
        return self.words(ids)

    def mask_of(self, tokens: Iterable[str]) -> np.ndarray:
        mask = np.zeros(len(self.tokens), dtype=bool)
        mask[[self.index[t] for t in tokens]] = True
        return mask


def to_tokens(formula: Node, vocab: Vocabulary | None = None) -> list[str]:
    """The prefix-order token sequence of ``formula`` (canonical, so equal formulas agree).

    With ``vocab``, only a sequence the generator could write: a window or lag outside its
    action space raises ``WindowError`` naming it (text allows any window up to
    ``max_window``, tokens only ``windows`` / ``lags``), and any other token the vocabulary
    lacks (a constant, an operand) raises ``FormulaSyntaxError``.
    """
    if vocab is not None:
        for node in formula.walk():
            for slot, value in zip(node.signature, node.arguments, strict=True):
                if slot in (Slot.WINDOW, Slot.LAG):
                    vocab.config.action_literal(node.name, slot, value)
        return vocab.words(_prefix(formula))
    return _prefix(formula)


def _prefix(formula: Node) -> list[str]:
    if isinstance(formula, Operand):
        return [formula.name]
    if isinstance(formula, Constant):
        return [format_number(formula.value)]
    out = [formula.name]
    for argument in formula.arguments:
        if isinstance(argument, Node):
            out.extend(_prefix(argument))
        else:
            out.append(format_number(float(argument)))
    return out


def from_tokens(tokens: Sequence[str | int], vocab: Vocabulary) -> Node:
    """Build and check the formula a prefix token sequence (strings or vocabulary ids) spells.

    Raises ``FormulaSyntaxError`` (``column`` = 1-based token position) for unknown tokens,
    misplaced tokens or an incomplete / overlong sequence, ``WindowError`` for a window or
    lag outside the action space (``windows`` / ``lags``, stricter than text), and the other
    ``FormulaError``s for kinds and limits, exactly as ``parse`` would for the same text.
    """
    words = vocab.words(tokens)
    reader = _PrefixReader(words, vocab)
    node = reader.read(depth=1)
    if reader.position != len(words):
        raise FormulaSyntaxError(
            f"{len(words) - reader.position} tokens left over after a complete formula",
            column=reader.position + 1,
        )
    return check(node, vocab.operands, vocab.config)


class _PrefixReader:
    def __init__(self, words: list[str], vocab: Vocabulary) -> None:
        self.words, self.vocab, self.position = words, vocab, 0

    def _next(self, expected: str) -> str:
        if self.position >= len(self.words):
            raise FormulaSyntaxError(
                "incomplete formula", column=self.position + 1, expected=[expected]
            )
        self.position += 1
        return self.words[self.position - 1]

    def read(self, depth: int) -> Node:
        if depth > self.vocab.config.max_depth:
            raise FormulaLimitError("max_depth", depth, self.vocab.config.max_depth)
        column = self.position + 1
        word = self._next("an operator, operand or constant")
        vocab = self.vocab
        try:
            if word in vocab.operands:
                return Operand(word, vocab.operands[word])
            if word in vocab.literals:
                return Constant(vocab.literals[word])
            if word not in vocab.operators:
                raise FormulaSyntaxError(f"token {word!r} cannot start an expression")
            op = OPERATORS[word]
            args = [self._argument(word, slot, depth) for slot in op.signature]
            return op(*args)
        except FormulaError as error:
            raise error.at(column) from None

    def _argument(self, op: str, slot: Slot, depth: int):
        if slot is Slot.VALUE:
            return self.read(depth + 1)
        column = self.position + 1
        word = self._next(f"a {slot} literal")
        if slot is Slot.GROUP:
            if self.vocab.operands.get(word) is not Kind.GROUP:
                raise FormulaSyntaxError(f"expected a group field, got {word!r}", column=column)
            return Operand(word, Kind.GROUP)
        if word not in self.vocab.literals:
            raise FormulaSyntaxError(f"expected a {slot} literal, got {word!r}", column=column)
        value = self.vocab.literals[word]
        if slot is Slot.K:
            return value
        # tokens are the action space: check() alone would accept any window up to max_window
        try:
            return self.vocab.config.action_literal(op, slot, value)
        except FormulaError as error:
            raise error.at(column) from None
