"""The generator's commands: build trajectories, train the model, generate formulas.

    alphafactory trajectories build --data FILE --split DATE --out T.parquet
    alphafactory model train --trajectories T.parquet --data FILE --split DATE --out M.pt
    alphafactory generate --model M.pt --target "hac_tstat=3" -n 100 [--json]
    alphafactory model train --strategy ID [--until DATE] [--register]
    alphafactory model list | promote VERSION | rollback   (app.cli.model_versions_cmd)

``--split`` separates the training period (dates before it: trajectory rewards, training)
from the later period that validation uses, so nothing after the split leaks into training.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from app.cli import model_versions_cmd

if TYPE_CHECKING:
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
    fit = model_actions.add_parser(
        "train",
        help="train a Decision Transformer",
        description="Train the generator either on a strategy's stored point-in-time data "
        "(--strategy ID [--until DATE]: trajectories built and the model trained on what was "
        "available before DATE, then exported to Triton and served) or on a trajectory "
        "file (--trajectories, --data, --split, --out).",
    )
    fit.add_argument("--strategy", metavar="ID", help="train on this strategy's stored data")
    fit.add_argument(
        "--until",
        type=_day,
        metavar="YYYY-MM-DD",
        help="with --strategy: use data available before this date (default: today)",
    )
    fit.add_argument(
        "--formulas",
        type=int,
        default=None,
        help="with --strategy: random formulas in the training set (default 3000)",
    )
    fit.add_argument(
        "--no-serve", action="store_true", help="with --strategy: do not export and serve it"
    )
    fit.add_argument(
        "--register",
        action="store_true",
        help="with --strategy: a new version in the model registry (trained on data before "
        "--until), served by Triton beside the earlier ones and promoted, as the trainer does",
    )
    fit.add_argument("--trajectories", type=Path)
    _data_arguments(fit, required=False)
    fit.add_argument("--out", type=Path, help="checkpoint file to write")
    fit.add_argument("--layers", type=int, default=2)
    fit.add_argument("--heads", type=int, default=4)
    fit.add_argument("--d-model", type=int, default=64)
    fit.add_argument(
        "--dropout", type=float, default=0.1, help="on the embeddings and residual branches"
    )
    fit.add_argument(
        "--attention-dropout",
        type=float,
        default=0.0,
        help="on the attention weights (off: on CPU it costs a third of a training step)",
    )
    fit.add_argument(
        "--steps", type=int, default=None, help="default 2000 (file), 400 (--strategy)"
    )
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

    export = model_actions.add_parser("export", help="write a Triton model repository")
    export.add_argument("--checkpoint", type=Path, required=True)
    export.add_argument(
        "--repository",
        type=Path,
        default=None,
        help="model repository (default: settings triton.repository)",
    )
    export.add_argument(
        "--name", default=None, help="model name (default: settings triton.generator_model)"
    )
    export.add_argument("--version", type=int, default=1)
    export.add_argument("--max-batch-size", type=int, default=1024)
    export.add_argument(
        "--instances",
        choices=("gpu", "cpu"),
        default="gpu",
        help="instance kind in config.pbtxt (gpu: production)",
    )
    export.add_argument(
        "--top-k",
        type=int,
        default=None,
        help="K of the top_logits/top_tokens outputs (default 16; 0: logits only)",
    )
    export.set_defaults(handler=run_export)
    model_versions_cmd.register(model_actions)

    search = commands.add_parser("search", help="search formulas under an evaluation budget")
    search.add_argument("--data", type=Path, required=True, help="panel file (long format)")
    search.add_argument("--macro", action="append", default=[], metavar="COLUMN")
    search.add_argument(
        "--split", default=None, help="first held-out date (default: the date 70%% into the data)"
    )
    search.add_argument("--method", choices=("dt", "random", "mcmc", "bc"), required=True)
    search.add_argument("--budget", type=int, required=True, help="formula evaluations")
    search.add_argument("--seed", type=int, default=0)
    search.add_argument(
        "--definition",
        default="hac_tstat >= 2",
        help='alpha definition, e.g. "ls_sharpe > 0.7 and ls_max_drawdown < 0.1"',
    )
    search.add_argument("--metric", default="hac_tstat", help="training reward metric")
    search.add_argument("--roots", default="macro,panel", help="formula kinds")
    search.add_argument("--max-tokens", type=int, default=16)
    search.add_argument("--target", type=float, default=None, help="dt conditioning target")
    search.add_argument("--train-steps", type=int, default=1000, help="dt/bc training steps")
    search.add_argument("--workers", type=int, default=1)
    search.add_argument("--top", type=int, default=10, help="formulas listed in best")
    search.add_argument("--json", action="store_true", help="print one JSON object")
    search.set_defaults(handler=run_search)

    generate = commands.add_parser("generate", help="write formulas with a trained model")
    generate.add_argument("--model", type=Path, required=True, help="checkpoint file")
    generate.add_argument("--target", required=True, help='e.g. "hac_tstat=3"')
    generate.add_argument("-n", type=int, default=100, help="distinct formulas wanted")
    generate.add_argument("--temperature", type=float, default=1.0)
    generate.add_argument("--top-k", type=int, default=0)
    generate.add_argument("--roots", default=None, help="formula kinds, e.g. macro")
    generate.add_argument("--seed", type=int, default=None)
    generate.add_argument(
        "--via",
        choices=("local", "triton"),
        default="local",
        help="local: the checkpoint in this process; triton: batched calls to the Triton "
        "server of the settings (fallback per triton.fallback)",
    )
    generate.add_argument("--json", action="store_true", help="print one JSON object")
    generate.set_defaults(handler=run_generate)


def _day(text: str):
    from datetime import date

    try:
        return date.fromisoformat(text)
    except ValueError as error:
        raise argparse.ArgumentTypeError(f"{text!r} is not a date (YYYY-MM-DD)") from error


def _data_arguments(parser, *, required: bool = True) -> None:
    parser.add_argument("--data", type=Path, required=required, help="panel file (long format)")
    parser.add_argument(
        "--macro",
        action="append",
        default=[],
        metavar="COLUMN",
        help="a column that is a macro series",
    )
    parser.add_argument(
        "--split", required=required, help="first date of the held-out period (YYYY-MM-DD)"
    )


def _fail(message: str) -> int:
    print(f"alphafactory: {message}", file=sys.stderr)
    return 2


def _job(cls, args, **values):
    """A typed job (``inference.jobs``) from the parsed arguments: each field of ``cls``
    the namespace has (a panel file becomes a ``PanelSource``), then ``values``."""
    from inference.jobs import PanelSource, root_kinds

    fields = {f.name for f in dataclasses.fields(cls)}
    given = {k: v for k, v in vars(args).items() if k in fields}
    if "source" in fields:
        given["source"] = PanelSource(args.data, args.split, tuple(args.macro))
    if isinstance(given.get("roots"), str):
        given["roots"] = root_kinds(given["roots"])
    return cls(**{**given, **values})


def run_build(args, settings: Settings) -> int:
    from inference.jobs import BuildJob
    from inference.pipeline import build_from_file

    try:
        count, provenance = build_from_file(_job(BuildJob, args))
    except ValueError as error:
        return _fail(str(error))
    print(json.dumps({"trajectories": count, "out": str(args.out), **provenance}))
    return 0


def run_train(args, settings: Settings) -> int:
    if args.strategy:
        return _train_from_store(args, settings)
    missing = [f"--{n}" for n in ("trajectories", "data", "split", "out") if not getattr(args, n)]
    if missing:
        return _fail(f"model train needs --strategy ID, or {', '.join(missing)} for a file")
    from inference.jobs import TrainJob
    from inference.pipeline import train_from_file

    def progress(event: dict) -> None:
        print(json.dumps(event), file=sys.stderr)

    try:
        job = _job(TrainJob, args, steps=args.steps or 2000)
        summary = train_from_file(job, progress=progress)
    except ValueError as error:
        return _fail(str(error))
    print(json.dumps(summary))
    return 0


def _train_from_store(args, settings: Settings) -> int:
    from datetime import date

    from alphafactory.strategy import StrategyError, load_strategies
    from app.generator_setup import (
        DEFAULT_FORMULAS,
        DEFAULT_STEPS,
        GeneratorSetupError,
        checkpoint_path,
        serve,
        start_of_day,
        train_from_store,
    )

    try:
        strategies = {s.id: s for s in load_strategies(settings.pipeline.strategies_dir)}
    except StrategyError as error:
        return _fail(str(error))
    if args.strategy not in strategies:
        return _fail(f"no strategy {args.strategy!r}; known: {sorted(strategies)}")
    until = start_of_day(args.until or date.today())
    if args.register:
        return _register(args, settings, strategies[args.strategy], until)
    try:
        trained = train_from_store(
            settings,
            strategies[args.strategy],
            until=until,
            steps=args.steps or DEFAULT_STEPS,
            formulas=args.formulas or DEFAULT_FORMULAS,
            out=args.out,
        )
    except GeneratorSetupError as error:
        return _fail(str(error))
    print(trained.describe())
    name = strategies[args.strategy].generation.generator
    kept = checkpoint_path(settings, name)
    if args.no_serve:
        return 0
    if trained.path.resolve() != kept.resolve():
        print(f"not served: the pipeline serves {kept}, not {trained.path}")
        return 0
    print(serve(settings, trained.path, name))
    return 0


def _register(args, settings: Settings, strategy, until) -> int:
    from app.generator_setup import GeneratorSetupError
    from app.trainer import train_version

    try:
        version = train_version(settings, strategy, until, steps=args.steps, formulas=args.formulas)
    except GeneratorSetupError as error:
        return _fail(str(error))
    print(
        f"{version.label}: trained on data released before {until:%Y-%m-%d %H:%M %Z}, "
        f"served as {version.served_model!r} and promoted"
    )
    return 0


def run_export(args, settings: Settings) -> int:
    from inference.export import export_repository
    from inference.repository import DEFAULT_TOP_K, ServingOptions
    from inference.training import load_checkpoint

    repository = args.repository or settings.triton.repository
    try:
        options = ServingOptions(
            model_name=args.name or settings.triton.generator_model,
            version=args.version,
            max_batch_size=args.max_batch_size,
            instances=args.instances,
            top_k=DEFAULT_TOP_K if args.top_k is None else args.top_k,
        )
        path = export_repository(load_checkpoint(args.checkpoint), repository, options)
    except ValueError as error:
        return _fail(str(error))
    print(
        json.dumps(
            {
                "model": options.model_name,
                "version": options.version,
                "onnx": str(path),
                "repository": str(repository),
            }
        )
    )
    print("serve it locally with: alphafactory stack restart triton", file=sys.stderr)
    return 0


def run_search(args, settings: Settings) -> int:
    from inference.jobs import SearchJob
    from inference.pipeline import search_from_file

    try:
        report = search_from_file(_job(SearchJob, args))
    except ValueError as error:
        return _fail(str(error))
    if args.json:
        print(json.dumps(report))
    else:
        keys = ("method", "n_evaluated", "n_valid", "n_unique", "n_qualified", "hit_rate")
        print("  ".join(f"{k}={report[k]}" for k in keys))
        for entry in report["best"]:
            print(f"{entry['test'].get('ic')!s:>24}  {entry['formula']}")
    return 0


def run_generate(args, settings: Settings) -> int:
    from inference.jobs import GenerateJob
    from inference.pipeline import generate_from_checkpoint
    from inference.triton_client import TritonUnavailable

    try:
        job = _job(GenerateJob, args)
        result = generate_from_checkpoint(job, settings.triton if args.via == "triton" else None)
    except ValueError as error:
        return _fail(str(error))
    except TritonUnavailable as error:
        print(f"alphafactory: {error}", file=sys.stderr)
        return 1
    if args.json:
        print(json.dumps(result))
    else:
        for formula in result["formulas"]:
            print(formula)
    return 0
