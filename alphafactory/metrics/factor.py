"""Factor metrics with the conventions of DESIGN.md contract 5.

Arrays are ``(T, N)``: ``T`` ascending dates by ``N`` assets; ``returns[t, i]`` is the
simple return of asset ``i`` from date ``t-1`` to date ``t`` (the Panel's convention).
A value is valid when finite (NaN and +-inf are missing).

Evaluation dates, precisely:
- IC at horizon ``h``: dates ``t <= T-1-h`` (the forward return
  ``prod_{k=1..h}(1 + r[t+k]) - 1`` exists) with at least 3 assets whose factor and
  forward return are both valid, and where neither is constant across those assets.
  ``ic``/``rank_ic`` (Pearson / Spearman with average ranks for ties) are means over these
  dates, ``icir``/``rank_icir`` mean / std(ddof=1); ``n_ic_dates`` counts them.
- Long-short (``ls``, always one period whatever ``h``): dates ``t <= T-2`` with at least
  ``max(3, Q)`` assets whose factor at ``t`` and return ``r[t+1]`` are valid. Among those
  assets, ranked ascending by factor (ties by order of appearance), quantile =
  ``floor(Q (rank - 1) / n) + 1``; ``ls[t]`` = mean ``r[t+1]`` of quantile Q minus that of
  quantile 1. ``n_periods`` counts these dates; Sharpe, CAGR, drawdown and the HAC
  t-statistic run over the series with skipped dates dropped (consecutive periods).
- Turnover: weights +1/n_top on quantile Q and -1/n_bottom on quantile 1 (gross 2);
  ``0.5 * sum |w_t - w_p|`` with ``p`` the previous long-short date, averaged over the
  long-short dates after the first (which has no previous portfolio).
- ``quantile_mean_returns``: per quantile, the mean over long-short dates of the mean
  next-period return of its assets (so top minus bottom averages to mean ``ls``).
- With a ``position`` (a strategy's rule, :mod:`alphafactory.traded`: factors (F, T, N) to
  the weights each row holds), its return over ``t -> t+1`` replaces ``ls`` on the dates
  where the factor has a value and a return follows, and its turnover the quantiles'
  (``0.5 * sum |w_t - w_p|``): the Sharpe, CAGR, drawdown and t-statistic are then those
  of what the strategy trades. Without one (``factor eval``), the contract's long-short.
Values that cannot be computed are NaN: no dates, or for a ratio (``icir``, Sharpe,
t-statistic) fewer than two values or a spread within rounding (std <= 1e-12 |mean|).

Speed: build one :class:`FactorScorer` per returns panel (the returns side is tabulated
once) and score stacks of factors with ``score_batch``: the per-date work is compiled and
runs factors in parallel (:mod:`alphafactory.metrics.sections`), so a stack of factors uses
every core where one factor at a time uses one.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, fields, replace

import numpy as np

from alphafactory.metrics.crosssection import mean_and_ir
from alphafactory.metrics.errors import MetricsError
from alphafactory.metrics.sections import CrossSections, ReturnTables, cross_sections
from alphafactory.metrics.series import series_stats
from alphafactory.panel import Panel

CONTRACT_KEYS = (
    "ic",
    "rank_ic",
    "icir",
    "rank_icir",
    "ls_sharpe",
    "ls_annual_return",
    "ls_max_drawdown",
    "turnover",
    "hac_tstat",
    "n_periods",
    "periods_per_year",
)

# Median spacing in days -> periods per year; the contract's four, plus annual.
_SPACING_DAYS = ((4.5, 252), (11.0, 52), (50.0, 12), (135.0, 4), (float("inf"), 1))


@dataclass(frozen=True, slots=True)
class FactorMetrics:
    """One factor's metrics: the contract's keys first, then extras (module doc)."""

    ic: float
    rank_ic: float
    icir: float
    rank_icir: float
    ls_sharpe: float
    ls_annual_return: float
    ls_max_drawdown: float
    turnover: float
    hac_tstat: float
    n_periods: int
    periods_per_year: float
    # extras, outside the contract
    horizon: int
    quantiles: int
    n_ic_dates: int
    hac_maxlags: int
    quantile_mean_returns: tuple[float, ...]  # mean next-period return, bottom to top

    def to_dict(self) -> dict[str, float | int | list[float]]:
        """The contract's keys (NaN stays NaN: JSON writers decide), then the extras."""
        out: dict[str, float | int | list[float]] = {
            f.name: getattr(self, f.name) for f in fields(self)
        }
        out["quantile_mean_returns"] = list(self.quantile_mean_returns)
        return out


def infer_periods_per_year(dates: np.ndarray) -> int:
    """252 daily, 52 weekly, 12 monthly, 4 quarterly (1 annual) from the median spacing."""
    try:
        stamps = np.asarray(dates, dtype="datetime64[ns]")
    except (TypeError, ValueError) as e:
        raise MetricsError(f"dates are not datetimes: {str(e)[:200]}") from e
    if stamps.ndim != 1 or len(stamps) < 2:
        raise MetricsError(
            f"need at least 2 dates to infer periods_per_year, got {stamps.size}; "
            "pass periods_per_year explicitly"
        )
    spacing = np.median(np.diff(stamps).astype(np.int64)) / 86_400e9
    if not spacing > 0:
        raise MetricsError(f"dates must be increasing; median spacing is {spacing} days")
    return next(ppy for limit, ppy in _SPACING_DAYS if spacing < limit)


class FactorScorer:
    """Scores factors against one returns panel; the returns-side work is done once.

    ``score``/``score_batch`` give :class:`FactorMetrics`; ``series`` the per-date arrays
    behind them (for plots). Construct once per panel and reuse: this is the fast path.
    """

    def __init__(
        self,
        returns: np.ndarray,
        *,
        horizon: int = 1,
        quantiles: int = 5,
        periods_per_year: float | None = None,
        dates: np.ndarray | None = None,
        position: Callable[[np.ndarray], np.ndarray] | None = None,
    ) -> None:
        self.returns = _as_panel(returns, "returns")
        self.position = position
        self.horizon = _positive_int(horizon, "horizon", 1)
        self.quantiles = _positive_int(quantiles, "quantiles", 2)
        self.periods_per_year = _resolve_ppy(periods_per_year, dates, self.returns.shape[0])
        self.tables = ReturnTables(self.returns, self.horizon, self.quantiles)

    @classmethod
    def for_panel(cls, panel: Panel, **options) -> FactorScorer:
        """A scorer on a :class:`~alphafactory.panel.Panel`'s returns and dates."""
        return cls(panel.returns, dates=panel.dates, **options)

    def score(self, factor: np.ndarray) -> FactorMetrics:
        return self.score_batch(np.asarray(factor)[None])[0]

    def score_batch(self, factors: np.ndarray | Sequence[np.ndarray]) -> list[FactorMetrics]:
        """Metrics of each factor of a ``(F, T, N)`` stack, or of a sequence of ``(T, N)``
        factors (no stack needed), over every core."""
        return self._metrics(self._sections(self._check_stack(factors)))

    def score_batch_with_series(
        self, factors: np.ndarray | Sequence[np.ndarray]
    ) -> list[tuple[FactorMetrics, dict[str, np.ndarray]]]:
        """:meth:`score_batch` and :meth:`series` of each factor, from one pass."""
        sections = self._sections(self._check_stack(factors))
        metrics = self._metrics(sections)
        return [(m, _series(sections, k)) for k, m in enumerate(metrics)]

    def series(self, factor: np.ndarray) -> dict[str, np.ndarray]:
        """Per-date ``ic``, ``rank_ic``, ``ls``, ``turnover`` (T,) and ``quantile_returns``
        (T, Q), NaN where a date does not count; e.g. for a tear sheet."""
        sections = self._sections(self._check_stack(np.asarray(factor)[None]))
        return _series(sections, 0)

    def _sections(self, stack: np.ndarray | list[np.ndarray]) -> CrossSections:
        """The per-date statistics; with a ``position``, its series stands for ``ls``."""
        sections = cross_sections(stack, self.tables)
        if self.position is None:
            return sections
        array = np.stack(stack) if isinstance(stack, list) else stack
        formed = np.isfinite(array).any(axis=-1)
        earned, turnover = _position_series(self.position(array), formed, self.returns)
        return replace(sections, ls=earned, turnover=turnover)

    def _check_stack(self, factors) -> np.ndarray | list[np.ndarray]:
        """A ``(F, T, N)`` float64 stack, or a list of ``(T, N)`` float64 factors."""
        if isinstance(factors, list | tuple):
            checked = [np.asarray(f, dtype=np.float64) for f in factors]
            shapes = {f.shape for f in checked}
            if shapes - {self.returns.shape}:
                raise MetricsError(
                    f"factors have shapes {sorted(shapes)}; expected (T, N) = "
                    f"{self.returns.shape}, the returns' shape"
                )
            return checked
        stack = np.asarray(factors, dtype=np.float64)
        if stack.ndim != 3 or stack.shape[1:] != self.returns.shape:
            raise MetricsError(
                f"factors have shape {stack.shape}; expected (F, T, N) with (T, N) = "
                f"{self.returns.shape}, the returns' shape"
            )
        return stack

    def _metrics(self, ls: CrossSections) -> list[FactorMetrics]:
        ic_mean, icir, n_ic = mean_and_ir(ls.ic)
        rank_mean, rank_icir, _ = mean_and_ir(ls.rank_ic)
        stats = series_stats(ls.ls, self.periods_per_year)
        turn = mean_and_ir(ls.turnover)[0]
        with np.errstate(invalid="ignore", divide="ignore"):
            days = ls.defined.sum(axis=-1)[:, None]
            qmeans = np.where(ls.defined[..., None], ls.quantile_returns, 0.0).sum(axis=1) / days
        columns = (
            ic_mean,
            rank_mean,
            icir,
            rank_icir,
            stats["sharpe"],
            stats["annual_return"],
            stats["max_drawdown"],
            turn,
            stats["hac_tstat"],
        )
        rows = np.stack(columns, axis=-1).tolist()
        return [
            FactorMetrics(
                *row,
                n_periods=int(n),
                periods_per_year=self.periods_per_year,
                horizon=self.horizon,
                quantiles=self.quantiles,
                n_ic_dates=int(k),
                hac_maxlags=int(lags),
                quantile_mean_returns=tuple(q),
            )
            for row, n, k, lags, q in zip(
                rows,
                stats["n"].tolist(),
                n_ic.tolist(),
                stats["hac_maxlags"].tolist(),
                qmeans.tolist(),
                strict=True,
            )
        ]


def _series(sections: CrossSections, k: int) -> dict[str, np.ndarray]:
    return {
        "ic": sections.ic[k],
        "rank_ic": sections.rank_ic[k],
        "ls": sections.ls[k],
        "turnover": sections.turnover[k],
        "quantile_returns": sections.quantile_returns[k],
    }


def _position_series(
    held: np.ndarray, formed: np.ndarray, returns: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """The (F, T) return of each position ``held`` (F, T, N) at ``t`` over ``t -> t+1``
    (the assets whose return is known; NaN where the factor has no value at ``t`` or no
    return follows), and its turnover against the previous such row (NaN at the first)."""
    forward = np.full_like(returns, np.nan)
    forward[:-1] = returns[1:]
    earned = np.nansum(held * forward, axis=-1)
    formed = formed & np.isfinite(forward).any(axis=-1)
    earned = np.where(formed, earned, np.nan)
    turnover = np.full(earned.shape, np.nan)
    for k in range(held.shape[0]):
        rows = np.flatnonzero(formed[k])
        turnover[k, rows[1:]] = 0.5 * np.abs(np.diff(held[k, rows], axis=0)).sum(axis=-1)
    return earned, turnover


def factor_metrics(
    factor: np.ndarray,
    returns: np.ndarray,
    *,
    horizon: int = 1,
    quantiles: int = 5,
    periods_per_year: float | None = None,
    dates: np.ndarray | None = None,
) -> FactorMetrics:
    """Metrics of one ``(T, N)`` factor against ``(T, N)`` returns (see the module doc)."""
    scorer = FactorScorer(
        returns,
        horizon=horizon,
        quantiles=quantiles,
        periods_per_year=periods_per_year,
        dates=dates,
    )
    return scorer.score(factor)


def factor_metrics_batch(
    factors: np.ndarray,
    returns: np.ndarray,
    *,
    horizon: int = 1,
    quantiles: int = 5,
    periods_per_year: float | None = None,
    dates: np.ndarray | None = None,
) -> list[FactorMetrics]:
    """Metrics of each factor of an ``(F, T, N)`` stack, vectorised across the stack."""
    scorer = FactorScorer(
        returns,
        horizon=horizon,
        quantiles=quantiles,
        periods_per_year=periods_per_year,
        dates=dates,
    )
    return scorer.score_batch(factors)


def _as_panel(values: np.ndarray, name: str) -> np.ndarray:
    array = np.asarray(values, dtype=np.float64)
    if array.ndim != 2 or 0 in array.shape:
        raise MetricsError(f"{name} must be a (T, N) array with T, N >= 1, got shape {array.shape}")
    return array


def _positive_int(value: int, name: str, minimum: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int | np.integer) or value < minimum:
        raise MetricsError(f"{name} must be an integer >= {minimum}, got {value!r}")
    return int(value)


def _resolve_ppy(periods_per_year: float | None, dates: np.ndarray | None, t: int) -> float:
    if periods_per_year is not None:
        number = isinstance(periods_per_year, int | float | np.integer)
        if isinstance(periods_per_year, bool) or not number:
            raise MetricsError(f"periods_per_year must be a number, got {periods_per_year!r}")
        if not np.isfinite(periods_per_year) or periods_per_year <= 0:
            raise MetricsError(f"periods_per_year must be positive, got {periods_per_year!r}")
        value = float(periods_per_year)
        return int(value) if value.is_integer() else value
    if dates is None:
        raise MetricsError("pass dates (to infer periods_per_year) or periods_per_year")
    if len(dates) != t:
        raise MetricsError(f"{len(dates)} dates for {t} rows of returns")
    return infer_periods_per_year(dates)
