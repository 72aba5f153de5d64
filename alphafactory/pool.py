"""A pool with a track record: admitted alphas stay across decisions, are judged by what
they did after they were admitted, and retire when that record decays. Pure.

Without it every decision rebuilt its pool from that month's in-sample winners, so an
alpha lived about one rebalance and nothing it did afterwards counted. Here:

- A **member** is an alpha the strategy admitted at an earlier decision (its
  ``entered_at``), with the sign it was admitted with (+1, or -1 for a reversed one, which
  the combination flips).
- Its **record**, recomputed at each decision on that decision's panel: at every row from
  its entry decision's last row on, the cross-sectional rank IC between its signal and the
  return its position would have earned (the execution lag included), signed; ``oos_ic``
  is their mean, ``oos_ic_t`` their Newey-West t, ``oos_periods`` their count. None of
  those rows was seen when it was admitted: the record is out of sample.
- **Retirement** (``[pool]``): once a member has ``retire_after`` periods of record, it
  retires when the record is evidence against it: its ``oos_ic`` at or below
  ``retire_below`` *and* its ``oos_ic_t`` at or below ``retire_t`` (default -1). A
  member passed a control that keeps false admissions rare, so a mean that is merely
  not positive is weak evidence: on the planted markets (an out-of-sample IC t of 2.5-4
  per true formula over 27 years) the mean alone (``retire_t`` = +inf) retires 54-58%
  of the true formulas within three years of entering, never to be admitted again
  (their in-sample t rarely clears the control); at -1, 18-23%, while records without
  skill still retire (39-41% within three years against 73-79%; the rest carry no
  weight they have not earned, mature members being weighted by their record):
  benchmarks/planted_detection.py. A member whose formula no longer evaluates (a series
  gone missing) retires too.
- **Order**: members first, oldest first (the longest survivors), then the decision's new
  admissions by |HAC t|; the usual pruning (correlation, size) then keeps the pool, so a
  new alpha that only repeats a member does not enter, and a member crowded out of the
  size retires. Correlation gates entry only: members are not pruned against each other.
  Their correlation drifts as the window moves, and when it did, on the planted markets
  the planted family's newest member crossed the bar against an older relative a month
  or two after entering, again and again, so no member of the family finished its
  probation (68 of 122 retirements on seed 0 were such evictions).
- **Probation** (``[pool] probation``): an alpha is traded only once its own record, all of
  it on data that neither the generator that wrote it nor its admission saw, holds at least
  ``probation`` periods and its ``oos_ic`` is above ``retire_below``. Until then it is a
  member (it keeps its place and builds its record) with no weight. Admission's evidence
  is the training window, which the generator also trained on; probation is what makes
  every traded alpha's evidence include data it was not fitted to.
- **Weights** (``ic_weighted`` combination): a member with a mature record (at least
  ``retire_after`` periods) is weighted by its ``oos_ic``, others by their IC over the
  training window.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime

import numpy as np
import pandas as pd

from alphafactory.clock import known_dates
from alphafactory.metrics.crosssection import rank_ic
from alphafactory.metrics.series import series_stats


@dataclass(frozen=True)
class Member:
    formula: str
    entered_at: datetime
    sign: float  # +1, or -1 for an alpha admitted reversed


@dataclass(frozen=True)
class Record:
    oos_periods: int
    oos_ic: float
    oos_ic_t: float


NO_RECORD = Record(0, float("nan"), float("nan"))


def entry_rows(dates: np.ndarray, members: Sequence[Member]) -> np.ndarray:
    """Each member's entry decision's last row in ``dates`` (-1: before the panel)."""
    return np.array(
        [int(known_dates(dates, pd.Timestamp(m.entered_at)).sum()) - 1 for m in members],
        dtype=int,
    )


def records(
    signals: np.ndarray, earned: np.ndarray, entries: np.ndarray, signs: np.ndarray
) -> list[Record]:
    """Each member's record (module doc). ``signals``: (K, T, N) on the decision panel;
    ``earned``: (T, N), row t the return a position taken at row t - 1 earns (the
    strategy's returns moved by its execution lag); ``entries``: each member's entry row."""
    out = []
    for k in range(signals.shape[0]):
        ics = [
            rank_ic(signals[k, t], earned[t + 1])
            for t in range(max(int(entries[k]), 0), signals.shape[1] - 1)
        ]
        ics = np.array([ic for ic in ics if np.isfinite(ic)]) * signs[k]
        if len(ics) == 0:
            out.append(NO_RECORD)
            continue
        t_stat = float(series_stats(ics[None, :], 1)["hac_tstat"][0]) if len(ics) > 1 else np.nan
        out.append(Record(len(ics), float(ics.mean()), t_stat))
    return out


def retirement(
    record: Record,
    valid: bool,
    *,
    retire_after: int,
    retire_below: float,
    retire_t: float = float("inf"),
) -> str:
    """Why a member retires now ("" if it stays)."""
    if not valid:
        return "no longer evaluates on the decision's data"
    if (
        record.oos_periods >= retire_after
        and not record.oos_ic > retire_below
        and not record.oos_ic_t > retire_t
    ):
        return (
            f"out-of-sample rank IC {record.oos_ic:+.4f} (t {record.oos_ic_t:+.2f}) over "
            f"{record.oos_periods} periods is not above {retire_below:+.4f} (t {retire_t:+.2f})"
        )
    return ""


def confirmed(record: Record | None, *, probation: int, retire_below: float) -> bool:
    """Whether an alpha with this record (None: admitted at this decision) is traded: its
    probation is over (module doc); with ``probation`` 0 every member is."""
    if probation == 0:
        return True
    return (
        record is not None
        and record.oos_periods >= probation
        and bool(record.oos_ic > retire_below)
    )


def record_weights(
    weights: np.ndarray,
    member_records: Sequence[Record | None],
    signs: np.ndarray,
    *,
    mature: int,
) -> np.ndarray:
    """Combination weights with each mature member's (``oos_periods >= mature``) replaced
    by its ``oos_ic`` in the direction it was admitted with (``signs``), normalised to
    sum |w| = 1 again; ``None``: not a member (its weight stays)."""
    out = np.asarray(weights, dtype=np.float64).copy()
    for k, record in enumerate(member_records):
        if record is not None and record.oos_periods >= mature and np.isfinite(record.oos_ic):
            out[k] = signs[k] * max(record.oos_ic, 0.0)
    total = np.abs(out).sum()
    return out / total if total > 0 else np.full(len(out), 1.0 / max(len(out), 1))


@dataclass(frozen=True)
class Candidates:
    """Formulas in pruning order with their scores, signs and signals (K, T, N), and each
    one's record (None: a new admission); ``retired``: members that left, and why, with
    their records in ``retired_records``."""

    formulas: list[str]
    scores: np.ndarray
    signs: np.ndarray
    signals: np.ndarray
    records: list[Record | None] = field(default_factory=list)
    retired: dict[str, str] = field(default_factory=dict)
    retired_records: dict[str, Record] = field(default_factory=dict)


def carry(
    scorer,
    earned: np.ndarray,
    members: Sequence[Member],
    admitted: Candidates,
    *,
    retire_after: int,
    retire_below: float,
    retire_t: float = float("inf"),
) -> Candidates:
    """The members that stay (records on the scorer's panel, retirement applied), oldest
    first, then the ``admitted`` that are not members already (module doc). ``scorer``:
    the decision's ``FormulaScorer``; ``earned``: as in :func:`records`."""
    panel = scorer.panel
    valid = [scorer.prepare(m.formula) is not None for m in members]
    live = [m for m, ok in zip(members, valid, strict=True) if ok]
    retired = {
        m.formula: retirement(NO_RECORD, False, retire_after=0, retire_below=0.0)
        for m, ok in zip(members, valid, strict=True)
        if not ok
    }
    signals = scorer.signals([m.formula for m in live]) if live else np.empty((0, *panel.shape))
    signs = np.array([m.sign for m in live], dtype=float)
    found = records(signals, earned, entry_rows(panel.dates, live), signs)
    stay, retired_records = [], {}
    for k, record in enumerate(found):
        reason = retirement(
            record, True, retire_after=retire_after, retire_below=retire_below, retire_t=retire_t
        )
        if reason:
            retired[live[k].formula] = reason
            retired_records[live[k].formula] = record
        else:
            stay.append(k)
    stay.sort(key=lambda k: live[k].entered_at)
    held = {m.formula for m in members}
    fresh = [k for k, formula in enumerate(admitted.formulas) if formula not in held]
    fresh_scores = np.nan_to_num(admitted.scores[fresh], nan=0.0)
    # members outrank every new admission, the oldest first
    top = fresh_scores.max(initial=0.0) + 1.0
    member_scores = top + np.arange(len(stay), 0, -1, dtype=float)
    return Candidates(
        [live[k].formula for k in stay] + [admitted.formulas[k] for k in fresh],
        np.concatenate([member_scores, fresh_scores]),
        np.concatenate([signs[stay], admitted.signs[fresh]]),
        np.concatenate([signals[stay], admitted.signals[fresh]]),
        [found[k] for k in stay] + [None] * len(fresh),
        retired,
        retired_records,
    )
