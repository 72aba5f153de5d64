"""How long one decision's optimisation takes (issue 31: under 100 ms for 30 assets,
under 2 s for 3,000): the risk-budgeted tilt against its closed form (what candidates
are scored on), measured in the same run, and the long-short and long-only books.

    .venv/bin/python benchmarks/optimiser.py [--assets 30,300,3000] [--window 36]
        [--decisions 10] [--record FILE]

Per size: a market of ``--window`` monthly returns in ten classes, a risk-parity benchmark
by class, and ``--decisions`` decisions with fresh random signals (and the previous
decision's weights paying 10 bp a trade): the first decision's time (cvxpy imported),
the median of the later ones (each writes and solves its problem), the shrunk risk model's
estimate, the closed form's time for the same decision
(``closed_form.budgeted_tilts``, one row) as the reference, and the closed form of
``--candidates`` signals over ``--rows`` rows with a risk model per row (a decision's
scoring of its candidates; fewer where they would pass 20 million values, the most the
scorer stacks at once); then the median decision of a long-short book (gross 1, name
limit 5%) and of a long-only one (name limit 5%) on the same forecasts. Prints a table
and the machine; ``--record`` writes the numbers as JSON.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from alphafactory.closed_form import budgeted_tilts  # noqa: E402
from alphafactory.optimiser import BookProblem, TiltProblem, solve_book, solve_tilt  # noqa: E402
from alphafactory.portfolio import risk_parity  # noqa: E402
from alphafactory.risk import forecasts, risk_rows, shrunk_risk  # noqa: E402
from benchmarks.factor_eval_cli import cpu_model  # noqa: E402

CLASSES = 10
STACK_VALUES = 20_000_000


def _timed(function, *args, **kwargs):
    started = time.perf_counter()
    result = function(*args, **kwargs)
    return result, time.perf_counter() - started


def measure(n: int, window: int, decisions: int, candidates: int, rows: int, seed: int = 0) -> dict:
    rng = np.random.default_rng(seed)
    classes = np.arange(n) % CLASSES
    common = rng.normal(size=(window, CLASSES))[:, classes]
    returns = 0.004 + 0.04 * (0.7 * common + 0.7 * rng.normal(size=(window, n)))
    benchmark = risk_parity(returns, classes)
    risk, estimate_s = _timed(shrunk_risk, returns)
    previous, solve_s, reference_s, book_s = None, [], [], {False: [], True: []}
    for _ in range(decisions):
        signal = rng.standard_normal(n)
        problem = TiltProblem(
            benchmark=benchmark,
            alpha=forecasts(signal, risk, 0.05),
            risk=risk,
            tracking_error=0.03 / np.sqrt(12),
            asset_limit=0.05,
            classes=classes,
            class_limit=0.2,
            previous=previous,
            costs=None if previous is None else np.full(n, 0.001),
        )
        previous, seconds = _timed(solve_tilt, problem)
        solve_s.append(seconds)
        _, seconds = _timed(
            budgeted_tilts,
            problem.alpha,
            benchmark,
            [risk],
            tracking_error=problem.tracking_error,
            asset_limit=0.05,
        )
        reference_s.append(seconds)
        for long_only in book_s:
            book = BookProblem(problem.alpha, risk, long_only=long_only, name_limit=0.05)
            book_s[long_only].append(_timed(solve_book, book)[1])
    # the scorer takes candidates a stack at a time: at most ~20 million values at once
    candidates = max(1, min(candidates, STACK_VALUES // (rows * n)))
    history = 0.004 + 0.04 * rng.normal(size=(rows + window, n))
    risks, rows_s = _timed(risk_rows, history, window, window)
    scores = rng.standard_normal((candidates, rows, n)) * 0.04 * 0.05
    _, scoring_s = _timed(
        budgeted_tilts,
        scores,
        np.broadcast_to(benchmark, (rows, n)),
        risks,
        tracking_error=0.03 / np.sqrt(12),
        asset_limit=0.05,
    )
    return {
        "assets": n,
        "window": window,
        "first_decision_s": solve_s[0],
        "later_decision_median_s": float(np.median(solve_s[1:] or solve_s)),
        "risk_model_s": estimate_s,
        "closed_form_median_s": float(np.median(reference_s)),
        "scoring": {"candidates": candidates, "rows": rows},
        "scoring_risk_rows_s": rows_s,
        "scoring_closed_form_s": scoring_s,
        "long_short_median_s": float(np.median(book_s[False][1:])),
        "long_only_median_s": float(np.median(book_s[True][1:])),
    }


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--assets", default="30,300,3000")
    parser.add_argument("--window", type=int, default=36)
    parser.add_argument("--decisions", type=int, default=10)
    parser.add_argument("--candidates", type=int, default=500)
    parser.add_argument("--rows", type=int, default=120)
    parser.add_argument("--record", type=Path)
    args = parser.parse_args(argv)
    machine = f"CPU {cpu_model()}, {os.cpu_count()} cores, load {os.getloadavg()[0]:.2f}"
    print(machine)
    rows = [
        measure(int(n), args.window, args.decisions, args.candidates, args.rows)
        for n in args.assets.split(",")
    ]
    scoring = f"{args.candidates} candidates x {args.rows} rows"
    print(
        "| assets | first decision | later decisions (median) | risk model | closed form | "
        f"risk per row, {args.rows} rows | closed form, {scoring} | long-short | long-only |"
    )
    print("|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    for row in rows:
        print(
            f"| {row['assets']} | {row['first_decision_s'] * 1e3:.1f} ms | "
            f"{row['later_decision_median_s'] * 1e3:.1f} ms | {row['risk_model_s'] * 1e3:.1f} ms"
            f" | {row['closed_form_median_s'] * 1e3:.2f} ms | "
            f"{row['scoring_risk_rows_s'] * 1e3:.0f} ms | {row['scoring_closed_form_s']:.2f} s "
            f"({row['scoring']['candidates']} candidates) | "
            f"{row['long_short_median_s'] * 1e3:.1f} ms | "
            f"{row['long_only_median_s'] * 1e3:.1f} ms |"
        )
    if args.record:
        args.record.write_text(json.dumps({"machine": machine, "rows": rows}, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
