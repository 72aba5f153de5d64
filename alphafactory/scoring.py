"""Many formulas in, their metrics out: the batched path behind rewards, search and workers.

``FormulaScorer`` binds a panel (usually a training or test period), the language config
and the metric options once, then scores lists of formulas at full speed: evaluation shares
sub-expressions, macro formulas are mapped to assets together in one compiled pass, and the
per-date metrics run over stacks of factors (see :mod:`alphafactory.metrics.sections`).
A formula that does not parse or type-check gets ``None``, never an exception, so one bad
formula never costs a batch. This is the one scoring path: the workers, the search and
``alphafactory factor eval`` (through :meth:`FormulaScorer.score_each`, which also reports
why a formula is invalid and, for tear sheets, the per-date series) all score through it.
An ML alpha's text (``ml:ridge(...)``, :mod:`alphafactory.ml.candidate`) is a candidate
like a formula: its values are its walked-forward predictions (:mod:`alphafactory.ml.signal`,
features computed here as formulas are), then scored the same way.

    >>> scorer = FormulaScorer(panel.rows(0, split))
    >>> metrics = scorer.score(["ts_zscore(us_infl, 12)", "rank(close)"])
    >>> ic = metric_values(metrics, "ic")
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass

import numpy as np

from alphafactory.evaluate import Evaluator, macro_scores
from alphafactory.evaluate.macro_mapping import MIN_PERIODS
from alphafactory.formula import FormulaError, LanguageConfig, Node
from alphafactory.metrics import FactorMetrics, FactorScorer, infer_periods_per_year
from alphafactory.ml.candidate import is_ml
from alphafactory.ml.signal import CandidateSignals, PreparedML
from alphafactory.panel import Panel
from alphafactory.traded import PositionRule

# Daily and weekly panels use day windows; monthly, quarterly and annual ones month windows.
_DAY_WINDOW_PERIODS = {252, 52}


def config_for_periods(periods_per_year: float) -> LanguageConfig:
    """Day windows for daily and weekly data, month windows otherwise."""
    if periods_per_year in _DAY_WINDOW_PERIODS:
        return LanguageConfig.daily()
    return LanguageConfig.monthly()


def config_for_panel(panel: Panel) -> LanguageConfig:
    """The language config whose windows suit the panel's date spacing."""
    return config_for_periods(infer_periods_per_year(panel.dates))


@dataclass(frozen=True)
class ScoringOptions:
    horizon: int = 1
    quantiles: int = 5
    # rows of the expanding regressions mapping macro factors to per-asset forecasts
    macro_min_periods: int = MIN_PERIODS
    # the panel group whose classes the forecasts' slopes shrink toward (the asset
    # classes a strategy's risk parity uses); None: each asset keeps its own slope
    class_group: str | None = None
    stack_bytes: int = 256 * 2**20  # memory for one stack of scored factors (T x N each)
    # None: inferred from the scored dates' spacing (and the language's windows with it)
    periods_per_year: float | None = None
    # periods between a signal and the first return it earns, beyond the next one: a
    # strategy's positions start a period late (alphafactory.decision), so its signals are
    # scored against returns ``execution_lag`` periods later and its macro forecasts
    # regress on the factor that much earlier
    execution_lag: int = 0
    # what the strategy trades from one signal (alphafactory.traded): its (active)
    # position's return is then the judged series; None: the quantile long-short
    position: PositionRule | None = None


@dataclass(frozen=True)
class Scored:
    """One formula's outcome in :meth:`FormulaScorer.score_each`."""

    text: str  # the formula as given (a node's canonical text)
    formula: Node | PreparedML | None  # the checked formula; None when not valid here
    metrics: FactorMetrics | None
    error: FormulaError | None  # why it is not valid
    series: dict[str, np.ndarray] | None  # per-date arrays (FactorScorer.series), if asked


class FormulaScorer:
    """Scores formulas (text or nodes) on one panel; construct once, call many times.

    ``score_from`` is the first row whose date counts in the metrics: values are computed
    on the whole panel (so windows have their history) and scored from that row on, which
    is how a held-out period after a split is measured. Values are point-in-time, so rows
    before ``score_from`` only supply history."""

    def __init__(
        self,
        panel: Panel,
        *,
        config: LanguageConfig | None = None,
        options: ScoringOptions = ScoringOptions(),
        score_from: int = 0,
    ) -> None:
        if not 0 <= score_from < panel.shape[0] - 1:
            raise ValueError(
                f"score_from must leave at least 2 of the panel's {panel.shape[0]} rows, "
                f"got {score_from}"
            )
        self.panel = panel
        periods = options.periods_per_year
        self.config = config or (
            config_for_periods(periods) if periods else config_for_panel(panel)
        )
        self.options = options
        self.score_from = score_from
        group = options.class_group
        if group and group not in panel.groups:
            raise ValueError(
                f"class group {group!r} (the macro forecasts' asset classes) is not a group "
                f"of the panel; it has {sorted(panel.groups) or 'none'}"
            )
        self.evaluator = Evaluator(panel, config=self.config)
        # ML alphas (``ml:...`` texts) are candidates like formulas: walked forward over
        # the scored rows, their features computed as formulas are here
        self.ml = CandidateSignals(panel, self.config, self._signal_list, score_from)
        rule = options.position
        self.metrics = FactorScorer(
            lagged_returns(panel.returns, options.execution_lag)[score_from:],
            dates=panel.dates[score_from:],
            horizon=options.horizon,
            quantiles=options.quantiles,
            periods_per_year=periods,
            position=rule and rule.active_weights(rule.market(panel, score_from)),
        )

    def prepare(self, formula: Node | str) -> Node | PreparedML | None:
        """The checked formula, or None where it does not parse or type-check here."""
        return self._check(formula)[0]

    def _check(self, formula: Node | str) -> tuple[Node | PreparedML | None, FormulaError | None]:
        try:
            return self._prepare(formula), None
        except FormulaError as error:
            return None, error

    def _prepare(self, formula: Node | str) -> Node | PreparedML:
        if is_ml(formula):
            return self.ml.prepare(formula)
        return self.evaluator.prepare(formula)

    def score(self, formulas: Sequence[Node | str]) -> list[FactorMetrics | None]:
        """Metrics per formula, in order; None for a formula that is not valid here."""
        return [scored.metrics for scored in self.score_each(formulas)]

    def score_each(
        self, formulas: Sequence[Node | str], *, series: bool = False
    ) -> Iterator[Scored]:
        """A :class:`Scored` per formula, in order, a stack of formulas at a time (as much
        as ``stack_bytes`` holds); with ``series`` also each valid one's per-date arrays."""
        rows, assets = self.panel.shape
        chunk = max(1, self.options.stack_bytes // (8 * rows * assets))
        for start in range(0, len(formulas), chunk):
            checked = [self._check(formula) for formula in formulas[start : start + chunk]]
            nodes = [node for node, _ in checked if node is not None]
            scored = iter(self._score_nodes(nodes, series) if nodes else ())
            for formula, (node, error) in zip(
                formulas[start : start + chunk], checked, strict=True
            ):
                metrics, per_date = next(scored) if node is not None else (None, None)
                text = formula if isinstance(formula, str) else str(formula)
                yield Scored(text, node, metrics, error, per_date)

    def signals(self, formulas: Sequence[Node | str]) -> np.ndarray:
        """Per-asset values of valid formulas on the whole panel, (K, T, N): panel formulas
        as evaluated, macro formulas mapped to assets. Raises ``FormulaError`` for an
        invalid one (check with ``prepare`` first)."""
        values = self._signal_list([self._prepare(formula) for formula in formulas])
        return np.stack(values) if values else np.empty((0, *self.panel.shape))

    def _signal_list(self, prepared: list[Node | PreparedML]) -> list[np.ndarray]:
        """:meth:`signals` of prepared formulas as a list of (T, N) arrays: scoring needs
        no stack of them (one is a panel-sized copy of each, into fresh memory). An ML
        alpha's values were walked when it was prepared."""
        nodes = [item for item in prepared if not isinstance(item, PreparedML)]
        evaluated = iter(self.evaluator.evaluate_prepared(nodes))
        values = [
            item.values if isinstance(item, PreparedML) else next(evaluated) for item in prepared
        ]
        macro = [k for k, v in enumerate(values) if v.ndim == 1]
        if macro:
            group = self.options.class_group
            mapped = macro_scores(
                np.column_stack([values[k] for k in macro]),
                self.panel.returns,
                min_periods=self.options.macro_min_periods,
                classes=self.panel.groups[group] if group else None,
                lag=1 + self.options.execution_lag,
            ).transpose(1, 0, 2)  # (K, T, N), contiguous underneath
            for position, k in enumerate(macro):
                values[k] = mapped[position]
        return values

    def _score_nodes(
        self, nodes: list[Node | PreparedML], series: bool
    ) -> list[tuple[FactorMetrics, dict[str, np.ndarray] | None]]:
        values = [v[self.score_from :] for v in self._signal_list(nodes)]
        if series:
            return self.metrics.score_batch_with_series(values)
        return [(metrics, None) for metrics in self.metrics.score_batch(values)]


def lagged_returns(returns: np.ndarray, lag: int) -> np.ndarray:
    """``returns`` moved ``lag`` rows earlier (NaN at the end): row t holds ``r_{t+lag}``,
    so whatever pairs a signal at t with the next row's return pairs it with
    ``r_{t+1+lag}``. ``lag`` 0: ``returns`` itself."""
    if lag < 0:
        raise ValueError(f"execution lag must be 0 or more rows, got {lag}")
    if lag == 0:
        return returns
    out = np.full_like(returns, np.nan)
    out[:-lag] = returns[lag:]
    return out


def load_kernels() -> None:
    """Load the compiled kernels that every scoring runs, on toy data: from numba's disk
    cache, and the first load in a process also sets numba up (about 0.3 s of Python).
    Call it while something else waits on I/O, e.g. while a panel file is being read."""
    FactorScorer(np.zeros((4, 5)), periods_per_year=252).score(np.zeros((4, 5)))


def set_kernel_threads(threads: int) -> None:
    """Threads the parallel kernels of this thread use from now on. A Celery worker's
    processes are already its parallelism: with every process's kernels also spreading
    over the cores, the small decision panels of a macro strategy spend more CPU on the
    threads' hand-offs than on the work (measured: 4.9 CPU-s for 6,000 formulas on two
    threads against 2.9 on one, in the same wall time)."""
    import numba

    numba.set_num_threads(max(1, min(threads, numba.config.NUMBA_NUM_THREADS)))


def metric_values(metrics: Sequence[FactorMetrics | None], name: str) -> np.ndarray:
    """One metric across a batch as floats; NaN where a formula has no metrics."""
    return np.array(
        [np.nan if m is None else float(getattr(m, name)) for m in metrics], dtype=np.float64
    )
