"""ML alpha retraining (issue 15): LightGBM on 3,000 assets x 500 dates x 50 features.

Times, on generated data with a planted interaction, the refit of LightGBM on every
labelled sample (the retrain a decision pays when its hyperparameters are kept), the
whole decision fit (cross-validated choice, then the refit), and, as the reference
measured in the same run, ridge's whole decision fit on the same cube. Target: the
LightGBM retrain within 60 s on two cores.

    .venv/bin/python benchmarks/ml_retrain.py [--assets 3000 --dates 500 --features 50]
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from alphafactory.ml.cv import known_label_rows  # noqa: E402
from alphafactory.ml.features import feature_cube, labels  # noqa: E402
from alphafactory.ml.fit import MLSpec, _fit_rows, _mean_ic, fit_at  # noqa: E402
from benchmarks.factor_eval_cli import cpu_model  # noqa: E402

TARGET_S = 60.0


def generated(assets: int, dates: int, features: int, seed: int = 0):
    rng = np.random.default_rng(seed)
    sources = {f"f{k:02d}": rng.normal(size=(dates, assets)) for k in range(features)}
    returns = rng.normal(0, 0.05, size=(dates, assets))
    returns[1:] += 0.02 * (sources["f00"] * sources["f01"])[:-1] + 0.01 * sources["f02"][:-1]
    return sources, returns


def timed(work):
    start = time.perf_counter()
    out = work()
    return out, time.perf_counter() - start


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--assets", type=int, default=3000)
    parser.add_argument("--dates", type=int, default=500)
    parser.add_argument("--features", type=int, default=50)
    parser.add_argument("--threads", type=int, default=os.cpu_count() or 1)
    args = parser.parse_args(argv)
    sources, returns = generated(args.assets, args.dates, args.features)
    cube, seconds_cube = timed(lambda: feature_cube(sources))
    y = labels(returns, 1)
    decision = args.dates - 50
    rows = np.arange(decision, args.dates - 1)
    known = np.arange(known_label_rows(decision, 1))
    lightgbm = MLSpec("lightgbm", threads=args.threads)
    params = lightgbm.candidates()[-1]  # the larger trees: the slower refit
    refit, seconds_refit = timed(lambda: _fit_rows(cube, y, known, lightgbm, params))
    chosen, seconds_decision = timed(lambda: fit_at(cube, y, decision, lightgbm))
    ridge, seconds_ridge = timed(lambda: fit_at(cube, y, decision, MLSpec("ridge")))
    print(f"machine: CPU {cpu_model()}, {os.cpu_count()} cores; {args.threads} threads")
    print(
        f"data: {args.assets:,} assets x {args.dates} dates x {args.features} features "
        f"({len(known) * args.assets:,} training samples); cube built in {seconds_cube:.1f} s"
    )
    print(f"LightGBM retrain ({params}): {seconds_refit:.1f} s (target {TARGET_S:.0f} s)")
    print(
        f"LightGBM decision fit (CV over {len(lightgbm.candidates())} grid points, then refit): "
        f"{seconds_decision:.1f} s; chose {chosen.params}"
    )
    print(
        f"ridge decision fit (reference): {seconds_ridge:.1f} s; LightGBM retrain / ridge "
        f"decision = {seconds_refit / seconds_ridge:.1f}x"
    )
    for name, fit in (("LightGBM", chosen), ("ridge", ridge)):
        ic = _mean_ic(fit.predict(cube, rows), y[rows])
        print(f"{name} test IC on the last {len(rows)} dates: {ic:.3f}")
    print(f"LightGBM retrain within target: {seconds_refit <= TARGET_S}")
    del refit


if __name__ == "__main__":
    main()
