"""Errors of the metrics layer.

Hierarchy::

    MetricsError (ValueError)      bad inputs to a metric: shapes, horizon, dates
    └── DefinitionError            an alpha definition that does not parse or evaluate
"""

from __future__ import annotations


class MetricsError(ValueError):
    """Root of the metrics layer's errors: the message names the offending value."""


class DefinitionError(MetricsError):
    """An alpha definition was rejected; ``column`` (1-based) points at the fault if known."""

    def __init__(self, message: str, *, text: str | None = None, column: int | None = None):
        self.text = text
        self.column = column
        if column is not None:
            message = f"column {column}: {message}"
            if text is not None and len(text) <= 200:
                message = f"{message}\n  {text}\n  {' ' * (column - 1)}^"
        super().__init__(message)
