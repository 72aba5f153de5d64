"""What a formula may contain: allowed literals, operators and size limits.

One ``LanguageConfig`` is shared by the parser, the token vocabulary and the grammar state
machine. Windows and lags have two rules:

* text (``parse`` / ``check``: ``factor eval``, the Python API, strategy files) accepts any
  integer from 1 to ``max_window``, so a user's 14-day stochastic is a formula;
* token sequences (the generator's action space: vocabulary, grammar masks, mutation)
  use only the small sets ``windows`` and ``lags``, so generated formulas stay comparable
  across strategies and the model has few literal tokens to learn.

Every generated formula is also valid text; not every text formula has tokens, and
``to_tokens(formula, vocab)`` names the window the generator could not have written.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

from alphafactory.formula.errors import FormulaError, WindowError

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
    # largest window or lag text may use (the sets above must fit in it). The window kernels
    # re-read their w rows for every value, so cost grows linearly with w: 1,000 rows (about
    # four years of trading days, 80 years of months) is 4x the largest generated window,
    # covers the windows technicians write (14, 21, 50, 200, 252, 504), and keeps one
    # operator on a 2,520 x 3,000 daily panel to seconds (1-6 s at w = 1,000 on the 2-core
    # VM, ts_corr the slowest), not minutes. It also bounds the history (lookback) a service
    # must load. Not in the vocabulary fingerprint: it never changes a token sequence.
    max_window: int = 1000

    def __post_init__(self) -> None:
        for name in ("windows", "lags"):
            values = getattr(self, name)
            if not values or any(not isinstance(v, int) or v < 1 for v in values):
                raise FormulaError(f"LanguageConfig.{name} must be positive ints, got {values}")
            object.__setattr__(self, name, tuple(sorted(set(values))))
        if 1 in self.windows:
            raise FormulaError("LanguageConfig.windows may not contain 1 (a window of one row)")
        largest = max(*self.windows, *self.lags)
        if isinstance(self.max_window, bool) or not isinstance(self.max_window, int):
            raise FormulaError(f"LanguageConfig.max_window must be an int, got {self.max_window!r}")
        if self.max_window < largest:
            raise FormulaError(
                f"LanguageConfig.max_window={self.max_window} is below the largest window "
                f"or lag of the action space ({largest}); raise max_window"
            )
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

    def text_literal(self, op: str, slot: str, value: int | str) -> int:
        """``value`` if it is a window / lag text may use (an int in 1..max_window), else
        ``WindowError`` naming the operator, the value (or its text) and the allowed range."""
        integer = isinstance(value, int) and not isinstance(value, bool)
        if not (integer and 1 <= value <= self.max_window):
            raise WindowError(
                f"{op}: the {slot} must be an integer from 1 to {self.max_window} "
                f"(LanguageConfig.max_window), got {value}"
            )
        return value

    def action_literal(self, op: str, slot: str, value: float) -> int:
        """``value`` if the generator's tokens offer it as a ``slot`` (window or lag), else
        ``WindowError`` naming the value and the sets: the action space is deliberately
        small, text accepts any window up to ``max_window``."""
        allowed = self.windows if slot == "window" else self.lags
        if value not in allowed:
            raise WindowError(
                f"{op}: the generator's tokens have no {slot} {value}; its {slot}s are "
                f"{', '.join(map(str, allowed))} (LanguageConfig.{slot}s). Evaluate the "
                f"formula as text, or add {value} to the {slot}s and retrain the generator"
            )
        return int(value)

    def generator_rules(self) -> dict:
        """The fields that shape token sequences, for the vocabulary fingerprint: all but
        ``max_window``, which bounds text only, so raising it keeps a trained model usable."""
        rules = dataclasses.asdict(self)
        del rules["max_window"]
        return rules


DEFAULT_CONFIG = LanguageConfig()
