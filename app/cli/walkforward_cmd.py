"""`alphafactory walkforward --strategy ID --from YYYY-MM --to YYYY-MM --out DIR`: decades
of history through the live pipeline (app.walkforward_run), then ``DIR/report.html`` and
``DIR/report.json`` (app.walkforward_report). Re-running with the same ``--out``
continues where it stopped. Exit codes: 0 done; 1 the stack or the run failed; 2 a bad
argument; 130 stopped by Ctrl-C (run it again to continue).
"""

from __future__ import annotations

import argparse
import logging
import signal
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from alphafactory.settings import Settings


def register(commands) -> None:
    parser = commands.add_parser(
        "walkforward",
        help="run history through the live pipeline; write report.html and report.json",
        description="Replay the stored releases and market data from --from to --to through "
        "the pipeline's topics, services, workers and tables, on a stack of its own under "
        "--out, retraining the generator every --retrain-every months on data released "
        "before each retraining date, and report every variant out of sample.",
    )
    parser.add_argument("--strategy", required=True, metavar="ID")
    parser.add_argument("--from", dest="first", required=True, metavar="YYYY-MM")
    parser.add_argument("--to", dest="last", required=True, metavar="YYYY-MM")
    parser.add_argument("--out", type=Path, required=True, metavar="DIR")
    parser.add_argument("--variants", default=None, action=_VariantsHelp)
    parser.add_argument(
        "--panel", type=Path, help="a store strategy's panel file, loaded into the run's stack"
    )
    parser.add_argument(
        "--releases", type=Path, help="a store strategy's release file, loaded likewise"
    )
    parser.add_argument("--retrain-every", type=int, default=12, metavar="N", help="months")
    parser.add_argument("--candidates", type=int, default=None, help="per rebalance")
    parser.add_argument("--train-steps", type=int, default=None, help="per retraining")
    parser.add_argument("--train-formulas", type=int, default=None, help="per retraining")
    parser.add_argument(
        "--warm-steps",
        type=int,
        default=None,
        help="a retraining's fine-tuning steps from the version before (default 100)",
    )
    parser.add_argument(
        "--port-offset", type=int, default=100, help="the run's stack ports: yours plus this"
    )
    parser.add_argument("--keep-running", action="store_true", help="leave its stack up")
    parser.set_defaults(handler=run)


def _fail(message: str, code: int = 2) -> int:
    print(f"alphafactory: {message}", file=sys.stderr)
    return code


def run(args, settings: Settings) -> int:
    from alphafactory.strategy import StrategyError
    from alphafactory.variant_names import VariantError
    from app.walkforward_run import Plan, WalkforwardError, month_bounds

    try:
        first, last = month_bounds(args.first, args.last)
        source = _strategy_file(settings, args.strategy)
        plan = Plan(
            strategy_id=args.strategy,
            first=first,
            last=last,
            out=args.out.resolve(),
            variants=_variants(args.variants, source),
            retrain_every=args.retrain_every,
            candidates=args.candidates,
            train_steps=args.train_steps,
            train_formulas=args.train_formulas,
            warm_steps=args.warm_steps,
        )
        if args.retrain_every < 0:
            raise WalkforwardError(f"--retrain-every {args.retrain_every}: expected >= 0")
        for flag in ("candidates", "train_steps", "warm_steps"):
            if (value := getattr(args, flag)) is not None and value < 1:
                raise WalkforwardError(f"--{flag.replace('_', '-')} {value}: expected >= 1")
        if args.train_formulas is not None and args.train_formulas < 10:
            raise WalkforwardError(f"--train-formulas {args.train_formulas}: expected >= 10")
    except (WalkforwardError, StrategyError, VariantError) as error:
        return _fail(str(error))
    logging.getLogger().setLevel(logging.WARNING)  # the progress bar is the output
    # SIGTERM (and SIGINT, which a shell ignores in a background job) stop the run as
    # Ctrl-C does: its stack goes down, and the same command continues later
    signal.signal(signal.SIGTERM, _interrupt)
    try:
        files = {"panel": args.panel, "releases": args.releases}
        return _walk(plan, settings, source, files, args.keep_running, args.port_offset)
    except KeyboardInterrupt:
        print("\nstopped: run the same command again to continue", file=sys.stderr)
        return 130


def _interrupt(_signum, _frame) -> None:
    raise KeyboardInterrupt


class _VariantsHelp(argparse._StoreAction):
    """``--variants`` with its help read from the variant registry when it is shown, so
    the CLI does not import the core (numpy and all) to start."""

    @property
    def help(self) -> str:
        from alphafactory.variant_names import names_help

        return (
            f"comma-separated: {names_help()} (default: the pools, baselines and "
            "benchmarks the strategy can run)"
        )

    @help.setter
    def help(self, _value) -> None:
        pass  # set by argparse's constructor; the property above is the help


def _strategy_file(settings: Settings, strategy_id: str) -> Path:
    from alphafactory.strategy import BUNDLED_DIR, StrategyError, load_strategy

    folder = Path(settings.pipeline.strategies_dir or BUNDLED_DIR)
    for path in sorted(folder.glob("*.toml")):
        if load_strategy(path).id == strategy_id:
            return path
    known = sorted(load_strategy(p).id for p in folder.glob("*.toml"))
    raise StrategyError(f"no strategy {strategy_id!r} in {folder}; known: {known}")


def _variants(text: str | None, source: Path) -> tuple[str, ...]:
    from alphafactory.strategy import load_strategy
    from alphafactory.variant_names import DEFAULT_NAMES, VariantError, VariantKind, parse
    from alphafactory.variants import derive

    strategy = load_strategy(source)
    if text is None:
        names = []
        for name in DEFAULT_NAMES:
            try:
                derive(strategy, name)
                names.append(name)
            except VariantError:
                continue  # e.g. 60_40 without stocks and bonds named: left out
        return tuple(names)
    names = tuple(dict.fromkeys(n.strip() for n in text.split(",") if n.strip()))
    if not names:
        raise VariantError("--variants is empty: name at least one")
    for name in names:
        # an ML variant's model is added to the run's strategy file (write_strategy)
        if parse(name).kind is not VariantKind.MODEL:
            derive(strategy, name)
    return names


def _walk(plan, settings: Settings, source: Path, files, keep_running: bool, offset: int) -> int:
    from alphafactory.data.errors import DataError
    from alphafactory.strategy import StrategyError
    from app import stack
    from app.walkforward_progress import ProgressBar, stack_cpu_seconds
    from app.walkforward_run import (
        Progress,
        WalkforwardError,
        run_periods,
        run_settings,
        write_strategy,
    )

    started = time.monotonic()
    run = run_settings(settings, plan.out, offset)
    strategy = write_strategy(plan, source)
    print(f"walk-forward of {strategy.id}, {plan.first:%Y-%m} to {plan.last:%Y-%m} (exclusive)")
    print(f"  variants: {', '.join(plan.variants)}; its stack: {run.state_path}")
    try:
        stack.up(run)
    except stack.StackError as error:
        return _fail(str(error), 1)
    try:
        _store_data(run, strategy, files)
        progress = Progress()
        cpu_before = stack_cpu_seconds(run)
        with ProgressBar(run, plan, strategy, progress) as bar:
            run_periods(run, plan, strategy, progress=progress, on_change=bar.changed)
        cpu = {k: v - cpu_before.get(k, 0.0) for k, v in stack_cpu_seconds(run).items()}
        return _report(run, strategy, plan, started, progress, cpu, home=settings)
    except (WalkforwardError, TimeoutError, StrategyError, DataError) as error:
        return _fail(str(error), 1)
    finally:
        if not keep_running:
            stack.down(run)


def _store_data(settings: Settings, strategy, files: dict) -> None:
    """The bundled sets for a bundled strategy; the ``--panel`` / ``--releases`` files
    for a store strategy (idempotent: a resumed run stores nothing new)."""
    from datetime import UTC, datetime

    from alphafactory.data.market_files import read_market_file
    from alphafactory.data.release_files import read_release_file
    from alphafactory.strategy import StrategyError
    from app.cli.data_cmd import bundled_data, store
    from storage.db import connect

    if strategy.universe.data == "bundled":
        markets, releases = bundled_data()
    else:
        now = datetime.now(UTC)
        markets = [read_market_file(files["panel"], now=now)] if files["panel"] else []
        releases = read_release_file(files["releases"], now=now) if files["releases"] else None
    with connect(settings.postgres.dsn("app"), autocommit=True) as conn:
        store(conn, markets, releases)
        (held,) = conn.execute(
            "SELECT count(*) FROM (SELECT 1 FROM core.market_observations_all LIMIT 1) AS x"
        ).fetchone()
    if not held:
        raise StrategyError(
            f"strategy {strategy.id!r} reads the store, and this run's stack holds no "
            "market data: give the files with --panel FILE and --releases FILE"
        )


def _report(
    settings: Settings, strategy, plan, started: float, progress, cpu, *, home: Settings
) -> int:
    """The report's files, stored too in the run's Postgres and in ``home``'s (the
    deployment's, whose dashboard shows the latest walk-forward; skipped with a warning
    when it is not running)."""
    from app.walkforward_html import write_report
    from app.walkforward_progress import cpu_phases
    from app.walkforward_report import build_report

    report, series = build_report(settings, strategy, plan)
    # this invocation's (a resumed run counts only what it did itself)
    report["phases"] = {
        "seconds": round(time.monotonic() - started, 1),
        "wall_seconds": {k: round(v, 1) for k, v in progress.seconds.items()},
        "cpu_seconds": cpu_phases(cpu),
        "cpu_seconds_by_process": {k: round(v, 1) for k, v in sorted(cpu.items())},
    }
    databases = (settings.postgres, home.postgres)
    json_path, html_path = write_report(plan.out, report, series, databases=databases)
    print(
        f"\n{'variant':14s} {'rebal':>5s} {'CAGR':>7s} {'Sharpe':>7s} {'maxDD':>7s} {'excess':>7s}"
    )
    for name, v in report["variants"].items():
        print(
            f"{name:14s} {v['n_rebalances']:5d} {v['cagr']:7.2%} {v['sharpe']:7.2f} "
            f"{v['max_drawdown']:7.2%} {v['excess_return']:7.2%}"
        )
    print(f"\nreport: {html_path}\n        {json_path}")
    cpu_phases = report["phases"]["cpu_seconds"]
    print("CPU seconds by phase: " + ", ".join(f"{k} {v:.0f}" for k, v in cpu_phases.items()))
    print(f"done in {report['phases']['seconds']:.0f} s")
    return 0
