"""Errors of the factor formula language.

Hierarchy (only these ever escape ``parse``, ``check``, ``from_tokens`` or node construction)::

    FormulaError                      root: catch this to handle any bad formula
    ├── FormulaSyntaxError            text or tokens that do not form a formula (has ``column``)
    │   └── UnknownOperatorError      a call to a name that is not an operator
    ├── UnknownOperandError           a name the panel / strategy does not provide
    ├── FormulaTypeError              well formed, but the kinds or literals do not fit
    │   └── WindowError               a window / lag outside 1..max_window (text) or the
    │                                 generator's windows / lags (tokens)
    └── FormulaLimitError             over a configured limit (names the limit and the value)
"""

from __future__ import annotations

from collections.abc import Iterable


class FormulaError(ValueError):
    """Root of every error the formula language raises.

    ``column`` is the 1-based character position in the source text where the problem was
    found (for token sequences: the 1-based token position), or ``None`` when unknown.
    """

    def __init__(self, message: str, *, column: int | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.column = column

    def at(self, column: int) -> FormulaError:
        """Attach a position if none was known yet (the parser knows it, nodes do not)."""
        if self.column is None:
            self.column = column
        return self

    def __str__(self) -> str:
        if self.column is None:
            return self.message
        return f"{self.message} (at column {self.column})"


class FormulaSyntaxError(FormulaError):
    """The text is not a formula. ``expected`` says what would have been accepted."""

    def __init__(
        self, message: str, *, column: int | None = None, expected: Iterable[str] = ()
    ) -> None:
        self.expected = tuple(expected)
        if self.expected:
            message = f"{message}; expected {' or '.join(self.expected)}"
        super().__init__(message, column=column)


class UnknownOperatorError(FormulaSyntaxError):
    """A call ``name(...)`` where ``name`` is not an operator of the language."""


class UnknownOperandError(FormulaError):
    """An operand name that is not among the panel's fields, macro series or groups."""


class FormulaTypeError(FormulaError):
    """Arguments of the wrong kind (e.g. a cross-sectional operator on a macro series)."""


class WindowError(FormulaTypeError):
    """A window or lag that is not an allowed integer: text takes 1..``max_window``, token
    sequences only the generator's action space (``LanguageConfig.windows`` / ``lags``)."""


class FormulaLimitError(FormulaError):
    """A formula over a configured limit; ``limit`` names it and ``value`` is what was seen."""

    def __init__(self, limit: str, value: int, maximum: int, *, column: int | None = None):
        self.limit = limit
        self.value = value
        self.maximum = maximum
        super().__init__(
            f"formula exceeds {limit}={maximum}: got {value}; simplify the formula "
            f"or raise {limit} in the LanguageConfig",
            column=column,
        )
