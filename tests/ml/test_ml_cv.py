"""Purged, embargoed forward-chaining folds (alphafactory.ml.cv)."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from alphafactory.ml.cv import CVError, known_label_rows, purged_folds


@given(
    known=st.integers(20, 400),
    folds=st.integers(1, 5),
    horizon=st.integers(1, 6),
    embargo=st.integers(0, 6),
)
def test_no_training_label_reaches_into_its_test_block(known, folds, horizon, embargo):
    try:
        cut = purged_folds(known, folds=folds, horizon=horizon, embargo=embargo)
    except CVError:
        return  # too few dates: refused, checked below
    assert len(cut) == folds
    for fold in cut:
        start = fold.test[0]
        # a training label covers rows t+1..t+h: complete, and an embargo before the block
        assert fold.train.max() + horizon + embargo <= start
        assert np.array_equal(fold.test, np.arange(start, fold.test[-1] + 1))
        assert fold.test[-1] < known
    tests = np.concatenate([f.test for f in cut])
    assert np.all(np.diff(tests) > 0), "test blocks overlap or go back in time"


def test_the_embargo_defaults_to_the_horizon():
    (fold,) = purged_folds(40, folds=1, horizon=3)
    assert fold.test[0] == 20 and fold.train[-1] == 20 - 3 - 3


def test_too_few_dates_are_refused_with_the_numbers():
    with pytest.raises(CVError, match="12 dates with known labels are too few for 3 folds"):
        purged_folds(12, folds=3, horizon=2)


def test_labels_known_at_a_decision_end_a_horizon_before_it():
    assert known_label_rows(decision_row=10, horizon=1) == 10  # rows 0..9: r[10] is known
    assert known_label_rows(decision_row=10, horizon=3) == 8
    assert known_label_rows(decision_row=1, horizon=3) == 0
