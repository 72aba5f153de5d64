"""An ML alpha's walked-forward signal (alphafactory.ml.signal)."""

from __future__ import annotations

import numpy as np
import pytest

from alphafactory.ml.features import feature_cube, labels
from alphafactory.ml.fit import MLSpec, fit_at
from alphafactory.ml.signal import walk_forward
from tests.ml.test_ml_fit import T, market


def test_each_value_is_the_prediction_of_the_last_fit_at_or_before_its_date():
    fields, returns = market(12)
    cube, y = feature_cube(fields), labels(returns, 1)
    spec = MLSpec("ridge", folds=2)
    walked = walk_forward(cube, y, spec, first_row=50, last_row=T - 1, retrain_every=12)
    assert [start for start, _ in walked.fits] == [50, 62, 74, 86]
    assert np.isnan(walked.values[:50]).all()
    for row in (50, 61, 62, 89):
        start = max(s for s, _ in walked.fits if s <= row)
        expected = fit_at(cube, y, start, spec).predict(cube, np.array([row]))[0]
        np.testing.assert_array_equal(walked.values[row], expected)


def test_no_value_depends_on_a_later_return():
    fields, returns = market(13)
    cube = feature_cube(fields)
    spec, window = MLSpec("lasso", horizon=2, folds=2), {"first_row": 50, "last_row": 80}
    before = walk_forward(cube, labels(returns, 2), spec, retrain_every=6, **window).values
    later = returns.copy()
    later[69:] = 0.3  # every return after row 68, where a model is fitted
    after = walk_forward(cube, labels(later, 2), spec, retrain_every=6, **window).values
    np.testing.assert_array_equal(after[:69], before[:69])
    assert not np.array_equal(after[74:], before[74:]), "the fits after the change see it"


def test_a_window_outside_the_dates_is_refused():
    fields, returns = market(14)
    with pytest.raises(ValueError, match="rows 50..200 are not a window of the 90 dates"):
        walk_forward(
            feature_cube(fields), labels(returns, 1), MLSpec("ridge"),
            first_row=50, last_row=200, retrain_every=5,
        )  # fmt: skip
