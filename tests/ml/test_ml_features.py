"""Features and labels of the ML alphas (alphafactory.ml.features)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from alphafactory.ml.features import (
    CLIP,
    FeatureError,
    feature_cube,
    forward_returns,
    labels,
    standardise,
)


def test_standardise_is_a_z_score_across_assets_with_missing_values_left_out():
    values = np.array(
        [[1.0, 2.0, np.nan, 3.0], [5.0, 5.0, 5.0, 5.0], [np.nan, 1.0, np.nan, np.nan]]
    )
    z = standardise(values)
    row = pd.Series(values[0])
    expected = ((row - row.mean()) / row.std()).to_numpy()  # pandas skips NaN, ddof=1
    np.testing.assert_allclose(z[0], expected, equal_nan=True)
    assert np.isnan(z[1]).all(), "no spread: nothing to rank"
    assert np.isnan(z[2]).all(), "one value: no cross-section"


def test_an_outlier_is_clipped():
    values = np.concatenate([np.zeros(99), [1e6]])[None] + np.arange(100)[None] * 1e-3
    assert standardise(values).max() == CLIP


def test_the_forward_return_compounds_the_next_h_returns():
    r = np.array([[0.0], [0.1], [-0.2], [0.05], [0.3]])
    fwd = forward_returns(r, 2)
    assert fwd[0, 0] == pytest.approx(1.1 * 0.8 - 1)
    assert fwd[2, 0] == pytest.approx(1.05 * 1.3 - 1)
    assert np.isnan(fwd[3:]).all(), "the window runs past the last date"


def test_a_lagged_feature_at_a_date_holds_the_value_of_an_earlier_date():
    rng = np.random.default_rng(3)
    value = rng.normal(size=(30, 8))
    cube = feature_cube({"value": value}, lags=(0, 2))
    assert cube.names == ("value", "value@2")
    np.testing.assert_allclose(cube.values[2:, :, 1], standardise(value)[:-2])
    assert np.isnan(cube.values[:2, :, 1]).all()


def test_features_of_different_shapes_are_refused_by_name():
    with pytest.raises(FeatureError, match="share one"):
        feature_cube({"a": np.zeros((5, 3)), "b": np.zeros((5, 4))})
    with pytest.raises(FeatureError, match="lag looks back"):
        feature_cube({"a": np.zeros((5, 3))}, lags=(-1,))


def test_labels_are_standardised_forward_returns():
    rng = np.random.default_rng(4)
    r = rng.normal(0, 0.05, size=(20, 6))
    np.testing.assert_allclose(labels(r, 3), standardise(forward_returns(r, 3)), equal_nan=True)
