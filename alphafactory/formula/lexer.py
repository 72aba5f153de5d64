"""Tokenizer for formula text: numbers, ASCII identifiers, ``+ - * / ( ) ,``.

Tokens are produced lazily, so a malformed tail is never scanned once the parser fails
earlier; anything else (quotes, dots after names, brackets, non-ASCII) is an error naming
the column.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterator
from dataclasses import dataclass

from alphafactory.formula.errors import FormulaSyntaxError

_NUMBER = re.compile(r"(?:[0-9]+\.?[0-9]*|\.[0-9]+)(?:[eE][+-]?[0-9]+)?")
_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_PUNCTUATION = frozenset("+-*/(),")
_SPACE = frozenset(" \t\r\n")
_MAX_LITERAL = 64  # characters; longer numbers are not plausible factor constants


@dataclass(frozen=True, slots=True)
class Token:
    kind: str  # "number", "name", "end", or the punctuation character itself
    text: str
    column: int  # 1-based
    value: float = 0.0

    def describe(self) -> str:
        return "end of formula" if self.kind == "end" else repr(self.text)


def tokenize(text: str) -> Iterator[Token]:
    position, length = 0, len(text)
    while position < length:
        char = text[position]
        if char in _SPACE:
            position += 1
            continue
        column = position + 1
        if char in _PUNCTUATION:
            yield Token(char, char, column)
            position += 1
            continue
        match = _NUMBER.match(text, position)
        if match:
            yield _number(match.group(), column, text, match.end())
            position = match.end()
            continue
        match = _NAME.match(text, position)
        if match:
            yield Token("name", match.group(), column)
            position = match.end()
            continue
        raise FormulaSyntaxError(f"unexpected character {char!r}", column=column)
    yield Token("end", "", length + 1)


def _number(literal: str, column: int, text: str, end: int) -> Token:
    if end < len(text) and (text[end].isalnum() or text[end] in "._"):
        raise FormulaSyntaxError(f"malformed number starting {literal!r}", column=column)
    if len(literal) > _MAX_LITERAL:
        raise FormulaSyntaxError(
            f"number literal longer than {_MAX_LITERAL} characters", column=column
        )
    value = float(literal)
    if not math.isfinite(value):
        raise FormulaSyntaxError(f"number {literal!r} is out of range", column=column)
    return Token("number", literal, column, value)
