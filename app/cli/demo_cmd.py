"""`alphafactory demo`: the main job on the bundled defaults, through the live pipeline.

1. Bring the local stack up with its pipeline services (release handler, generator,
   allocator, relay, a Celery worker).
2. Build the bundled real dataset and store it: every month-end price (each visible only
   from its date's close) and the macro releases made before the replay window.
3. Train a small generator on the years before the window (or reuse the cached one for
   the same data), export it to the Triton model repository and restart Triton on it.
4. Replay the window's releases (``--months`` core CPI releases from ``--from``, by
   default 2007-07 to 2010-06: the crisis and the recovery, and every other series'
   releases among them) to ``macro.releases`` in release-time order. Each CPI
   release triggers the bundled strategy: the demo shows, per release, the formulas
   generated, evaluated and qualified, the pool and the new positions.
5. Report the rebalanced portfolio's out-of-sample performance against its benchmark
   (the same risk-parity mix untilted), save a plot, and print the psql command that
   shows the positions as ``trading_reader``.
"""

from __future__ import annotations

import logging
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from alphafactory.settings import Settings


TRIGGER_SERIES = "us_core_cpi"


def register(commands) -> None:
    parser = commands.add_parser("demo", help="run the main job on the bundled defaults")
    parser.add_argument("--months", type=int, default=36, help="core CPI releases to replay")
    parser.add_argument(
        "--from",
        dest="first",
        default="2007-07",
        metavar="YYYY-MM",
        help="the month of the first replayed core CPI release (default: the 2008 crisis on)",
    )
    parser.add_argument("--train-steps", type=int, default=400)
    parser.add_argument("--retrain", action="store_true", help="ignore a cached generator")
    parser.add_argument(
        "--no-triton", action="store_true", help="generate in process (skip the export to Triton)"
    )
    parser.add_argument("--keep-running", action="store_true", help="leave the stack up afterwards")
    parser.add_argument("--verbose", action="store_true", help="show the INFO logs too")
    parser.set_defaults(handler=run)


def run(args, settings: Settings) -> int:
    from app import stack

    if not args.verbose:  # the progress lines are the output; the services log to files
        logging.getLogger().setLevel(logging.WARNING)
    started = time.monotonic()
    print("1/5 bringing the local stack up (Kafka, Postgres, Redis, Triton, services) ...")
    try:
        stack.up(settings)
    except stack.StackError as error:
        print(f"alphafactory: {error}", file=sys.stderr)
        return 1
    try:
        return _demo(args, settings, started)
    finally:
        if not args.keep_running:
            print(f"stack down: stopped {', '.join(stack.down(settings))}")


def _demo(args, settings: Settings, started: float) -> int:
    from alphafactory.data.bundled import bundled_market
    from alphafactory.strategy import active_strategies
    from app.cli import demo_steps as steps

    (strategy,) = [
        s
        for s in active_strategies(settings.pipeline.strategies_dir)
        if s.triggered_by(TRIGGER_SERIES)
    ][:1]
    print("2/5 building the bundled real dataset and storing it point-in-time ...")
    market = bundled_market()
    window = steps.replay_window(market.releases, TRIGGER_SERIES, args.months, args.first)
    stored = steps.store_history(settings, market, window.start)
    assets, months = market.panel.shape[1], market.panel.shape[0]
    print(
        f"    {assets} assets x {months} months, {stored} releases before "
        f"{window.start:%Y-%m-%d}; replaying {len(window.releases)} releases "
        f"({args.months} {TRIGGER_SERIES} triggers) to {window.end:%Y-%m-%d}"
    )
    print("3/5 generator: training a small model on the years before the window ...")
    summary = steps.ensure_generator(settings, strategy, market.panel, window.start, args)
    print(f"    {summary}")
    print("4/5 replaying the releases through the live pipeline ...")
    outcomes = steps.replay(settings, strategy, window.releases, TRIGGER_SERIES)
    print("5/5 out-of-sample performance of the rebalanced portfolio ...")
    plot = Path(settings.state_path) / "demo_performance.png"
    steps.report(settings, strategy, market.panel, outcomes, plot)
    when = "" if args.keep_running else " (while the stack runs: demo --keep-running)"
    print(f"\npositions as a trading system reads them{when}:\n  {steps.psql_command(settings)}")
    print(f"done in {time.monotonic() - started:.0f} s")
    return 0 if outcomes and all(o.allocation_id for o in outcomes) else 1
