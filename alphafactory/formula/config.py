"""What a formula may contain: allowed literals, operators and size limits.

One ``LanguageConfig`` is shared by the parser, the token vocabulary and the grammar state
machine, so text, token sequences and generated formulas obey the same rules. Windows are
literals from a small set so that generated formulas stay comparable across strategies and
the evaluator's work per operator is bounded.
"""

from __future__ import annotations

from dataclasses import dataclass

from alphafactory.formula.errors import FormulaError

# Python needs about 5 frames per nesting level of the recursive-descent parser; this
# keeps the deepest allowed formula far from the interpreter's recursion limit.
HARD_MAX_DEPTH = 100


@dataclass(frozen=True)
class LanguageConfig:
    # time-series windows (ts_mean, ts_std, ts_corr, ...): rows of history, min_periods = w
    windows: tuple[int, ...] = (2, 3, 5, 10, 20, 40, 60, 120, 250)
    # shifts of delay / delta / pct_change
    lags: tuple[int, ...] = (1, 2, 3, 5, 10, 20, 40, 60, 120, 250)
    # numeric constants the token vocabulary offers (text may use any finite literal)
    constants: tuple[float, ...] = (-1.0, 0.5, 1.0, 2.0, 3.0, 10.0)
    # winsorize(x, k) thresholds the token vocabulary offers (text may use any k > 0)
    winsorize_ks: tuple[float, ...] = (2.0, 3.0, 4.0)
    # operator names allowed; None allows every operator of the language
    operators: tuple[str, ...] | None = None
    max_length: int = 1024  # characters of source text
    max_depth: int = 16  # levels of the expression tree (a leaf alone has depth 1)
    max_nodes: int = 64  # operators + operands + constants (window literals not counted)

    def __post_init__(self) -> None:
        for name in ("windows", "lags"):
            values = getattr(self, name)
            if not values or any(not isinstance(v, int) or v < 1 for v in values):
                raise FormulaError(f"LanguageConfig.{name} must be positive ints, got {values}")
            object.__setattr__(self, name, tuple(sorted(set(values))))
        if 1 in self.windows:
            raise FormulaError("LanguageConfig.windows may not contain 1 (a window of one row)")
        if any(k <= 0 for k in self.winsorize_ks):
            raise FormulaError(f"winsorize_ks must be positive, got {self.winsorize_ks}")
        object.__setattr__(self, "constants", tuple(sorted({float(c) for c in self.constants})))
        ks = tuple(sorted({float(k) for k in self.winsorize_ks}))
        object.__setattr__(self, "winsorize_ks", ks)
        if not 1 <= self.max_depth <= HARD_MAX_DEPTH:
            raise FormulaError(f"max_depth must be in 1..{HARD_MAX_DEPTH}, got {self.max_depth}")
        if self.max_length < 1 or self.max_nodes < 1:
            raise FormulaError("max_length and max_nodes must be positive")

    @classmethod
    def daily(cls, **overrides) -> LanguageConfig:
        return cls(**overrides)

    @classmethod
    def monthly(cls, **overrides) -> LanguageConfig:
        """Windows in months, e.g. for macro series and monthly asset-class panels."""
        values = {"windows": (2, 3, 6, 12, 24, 36, 60), "lags": (1, 2, 3, 6, 12, 24)}
        return cls(**(values | overrides))

    def allows_operator(self, name: str) -> bool:
        return self.operators is None or name in self.operators


DEFAULT_CONFIG = LanguageConfig()
