"""Fitting an ML alpha at a decision (alphafactory.ml.fit): point-in-time, chosen like
scikit-learn would on the same folds, reproducible."""

from __future__ import annotations

import numpy as np
import pytest

from alphafactory.ml.cv import known_label_rows
from alphafactory.ml.features import feature_cube, labels
from alphafactory.ml.fit import MLSpec, _mean_ic, fit_at, samples

T, N = 90, 30


def market(seed: int = 0, *, signal: float = 0.02):
    """Fields ``a`` and ``b`` at each date; the next return loads on ``a``."""
    rng = np.random.default_rng(seed)
    a, b = rng.normal(size=(T, N)), rng.normal(size=(T, N))
    returns = rng.normal(0, 0.05, size=(T, N))
    returns[1:] += signal * a[:-1]
    return {"a": a, "b": b}, returns


@pytest.mark.parametrize("model", ["ridge", "lasso", "mlp"])
def test_nothing_known_only_after_the_decision_changes_the_fit(model):
    """The labels of rows within a horizon of the decision, and every later return, are
    unknown at it; replacing them (and a planted feature that is the next period's
    return shifted back by the horizon minus one, known at each date but part of the
    labels the purge removes) must leave the choice and the predictions unchanged."""
    horizon, decision = 3, 70
    fields, returns = market(1)
    leak = np.full_like(returns, np.nan)
    leak[horizon - 1 :] = returns[1 : T - horizon + 2]  # r[t + 2 - h]: known at t
    sources = {**fields, "leak": leak}
    spec = MLSpec(model, horizon=horizon, folds=2)

    def fitted(r):
        cube = feature_cube(sources)
        fit = fit_at(cube, labels(r, horizon), decision, spec)
        return fit, fit.predict(cube, np.array([decision]))

    base, prediction = fitted(returns)
    future = returns.copy()
    future[decision + 1 :] = np.random.default_rng(9).normal(
        0, 0.5, size=future[decision + 1 :].shape
    )
    again, moved = fitted(future)
    assert base.train_rows == known_label_rows(decision, horizon) == decision - horizon + 1
    assert all(f.train[-1] + 2 * horizon <= f.test[0] for f in base.folds)
    assert again.params == base.params and again.cv_scores == base.cv_scores
    np.testing.assert_array_equal(moved, prediction)


def test_ridge_is_scikit_learns_on_the_same_folds():
    from sklearn.linear_model import Ridge

    fields, returns = market(2)
    cube, y = feature_cube(fields), labels(returns, 1)
    spec = MLSpec("ridge", horizon=1, folds=3)
    fit = fit_at(cube, y, 80, spec)
    scores = []
    for params in spec.candidates():
        per_fold = []
        for fold in fit.folds:
            x_train, y_train = samples(cube, y, fold.train)
            reference = Ridge(**params).fit(x_train, y_train)
            test = np.nan_to_num(cube.values[fold.test], nan=0.0)
            predicted = reference.predict(test.reshape(-1, 2)).reshape(len(fold.test), N)
            per_fold.append(_mean_ic(predicted, y[fold.test]))
        scores.append(np.mean(per_fold))
    np.testing.assert_allclose(fit.cv_scores, scores, rtol=1e-12)
    chosen = spec.candidates()[int(np.argmax(scores))]
    assert fit.params == chosen
    x, target = samples(cube, y, np.arange(fit.train_rows))
    reference = Ridge(**chosen).fit(x, target)
    np.testing.assert_allclose(
        fit.predict(cube, np.array([80]))[0],
        reference.predict(np.nan_to_num(cube.values[80], nan=0.0)),
        rtol=1e-10,
    )


@pytest.mark.parametrize("model", ["ridge", "lasso", "elasticnet", "mlp"])
def test_a_decision_is_reproducible(model):
    fields, returns = market(3)
    cube, y = feature_cube(fields), labels(returns, 1)
    first = fit_at(cube, y, 75, MLSpec(model, folds=2, seed=5))
    second = fit_at(cube, y, 75, MLSpec(model, folds=2, seed=5))
    rows = np.arange(75, T)
    np.testing.assert_array_equal(first.predict(cube, rows), second.predict(cube, rows))
    assert first.params == second.params


def test_a_planted_linear_signal_is_learnt_and_ranks_first_in_importance():
    fields, returns = market(4, signal=0.05)
    cube, y = feature_cube(fields), labels(returns, 1)
    fit = fit_at(cube, y, 60, MLSpec("ridge", folds=2))
    rows = np.arange(60, T - 1)
    assert _mean_ic(fit.predict(cube, rows), y[rows]) > 0.3
    assert int(np.argmax(fit.model.importances)) == cube.names.index("a")


def test_lightgbm_recovers_a_planted_interaction_that_ridge_cannot():
    """Next month's return loads on the product of two standardised fields: no linear
    model of the two sees it; boosted trees find most of it."""
    rng = np.random.default_rng(6)
    t, n = 100, 100
    a, b = rng.normal(size=(t, n)), rng.normal(size=(t, n))
    returns = rng.normal(0, 0.05, size=(t, n))
    returns[1:] += 0.03 * (a * b)[:-1]
    cube, y = feature_cube({"a": a, "b": b}), labels(returns, 1)
    rows = np.arange(70, t - 1)
    planted = _mean_ic((a * b)[rows], y[rows])
    tested = {
        model: _mean_ic(fit_at(cube, y, 70, MLSpec(model, folds=2)).predict(cube, rows), y[rows])
        for model in ("lightgbm", "ridge")
    }
    assert planted > 0.3
    assert tested["lightgbm"] > 0.6 * planted, tested
    assert abs(tested["ridge"]) < 0.2 * planted, tested


def test_lightgbm_decisions_are_reproducible():
    fields, returns = market(7)
    cube, y = feature_cube(fields), labels(returns, 1)
    fits = [fit_at(cube, y, 75, MLSpec("lightgbm", folds=2, seed=1)) for _ in range(2)]
    rows = np.arange(75, T)
    np.testing.assert_array_equal(fits[0].predict(cube, rows), fits[1].predict(cube, rows))


def test_an_unknown_model_is_named_with_the_known_ones():
    from alphafactory.ml.models import ModelError

    fields, returns = market(8)
    with pytest.raises(ModelError, match="unknown model 'xgboost'; expected one of ridge, lasso"):
        fit_at(feature_cube(fields), labels(returns, 1), 70, MLSpec("xgboost"))
