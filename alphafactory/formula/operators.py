"""The operators of the language, one line each; semantics are documented in ``SEMANTICS``.

Numeric kernels are in ``alphafactory.evaluate.kernels`` (keyed by these classes); a test
checks that every operator here has one and that each matches a naive pandas oracle.
"""

from __future__ import annotations

from alphafactory.formula.bases import (
    Binary,
    CrossSectional,
    GroupDemean,
    Lag,
    PairRolling,
    Rolling,
    Unary,
    Winsorize,
)
from alphafactory.formula.nodes import Node


class Neg(Unary):
    name = "neg"
    precedence = 3

    def _text(self) -> str:
        inner = self.x.canonical
        return f"-({inner})" if self.x.precedence < 3 else f"-{inner}"


class Abs(Unary):
    name = "abs"


class Sign(Unary):
    name = "sign"


class Log(Unary):
    name = "log"


class Slog(Unary):
    name = "slog"


class Sqrt(Unary):
    name = "sqrt"


class Square(Unary):
    name = "square"


class Inv(Unary):
    name = "inv"


class Add(Binary):
    name, symbol, commutative = "add", "+", True


class Sub(Binary):
    name, symbol = "sub", "-"


class Mul(Binary):
    name, symbol, commutative = "mul", "*", True


class Div(Binary):
    name, symbol = "div", "/"


class Max(Binary):
    name, commutative = "max", True


class Min(Binary):
    name, commutative = "min", True


class Delay(Lag):
    name = "delay"


class Delta(Lag):
    name = "delta"


class PctChange(Lag):
    name = "pct_change"


class TsMean(Rolling):
    name = "ts_mean"


class TsSum(Rolling):
    name = "ts_sum"


class TsStd(Rolling):
    name = "ts_std"


class TsMin(Rolling):
    name = "ts_min"


class TsMax(Rolling):
    name = "ts_max"


class TsRank(Rolling):
    name = "ts_rank"


class TsZscore(Rolling):
    name = "ts_zscore"


class TsArgmax(Rolling):
    name = "ts_argmax"


class TsArgmin(Rolling):
    name = "ts_argmin"


class DecayLinear(Rolling):
    name = "decay_linear"


class Ema(Rolling):
    name = "ema"


class TsCorr(PairRolling):
    name = "ts_corr"


class TsCov(PairRolling):
    name = "ts_cov"


class Rank(CrossSectional):
    name = "rank"


class Zscore(CrossSectional):
    name = "zscore"


class Demean(CrossSectional):
    name = "demean"


class Scale(CrossSectional):
    name = "scale"


# one line per operator family (kept by hand: fmt: skip)
_ALL: tuple[type[Node], ...] = (
    Neg, Abs, Sign, Log, Slog, Sqrt, Square, Inv,
    Add, Sub, Mul, Div, Max, Min,
    Delay, Delta, PctChange,
    TsMean, TsSum, TsStd, TsMin, TsMax, TsRank, TsZscore, TsArgmax, TsArgmin, DecayLinear, Ema,
    TsCorr, TsCov,
    Rank, Zscore, Demean, Scale, Winsorize, GroupDemean,
)  # fmt: skip

# name -> class, in a fixed order (the token vocabulary lists operators in this order)
OPERATORS: dict[str, type[Node]] = {op.name: op for op in _ALL}
# spelled as symbols in text; callable by name only in token sequences
INFIX = {op.symbol: op for op in _ALL if issubclass(op, Binary) and op.symbol}
_SPELLED_AS_SYMBOLS = {"neg", "add", "sub", "mul", "div"}
CALLABLE = {name: op for name, op in OPERATORS.items() if name not in _SPELLED_AS_SYMBOLS}

SEMANTICS = {
    "abs": "|x|",
    "sign": "sign(x) (NaN stays NaN)",
    "log": "ln(x), NaN where x <= 0",
    "slog": "sign(x) * ln(1 + |x|)",
    "sqrt": "sqrt(x), NaN where x < 0",
    "square": "x * x",
    "inv": "1 / x, NaN where |x| < 1e-12",
    "neg": "-x",
    "add": "x + y",
    "sub": "x - y",
    "mul": "x * y",
    "div": "x / y, NaN where |y| < 1e-12 (never inf)",
    "max": "elementwise max (NaN wins)",
    "min": "elementwise min (NaN wins)",
    "delay": "x shifted d rows later",
    "delta": "x - delay(x, d)",
    "pct_change": "x / delay(x, d) - 1, NaN where |delay(x, d)| < 1e-12",
    "ts_mean": "rolling mean",
    "ts_sum": "rolling sum",
    "ts_std": "rolling std, ddof=1",
    "ts_min": "rolling min",
    "ts_max": "rolling max",
    "ts_rank": "pandas rolling(w).rank(pct=True): average ties, divided by w",
    "ts_zscore": "(x - ts_mean) / ts_std, NaN where ts_std < 1e-12",
    "ts_argmax": "0-based row of the max inside the window, oldest = 0, first on ties",
    "ts_argmin": "0-based row of the min inside the window, oldest = 0, first on ties",
    "decay_linear": "weighted mean with weights w..1, newest heaviest",
    "ema": "pandas ewm(span=w, adjust=True).mean() of the last w rows only (finite memory)",
    "ts_corr": "rolling Pearson correlation, NaN where either series is constant",
    "ts_cov": "rolling covariance, ddof=1",
    "rank": "per date rank(pct=True), average ties",
    "zscore": "per date (x - mean) / std, ddof=1",
    "demean": "per date x - mean",
    "scale": "per date x / sum|x|",
    "winsorize": "per date clip to mean +- k * std (ddof=1); unchanged where std is undefined",
    "group_demean": "per date x - mean of x within the asset's group (codes < 0: no group)",
}
# every time-series operator gives NaN where its window holds any missing value
