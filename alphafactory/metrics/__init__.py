"""Factor metrics (DESIGN.md contract 5) and user-written alpha definitions.

Pure numpy: no I/O. Entry points::

    factor_metrics(factor, returns, horizon=1, quantiles=5, dates=...)   -> FactorMetrics
    FactorScorer(returns, ...).score_batch(factors)                        -> [FactorMetrics]
    parse_definition("ls_sharpe > 0.7 and ls_max_drawdown < 10%").evaluate(metrics.to_dict())
"""

from alphafactory.metrics.definitions import KNOWN_METRICS, AlphaDefinition, parse_definition
from alphafactory.metrics.errors import DefinitionError, MetricsError
from alphafactory.metrics.extras import factor_correlations, ic_decay, max_abs_correlation
from alphafactory.metrics.factor import (
    CONTRACT_KEYS,
    FactorMetrics,
    FactorScorer,
    factor_metrics,
    factor_metrics_batch,
    infer_periods_per_year,
)
from alphafactory.metrics.series import series_stats

__all__ = [
    "CONTRACT_KEYS",
    "KNOWN_METRICS",
    "AlphaDefinition",
    "DefinitionError",
    "FactorMetrics",
    "FactorScorer",
    "MetricsError",
    "factor_correlations",
    "factor_metrics",
    "factor_metrics_batch",
    "ic_decay",
    "infer_periods_per_year",
    "max_abs_correlation",
    "parse_definition",
    "series_stats",
]
