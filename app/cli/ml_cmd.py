"""`alphafactory ml eval --data FILE --model M --split DATE`: a supervised alpha out of
sample (DESIGN.md contract 10; :mod:`alphafactory.ml.holdout`).

Prints one JSON object: the metric contract's keys on the dates from the split on (NaN as
null), the chosen hyperparameters, the feature importances, the cross-validated IC of
each grid point and how many dates the model trained on. A bad file, an unknown feature
or a split with nothing to score exits 2 with the reason.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from app.cli.factor_cmd import _json_number, _positive_int

MODELS = ("ridge", "lasso", "elasticnet", "lightgbm", "mlp")  # alphafactory.ml.models


def register(commands) -> None:
    parser = commands.add_parser("ml", help="supervised-learning alphas")
    actions = parser.add_subparsers(dest="action", required=True, metavar="ACTION")
    evaluate = actions.add_parser(
        "eval", help="fit a model before a split date and score its predictions after it"
    )
    evaluate.add_argument("--data", type=Path, required=True, help="panel file (contract 2)")
    evaluate.add_argument("--model", choices=MODELS, required=True)
    evaluate.add_argument(
        "--split", type=_date, required=True, help="first date scored (YYYY-MM-DD)"
    )
    evaluate.add_argument(
        "--features",
        type=_names,
        default=None,
        help="comma-separated fields (default: every numeric field but returns)",
    )
    evaluate.add_argument("--horizon", type=_positive_int, default=1)
    evaluate.add_argument("--quantiles", type=_positive_int, default=5)
    evaluate.add_argument("--folds", type=_positive_int, default=3, help="CV folds")
    evaluate.add_argument("--seed", type=int, default=0)
    evaluate.add_argument("--json", action="store_true", help="print the JSON object")
    evaluate.set_defaults(handler=run_eval, needs_settings=False)


def _date(text: str):
    import numpy as np

    try:
        return np.datetime64(text, "D")
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a date YYYY-MM-DD, got {text!r}") from None


def _names(text: str) -> list[str]:
    names = [name.strip() for name in text.split(",") if name.strip()]
    if not names:
        raise argparse.ArgumentTypeError(f"expected field names separated by commas, got {text!r}")
    return names


def run_eval(args, settings) -> int:
    from alphafactory.data.errors import DataError
    from alphafactory.data.panel_files import load_panel
    from alphafactory.ml.cv import CVError
    from alphafactory.ml.features import FeatureError
    from alphafactory.ml.holdout import Holdout, holdout_metrics
    from alphafactory.ml.models import ModelError

    options = Holdout(
        model=args.model,
        split=args.split,
        features=args.features,
        horizon=args.horizon,
        quantiles=args.quantiles,
        folds=args.folds,
        seed=args.seed,
    )
    try:
        result = holdout_metrics(load_panel(args.data), options)
    except (DataError, OSError, FeatureError, CVError, ModelError) as error:
        print(f"alphafactory: {error}", file=sys.stderr)
        return 2
    printable = {key: _json_number(value) for key, value in result.items()}
    if args.json:
        print(json.dumps(printable))
    else:
        print(_human(printable))
    return 0


def _human(result: dict) -> str:
    keys = ("ic", "rank_ic", "icir", "ls_sharpe", "ls_annual_return", "hac_tstat", "n_periods")
    cells = "  ".join(f"{k}={result.get(k)}" for k in keys)
    top = sorted(result["feature_importances"].items(), key=lambda kv: -kv[1])[:5]
    ranked = ", ".join(f"{name} {share:.2f}" for name, share in top)
    return (
        f"{result['model']} from {result['split']} ({result['n_train_dates']} dates before)\n"
        f"  {cells}\n  hyperparameters {result['hyperparameters']}\n  importance {ranked}"
    )
