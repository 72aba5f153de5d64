"""`alphafactory init`: the first run on a stack that `alphafactory stack up` started.

1. Store the bundled data point-in-time (skip with ``--no-bundled`` when the strategies
   run on your own loaded data); a re-run stores nothing new.
2. Train the default generator on the strategy's stored data available before today
   (``app.generator_setup``), unless a checkpoint for the same operands exists
   (``--retrain`` trains anyway).
3. Export it to the Triton model repository and restart Triton and the generation
   service on it.

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
        description="Store the bundled data (unless --no-bundled), train the default "
        "generator on the strategy's data stored before today (unless one for the same "
        "operands exists; --retrain), export it to Triton and restart Triton and the "
        "generation service on it. Re-running is cheap and safe.",
    )
    parser.add_argument(
        "--strategy",
        metavar="ID",
        help=f"the strategy the generator is trained for (default {DEFAULT_STRATEGY!r}, "
        "or the only active one)",
    )
    parser.add_argument("--no-bundled", action="store_true", help="do not load the bundled data")
    parser.add_argument("--retrain", action="store_true", help="train even if a generator exists")
    parser.add_argument("--train-steps", type=int, default=None, help="training steps (400)")
    parser.add_argument("--formulas", type=int, default=None, help="random formulas (3000)")
    parser.set_defaults(handler=run)


def run(args, settings: Settings) -> int:
    from alphafactory.data.errors import DataError
    from alphafactory.strategy import StrategyError
    from app.generator_setup import GeneratorSetupError
    from storage.errors import StorageError

    try:
        strategy = _strategy(settings, args.strategy)
        if not args.no_bundled:
            print(f"1/3 bundled data: {_store_bundled(settings)} new observation(s) stored")
        else:
            print("1/3 bundled data: skipped (--no-bundled)")
        print(f"2/3 generator for strategy {strategy.id!r}: {_generator(settings, strategy, args)}")
        from app.generator_setup import serve

        print(f"3/3 serving: {serve(settings)}")
    except (DataError, StorageError, StrategyError, GeneratorSetupError) as error:
        print(f"alphafactory: {error}", file=sys.stderr)
        return 1
    print("ready: a release or market data that triggers an active strategy makes positions")
    return 0


def _strategy(settings: Settings, chosen: str | None):
    from alphafactory.strategy import StrategyError, active_strategies

    active = {s.id: s for s in active_strategies(settings.pipeline.strategies_dir)}
    wanted = chosen or (DEFAULT_STRATEGY if DEFAULT_STRATEGY in active else None)
    if wanted is None and len(active) == 1:
        wanted = next(iter(active))
    if wanted not in active:
        raise StrategyError(
            f"no active strategy {wanted!r} in {settings.pipeline.strategies_dir}; "
            f"active: {sorted(active)} (choose one with --strategy)"
        )
    return active[wanted]


def _store_bundled(settings: Settings) -> int:
    from alphafactory.data.bundled import bundled_market
    from alphafactory.observations import MarketObservations
    from app.cli.data_cmd import store
    from storage.db import connect

    market = bundled_market()
    with connect(settings.postgres.dsn("app"), autocommit=True) as conn:
        return store(conn, MarketObservations.from_panel(market.panel), market.releases)


def _generator(settings: Settings, strategy, args) -> str:
    from datetime import date
    from pathlib import Path

    from app.generator_setup import (
        DEFAULT_FORMULAS,
        DEFAULT_STEPS,
        start_of_day,
        stored_training_panel,
        train_from_store,
    )
    from inference.pipeline import panel_vocabulary
    from inference.training import CheckpointError, load_checkpoint
    from storage.db import connect

    until = start_of_day(date.today())
    path = Path(settings.pipeline.generator_checkpoint)
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
