"""The factor formula language: text and token forms, types, canonical identity.

    >>> f = parse("rank(close - ts_mean(close, 20))", {"close": "panel"})
    >>> str(f), f.lookback, to_tokens(f)[:2]
    ('rank(close - ts_mean(close, 20))', 19, ['rank', 'sub'])

Numeric evaluation lives in ``alphafactory.evaluate``.
"""

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
from alphafactory.formula.check import bind, canonical, check, formula_hash
from alphafactory.formula.config import DEFAULT_CONFIG, LanguageConfig
from alphafactory.formula.errors import (
    FormulaError,
    FormulaLimitError,
    FormulaSyntaxError,
    FormulaTypeError,
    UnknownOperandError,
    UnknownOperatorError,
    WindowError,
)
from alphafactory.formula.grammar import GrammarState, batch_masks, random_formula
from alphafactory.formula.nodes import Constant, Kind, Node, Operand, Slot
from alphafactory.formula.operators import OPERATORS, SEMANTICS
from alphafactory.formula.parser import parse
from alphafactory.formula.tokens import Vocabulary, from_tokens, to_tokens

Formula = Node  # a formula is its root node

__all__ = [
    "DEFAULT_CONFIG",
    "OPERATORS",
    "SEMANTICS",
    "Binary",
    "Constant",
    "CrossSectional",
    "Formula",
    "FormulaError",
    "FormulaLimitError",
    "FormulaSyntaxError",
    "FormulaTypeError",
    "GrammarState",
    "GroupDemean",
    "Kind",
    "Lag",
    "LanguageConfig",
    "Node",
    "Operand",
    "PairRolling",
    "Rolling",
    "Slot",
    "Unary",
    "UnknownOperandError",
    "UnknownOperatorError",
    "Vocabulary",
    "WindowError",
    "Winsorize",
    "batch_masks",
    "bind",
    "canonical",
    "check",
    "formula_hash",
    "from_tokens",
    "parse",
    "random_formula",
    "to_tokens",
]
