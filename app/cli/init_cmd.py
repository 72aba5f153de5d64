"""`alphafactory init`: the first run on a stack that `alphafactory stack up` started.

1. Store the bundled data point-in-time (skip with ``--no-bundled`` when the strategies
   run on your own loaded data); a re-run stores nothing new.
2. Train each generator the active strategies use (the default one and any strategy's
   own, ``generation.generator``) on its strategy's stored data available before today
   (``app.generator_setup``), unless a checkpoint for the same operands exists
   (``--retrain`` trains anyway).
3. Export them to the Triton model repository and restart Triton and the generation
   service on them.

Afterwards a release on ``macro.releases`` (or market data, or the schedule) that
triggers a strategy ends in new positions. Re-running ``init`` is cheap and safe.
"""

from __future__ import annotations

import sys
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from alphafactory.settings import Settings

DEFAULT_STRATEGY = "macro_allocation"  # the bundled strategy file's id


def register(commands) -> None:
    parser = commands.add_parser(
        "init",
        help="first run: store the bundled data, train, export and serve the generator",
        description="Store the bundled data (unless --no-bundled), train each generator "
        "the active strategies use on its strategy's data stored before today (unless one "
        "for the same operands exists; --retrain), export them to Triton and restart "
        "Triton and the generation service on them. Re-running is cheap and safe.",
    )
    parser.add_argument(
        "--strategy",
        metavar="ID",
        help="train only this strategy's generator (default: every generator the active "
        "strategies use)",
    )
    parser.add_argument("--no-bundled", action="store_true", help="do not load the bundled data")
    parser.add_argument("--retrain", action="store_true", help="train even if a generator exists")
    parser.add_argument("--train-steps", type=int, default=None, help="training steps (400)")
    parser.add_argument("--formulas", type=int, default=None, help="random formulas (3000)")
    parser.set_defaults(handler=run)


def run(args, settings: Settings) -> int:
    from alphafactory.data.errors import DataError
    from alphafactory.strategy import StrategyError
    from app.generator_setup import GeneratorSetupError, export, restart_serving
    from storage.errors import StorageError

    try:
        chosen = _generators(settings, args.strategy)
        if not args.no_bundled:
            print(f"1/3 bundled data: {_store_bundled(settings)} new observation(s) stored")
        else:
            print("1/3 bundled data: skipped (--no-bundled)")
        for name, strategy in chosen.items():
            label = f"generator {name!r}" if name else "the default generator"
            print(f"2/3 {label} (strategy {strategy.id!r}): {_generator(settings, strategy, args)}")
        served = [export(settings, name) for name in chosen]
        print(f"3/3 serving {', '.join(served)}: restarted {restart_serving(settings)}")
    except (DataError, StorageError, StrategyError, GeneratorSetupError) as error:
        print(f"alphafactory: {error}", file=sys.stderr)
        return 1
    print("ready: a release or market data that triggers an active strategy makes positions")
    return 0


def _generators(settings: Settings, chosen: str | None) -> dict:
    """Generator name -> the strategy it is trained for: the ``--strategy``'s alone, or
    each generator the active strategies use (the bundled default's strategy first)."""
    from alphafactory.strategy import StrategyError, active_strategies

    active = {s.id: s for s in active_strategies(settings.pipeline.strategies_dir)}
    if chosen is not None and chosen not in active:
        where = settings.pipeline.strategies_dir or "the bundled strategies"
        raise StrategyError(f"no active strategy {chosen!r} in {where}; active: {sorted(active)}")
    if not active:
        raise StrategyError("no active strategy: nothing to train a generator for")
    ordered = (
        [active[chosen]]
        if chosen
        else sorted(active.values(), key=lambda s: (s.id != DEFAULT_STRATEGY, s.id))
    )
    generators: dict = {}
    for strategy in ordered:
        generators.setdefault(strategy.generation.generator, strategy)
    return generators


def _store_bundled(settings: Settings) -> int:
    from app.cli.data_cmd import bundled_data, store
    from storage.db import connect

    markets, releases = bundled_data()
    with connect(settings.postgres.dsn("app"), autocommit=True) as conn:
        return store(conn, markets, releases)


def _generator(settings: Settings, strategy, args) -> str:
    from datetime import date

    from app.generator_setup import (
        DEFAULT_FORMULAS,
        DEFAULT_STEPS,
        checkpoint_path,
        start_of_day,
        stored_training_panel,
        train_from_store,
    )
    from inference.pipeline import panel_vocabulary
    from inference.training import CheckpointError, load_checkpoint
    from storage.db import connect

    until = start_of_day(date.today())
    path = checkpoint_path(settings, strategy.generation.generator)
    if path.exists() and not args.retrain:
        with connect(settings.postgres.dsn("app"), autocommit=True) as conn:
            panel = stored_training_panel(conn, strategy, until)
        try:
            checkpoint = load_checkpoint(path)
        except CheckpointError as error:
            checkpoint, reason = None, f"unreadable ({error})"
        if checkpoint and checkpoint.vocab.fingerprint == panel_vocabulary(panel).fingerprint:
            until_text = f"{checkpoint.trained_until:%Y-%m-%d}" if checkpoint.trained_until else "?"
            return f"reusing {path} (trained on data released by {until_text})"
        reason = reason if checkpoint is None else "trained on other operands"
        print(f"    {path} is {reason}: training a new one")
    trained = train_from_store(
        settings,
        strategy,
        until=until,
        steps=args.train_steps or DEFAULT_STEPS,
        formulas=args.formulas or DEFAULT_FORMULAS,
    )
    return trained.describe()
