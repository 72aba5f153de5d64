"""The generator's versions: which one a request may use, and when the next is due. Pure.

Every trained generator is a version of its generator name with a training cutoff: it
was trained only on data released before the cutoff. The rules:

- A request decided at time T may use only a version whose cutoff is at or before T
  (point-in-time holds for the model as for the data), that is served (ready), and never
  a withdrawn one.
- Among those it uses the promoted version (the operator's choice, or the trainer's
  automatic rollout), and when the promoted one is from after T (a replay of the past)
  the newest eligible one. None eligible: the request cannot be generated.
- Retraining every N months: the next cutoff is the newest version's cutoff plus N
  months, at the start of that month; a request decided at or after it makes it due.
  A walk-forward from month M trains at M, M+N, M+2N... by the same rule.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime

import pandas as pd


class NoEligibleVersion(LookupError):
    """No version of the generator was trained on data released by the decision time."""


@dataclass(frozen=True)
class ModelVersion:
    generator: str  # "" the default generator
    version: int
    cutoff: datetime  # trained on data released before this
    trained_until: datetime  # when the newest data it saw was released (<= cutoff)
    strategy_id: str
    checkpoint: str
    served_model: str
    training: dict = field(default_factory=dict, compare=False)
    ready_at: datetime | None = None  # None: being exported, not usable yet
    withdrawn_at: datetime | None = None
    created_at: datetime | None = None

    @property
    def label(self) -> str:
        return f"{self.generator or 'default'} v{self.version}"


def choose_version(
    versions: Sequence[ModelVersion], promoted: int | None, decision_time: datetime
) -> ModelVersion:
    """The version a request decided at ``decision_time`` uses (module doc)."""
    if decision_time.tzinfo is None:
        raise ValueError(f"decision_time {decision_time!r} must carry a time zone")
    eligible = [
        v
        for v in versions
        if v.ready_at is not None and v.withdrawn_at is None and v.cutoff <= decision_time
    ]
    if not eligible:
        known = ", ".join(f"v{v.version} (cutoff {v.cutoff:%Y-%m-%d})" for v in versions)
        raise NoEligibleVersion(
            f"no generator version was trained on data released by "
            f"{decision_time.isoformat()} (versions: {known or 'none'})"
        )
    for version in eligible:
        if version.version == promoted:
            return version
    return max(eligible, key=lambda v: (v.cutoff, v.version))


def month_start(when: datetime) -> datetime:
    """Midnight UTC at the start of ``when``'s month (UTC)."""
    stamp = pd.Timestamp(when).tz_convert("UTC")
    return stamp.replace(day=1, hour=0, minute=0, second=0, microsecond=0).to_pydatetime()


def add_months(when: datetime, months: int) -> datetime:
    return (pd.Timestamp(when) + pd.DateOffset(months=months)).to_pydatetime()


def retraining_due(
    versions: Sequence[ModelVersion], every_months: int, decision_time: datetime
) -> datetime | None:
    """The cutoff a retraining is due for at ``decision_time``, or None (no rule, no
    version yet, or the newest is recent enough). Months step from the newest cutoff, so
    a run that started mid-year keeps its own rhythm."""
    if every_months <= 0 or not versions:
        return None
    newest = max(v.cutoff for v in versions)
    due = add_months(month_start(newest), every_months)
    if due > decision_time:
        return None
    # several periods may have passed (a stack down for months): the latest due date
    while add_months(due, every_months) <= decision_time:
        due = add_months(due, every_months)
    return due


def warm_start_version(versions: Sequence[ModelVersion], cutoff: datetime) -> ModelVersion | None:
    """The version a retraining for ``cutoff`` starts from: the ready, not withdrawn one
    with the latest cutoff before it (everything it was trained on was released before
    ``cutoff`` too, so starting from its weights reads nothing later); None: none."""
    earlier = [
        v
        for v in versions
        if v.ready_at is not None
        and v.withdrawn_at is None
        and v.cutoff < cutoff
        and v.trained_until < cutoff
    ]
    return max(earlier, key=lambda v: (v.cutoff, v.version), default=None)


def training_schedule(first: datetime, last: datetime, every_months: int) -> list[datetime]:
    """The cutoffs of a walk-forward from ``first`` to ``last`` (exclusive: a cutoff at
    the end would train a model nothing uses): ``first``'s month start, then every
    ``every_months`` (0: only the first)."""
    cutoff = month_start(first)
    schedule = [cutoff]
    while every_months > 0 and (cutoff := add_months(cutoff, every_months)) < last:
        schedule.append(cutoff)
    return schedule
