"""The models an ML alpha can use, each with the hyperparameters its cross-validation
chooses from.

Linear models are scikit-learn's (ridge, lasso, elastic net), boosted trees LightGBM's,
the small net is a torch MLP; all learn standardised features (missing values as the
cross-sectional mean, 0) to a standardised forward return. Every fit is deterministic:
fixed seeds, LightGBM's deterministic mode, cyclic coordinate descent for the linear
models, so a decision is reproducible; one thread by default (the workers run one
process per core).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

MODEL_NAMES = ("ridge", "lasso", "elasticnet", "lightgbm", "mlp")

# Small grids: the walk-forward fits a model at every decision, cross-validated, on two
# cores. Penalties are per sample (scikit-learn's lasso and elastic net) or on the sum of
# squares (ridge), for standardised features and labels.
GRIDS: dict[str, tuple[dict[str, Any], ...]] = {
    "ridge": tuple({"alpha": a} for a in (1.0, 100.0, 10_000.0)),
    "lasso": tuple({"alpha": a} for a in (1e-4, 1e-3, 1e-2)),
    "elasticnet": tuple({"alpha": a, "l1_ratio": r} for a in (1e-3, 1e-2) for r in (0.2, 0.8)),
    "lightgbm": tuple(
        {"num_leaves": leaves, "n_estimators": 100, "learning_rate": 0.05} for leaves in (7, 31)
    ),
    "mlp": tuple({"hidden": 32, "weight_decay": w, "epochs": 40} for w in (1e-4, 1e-2)),
}


class ModelError(ValueError):
    """An unknown model name or hyperparameter."""


@dataclass
class FittedModel:
    """A fitted model: its name, hyperparameters, a predictor and feature importances
    (absolute coefficients, or LightGBM's gain, or the first layer's weight norms)."""

    name: str
    params: dict[str, Any]
    predict: Callable[[np.ndarray], np.ndarray]
    importances: np.ndarray


def fit_model(
    name: str,
    params: Mapping[str, Any],
    x: np.ndarray,
    y: np.ndarray,
    *,
    seed: int = 0,
    threads: int = 1,
) -> FittedModel:
    """``name`` fitted with ``params`` on samples ``x`` (S, F) and labels ``y`` (S,), on
    ``threads`` threads (LightGBM and torch; reproducible for a given number)."""
    if name not in MODEL_NAMES:
        raise ModelError(f"unknown model {name!r}; expected one of {', '.join(MODEL_NAMES)}")
    fit = {"lightgbm": _lightgbm, "mlp": _mlp}.get(name, _linear)
    return fit(name, dict(params), x, y, seed, threads)


def _linear(name: str, params: dict, x, y, seed: int, threads: int) -> FittedModel:
    from sklearn.linear_model import ElasticNet, Lasso, Ridge

    kinds = {"ridge": Ridge, "lasso": Lasso, "elasticnet": ElasticNet}
    options = {} if name == "ridge" else {"max_iter": 5_000, "selection": "cyclic"}
    try:
        model = kinds[name](**params, **options, random_state=seed)
    except TypeError as error:
        raise ModelError(f"{name}: bad hyperparameters {params}: {error}") from error
    model.fit(x, y)
    return FittedModel(name, params, model.predict, np.abs(model.coef_))


def _lightgbm(name: str, params: dict, x, y, seed: int, threads: int) -> FittedModel:
    import lightgbm

    options = {
        "random_state": seed,
        "n_jobs": threads,
        "deterministic": True,
        "force_row_wise": True,
        "min_child_samples": 50,
        "subsample": 0.8,
        "subsample_freq": 1,
        "colsample_bytree": 0.8,
        "verbose": -1,
    }
    try:
        model = lightgbm.LGBMRegressor(**{**options, **params})
    except TypeError as error:
        raise ModelError(f"{name}: bad hyperparameters {params}: {error}") from error
    model.fit(x, y)
    gain = model.booster_.feature_importance(importance_type="gain")
    return FittedModel(name, params, model.predict, np.asarray(gain, dtype=np.float64))


def _mlp(name: str, params: dict, x, y, seed: int, threads: int) -> FittedModel:
    import torch

    unknown = set(params) - {"hidden", "weight_decay", "epochs", "learning_rate", "batch"}
    if unknown:
        raise ModelError(f"{name}: unknown hyperparameters {sorted(unknown)}")
    hidden, epochs = int(params.get("hidden", 32)), int(params.get("epochs", 40))
    batch = int(params.get("batch", 4096))
    torch.set_num_threads(threads)
    generator = torch.Generator().manual_seed(seed)
    torch.manual_seed(seed)
    net = torch.nn.Sequential(
        torch.nn.Linear(x.shape[1], hidden), torch.nn.ReLU(), torch.nn.Linear(hidden, 1)
    ).double()
    optimiser = torch.optim.AdamW(
        net.parameters(),
        lr=float(params.get("learning_rate", 1e-3)),
        weight_decay=float(params.get("weight_decay", 1e-4)),
    )
    inputs, targets = torch.from_numpy(x), torch.from_numpy(y)
    for _ in range(epochs):
        order = torch.randperm(len(inputs), generator=generator)
        for start in range(0, len(order), batch):
            rows = order[start : start + batch]
            optimiser.zero_grad()
            loss = torch.nn.functional.mse_loss(net(inputs[rows]).squeeze(-1), targets[rows])
            loss.backward()
            optimiser.step()
    net.eval()

    def predict(features: np.ndarray) -> np.ndarray:
        with torch.no_grad():
            return net(torch.from_numpy(np.asarray(features, np.float64))).squeeze(-1).numpy()

    weights = net[0].weight.detach().numpy()
    return FittedModel(name, params, predict, np.linalg.norm(weights, axis=0))
