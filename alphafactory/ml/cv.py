"""Time-series cross-validation for labels that overlap: forward chaining, a purge and
an embargo.

A label at row ``t`` is the return over rows ``t+1 .. t+h``, so it is known at ``t + h``
only. Each fold tests a contiguous block of dates and trains on dates before it whose
labels were complete by the block's first date (the purge: ``t + h <= start``), minus an
embargo of further dates (``t + h + embargo <= start``; the embargo defaults to the
horizon) so that serially correlated returns just before the block do not stand in for
the block itself. Training never follows the test block: a model is chosen the way it
will be used, on the past only. The folds cover only rows whose labels are known at the
decision (the caller's ``known_rows``), so hyperparameters are chosen inside the
training window.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

MIN_TRAIN_DATES = 2


class CVError(ValueError):
    """Too few dates for the folds asked for."""


@dataclass(frozen=True)
class Fold:
    train: np.ndarray  # date rows, ascending
    test: np.ndarray  # date rows, ascending, a contiguous block


def purged_folds(
    known_rows: int, *, folds: int, horizon: int, embargo: int | None = None
) -> list[Fold]:
    """``folds`` forward-chaining folds over rows ``0 .. known_rows - 1``: the rows are cut
    into ``folds + 1`` equal blocks, fold ``k`` tests block ``k + 1`` and trains on the
    rows before it that pass the purge and the embargo (module doc)."""
    embargo = horizon if embargo is None else embargo
    if folds < 1 or horizon < 1 or embargo < 0:
        raise CVError(
            f"need folds >= 1, horizon >= 1 and embargo >= 0; got folds={folds}, "
            f"horizon={horizon}, embargo={embargo}"
        )
    edges = np.linspace(0, known_rows, folds + 2).round().astype(int)
    out = []
    for k in range(folds):
        start, stop = int(edges[k + 1]), int(edges[k + 2])
        train_end = start - horizon - embargo + 1  # rows t < train_end pass: t + h + e <= start
        if train_end < MIN_TRAIN_DATES or stop <= start:
            raise CVError(
                f"{known_rows} dates with known labels are too few for {folds} folds with "
                f"horizon {horizon} and embargo {embargo}: fold {k + 1} would train on "
                f"{max(train_end, 0)} dates (at least {MIN_TRAIN_DATES} needed)"
            )
        out.append(Fold(train=np.arange(train_end), test=np.arange(start, stop)))
    return out


def known_label_rows(decision_row: int, horizon: int) -> int:
    """How many rows have labels known at ``decision_row``: rows ``t`` with
    ``t + horizon <= decision_row`` (the return of the decision's own date is known)."""
    return max(decision_row - horizon + 1, 0)
