"""Admission: which of a decision's candidates become alphas, accounting for the search.

A decision scores many candidates (its *trials*) and keeps those that meet the strategy's
alpha definition. On pure noise a definition such as ``|hac_tstat| >= 2`` still passes
about 4.6% of them, so a search of 500 formulas "finds" some 23 alphas where there is
nothing. Admission therefore asks two things of a candidate: that it meets the definition
(the user's own rule, any expression over the metrics) and that it survives a
multiple-testing control over every trial of the decision.

Each trial's evidence is its HAC t-statistic (``hac_tstat``: of the position the strategy
would trade from it, :mod:`alphafactory.traded`, or contract 5's long-short); its p-value is
two-sided, because a definition may admit a reversed factor (the combination then flips
it), against the normal distribution, which is the HAC statistic's asymptotic law. A
candidate scored without a finite t-statistic counts as a trial with p = 1: it was tried.

Controls (``[alpha] control``, at ``[alpha] level``):

- ``by``: Benjamini-Yekutieli false discovery rate (the default, ``level`` = 0.10). It holds
  under any dependence between the trials, which generated formulas have in plenty (two
  variations of one formula are nearly the same test); the price is a factor of about
  ``ln(trials)`` in power against ``bh``.
- ``bh``: Benjamini-Hochberg false discovery rate (valid under positive dependence).
- ``holm``, ``bonferroni``: the family-wise error rate.
- ``none``: the definition alone. Allowed, and every report says so.

The adjusted p-values come from statsmodels' ``multipletests``. Pure: no I/O.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

import numpy as np

Control = Literal["by", "bh", "holm", "bonferroni", "none"]
CONTROLS: tuple[str, ...] = ("by", "bh", "holm", "bonferroni", "none")
DEFAULT_CONTROL: Control = "by"
DEFAULT_LEVEL = 0.10
# statsmodels' names of the controls
_METHODS = {"by": "fdr_by", "bh": "fdr_bh", "holm": "holm", "bonferroni": "bonferroni"}
_DESCRIPTIONS = {
    "by": "Benjamini-Yekutieli false discovery rate",
    "bh": "Benjamini-Hochberg false discovery rate",
    "holm": "Holm family-wise error rate",
    "bonferroni": "Bonferroni family-wise error rate",
}


def describe(control: str, level: float) -> str:
    """One line for reports: what admission controlled, or that it controlled nothing."""
    if control == "none":
        return "none: the alpha definition alone, no multiple-testing control"
    return f"{control}: {_DESCRIPTIONS[control]} at {level:g} over each decision's trials"


def two_sided_p_values(t_stats: Sequence[float] | np.ndarray) -> np.ndarray:
    """p-value of each t-statistic against N(0, 1), both tails; 1 where it is not finite."""
    from scipy.stats import norm  # here: every strategy load imports this module

    t = np.asarray(t_stats, dtype=np.float64)
    p = 2.0 * norm.sf(np.abs(t))
    return np.where(np.isfinite(t), p, 1.0)


@dataclass(frozen=True)
class Admission:
    """The outcome of one decision's admission."""

    control: str
    level: float
    trials: int  # candidates scored at the decision
    qualified: np.ndarray  # bool per trial: meets the alpha definition
    admitted: np.ndarray  # bool per trial: meets it and survives the control
    adjusted_p: np.ndarray  # the control's adjusted p-value per trial (raw p for none)

    @property
    def n_qualified(self) -> int:
        return int(self.qualified.sum())

    @property
    def n_admitted(self) -> int:
        return int(self.admitted.sum())


def admit(
    t_stats: Sequence[float] | np.ndarray,
    qualified: Sequence[bool] | np.ndarray,
    control: str = DEFAULT_CONTROL,
    level: float = DEFAULT_LEVEL,
) -> Admission:
    """Admit the trials that meet the definition (``qualified``) and survive ``control``
    at ``level`` over all of them (``t_stats``: every trial's HAC t, NaN where none)."""
    if control not in CONTROLS:
        raise ValueError(f"control {control!r} is not one of {', '.join(CONTROLS)}")
    if not 0.0 < level < 1.0:
        raise ValueError(f"level must be in (0, 1), got {level!r}")
    p = two_sided_p_values(t_stats)
    meets = np.asarray(qualified, dtype=bool)
    if meets.shape != p.shape or p.ndim != 1:
        raise ValueError(
            f"t_stats and qualified must be 1-d of one length, got {p.shape} and {meets.shape}"
        )
    if control == "none" or not len(p):
        survives, adjusted = np.ones(len(p), dtype=bool), p
    else:
        from statsmodels.stats.multitest import multipletests

        survives, adjusted, _, _ = multipletests(p, alpha=level, method=_METHODS[control])
    return Admission(control, level, len(p), meets, meets & survives, adjusted)
