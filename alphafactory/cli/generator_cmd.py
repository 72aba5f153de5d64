"""The generator's commands: build trajectories, train the model, generate formulas.

    alphafactory trajectories build --data FILE --split DATE --out T.parquet
    alphafactory model train --trajectories T.parquet --data FILE --split DATE --out M.pt
    alphafactory generate --model M.pt --target "hac_tstat=3" -n 100 [--json]

``--split`` separates the training period (dates before it: trajectory rewards, training)
from the later period that validation uses, so nothing after the split leaks into training.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

from alphafactory.settings import Settings


def register(commands) -> None:
    trajectories = commands.add_parser("trajectories", help="generator training data")
    actions = trajectories.add_subparsers(dest="action", required=True, metavar="ACTION")
    build = actions.add_parser("build", help="score library, random and MCMC formulas")
    _data_arguments(build)
    build.add_argument("--out", type=Path, required=True, help="Parquet file to write")
    build.add_argument("--metric", default="hac_tstat", help="reward metric (default hac_tstat)")
    build.add_argument("--gamma", type=float, default=1.0, help="return-to-go discount")
    build.add_argument("--random", type=int, default=2000, help="random formulas")
    build.add_argument("--chains", type=int, default=16, help="MCMC chains")
    build.add_argument("--steps", type=int, default=50, help="proposals per MCMC chain")
    build.add_argument("--temperature", type=float, default=0.5, help="MCMC temperature")
    build.add_argument("--max-tokens", type=int, default=16, help="formula length limit")
    build.add_argument("--roots", default="macro,panel", help="formula kinds: macro,panel")
    build.add_argument("--workers", type=int, default=1, help="worker processes")
    build.add_argument("--seed", type=int, default=0)
    build.set_defaults(handler=run_build)

    model = commands.add_parser("model", help="the generator model")
    model_actions = model.add_subparsers(dest="action", required=True, metavar="ACTION")
    fit = model_actions.add_parser("train", help="train a Decision Transformer")
    fit.add_argument("--trajectories", type=Path, required=True)
    _data_arguments(fit)
    fit.add_argument("--out", type=Path, required=True, help="checkpoint file to write")
    fit.add_argument("--layers", type=int, default=2)
    fit.add_argument("--heads", type=int, default=4)
    fit.add_argument("--d-model", type=int, default=64)
    fit.add_argument("--dropout", type=float, default=0.1)
    fit.add_argument("--steps", type=int, default=2000)
    fit.add_argument("--batch-size", type=int, default=256)
    fit.add_argument("--lr", type=float, default=1e-3)
    fit.add_argument("--device", default="auto", help="auto, cpu or cuda")
    fit.add_argument(
        "--validation",
        type=float,
        default=0.1,
        help="fraction of trajectories held out, rewarded on the later period",
    )
    fit.add_argument(
        "--top",
        type=float,
        default=None,
        help="behaviour cloning: train on the best fraction, no conditioning",
    )
    fit.add_argument("--seed", type=int, default=0)
    fit.set_defaults(handler=run_train)

    generate = commands.add_parser("generate", help="write formulas with a trained model")
    generate.add_argument("--model", type=Path, required=True, help="checkpoint file")
    generate.add_argument("--target", required=True, help='e.g. "hac_tstat=3"')
    generate.add_argument("-n", type=int, default=100, help="distinct formulas wanted")
    generate.add_argument("--temperature", type=float, default=1.0)
    generate.add_argument("--top-k", type=int, default=0)
    generate.add_argument("--roots", default=None, help="formula kinds, e.g. macro")
    generate.add_argument("--seed", type=int, default=None)
    generate.add_argument("--json", action="store_true", help="print one JSON object")
    generate.set_defaults(handler=run_generate)


def _data_arguments(parser) -> None:
    parser.add_argument("--data", type=Path, required=True, help="panel file (long format)")
    parser.add_argument("--macro", action="append", default=[], metavar="COLUMN",
                        help="a column that is a macro series")  # fmt: skip
    parser.add_argument("--split", required=True,
                        help="first date of the held-out period (YYYY-MM-DD)")  # fmt: skip


def _fail(message: str) -> int:
    print(f"alphafactory: {message}", file=sys.stderr)
    return 2


def run_build(args, settings: Settings) -> int:
    from inference.pipeline import build_from_file

    try:
        count, provenance = build_from_file(args)
    except ValueError as error:
        return _fail(str(error))
    print(json.dumps({"trajectories": count, "out": str(args.out), **provenance}))
    return 0


def run_train(args, settings: Settings) -> int:
    from inference.pipeline import train_from_file

    try:
        summary = train_from_file(args, progress=lambda e: print(json.dumps(e), file=sys.stderr))
    except ValueError as error:
        return _fail(str(error))
    print(json.dumps(summary))
    return 0


def run_generate(args, settings: Settings) -> int:
    from inference.pipeline import generate_from_checkpoint

    try:
        result = generate_from_checkpoint(args)
    except ValueError as error:
        return _fail(str(error))
    if args.json:
        print(json.dumps(result))
    else:
        for formula in result["formulas"]:
            print(formula)
    return 0
