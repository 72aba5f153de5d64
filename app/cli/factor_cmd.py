"""`alphafactory factor eval EXPR --data FILE`: one formula's (or a file of formulas') metrics.

Output follows DESIGN.md contract 5: one JSON object per formula with the metric keys
(NaN written as null), plus ``formula`` (canonical text) and ``formula_hash``. With
``--formulas FILE`` a bad line yields an error object for that line and the batch goes on.
``--plot PATH`` also writes a PNG tear sheet per valid formula (see :mod:`.tearsheet`); the
printed output is the same with or without it.
"""

from __future__ import annotations

import argparse
import contextlib
import gc
import json
import math
import os
import sys
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from alphafactory.settings import Settings


def register(commands) -> None:
    parser = commands.add_parser("factor", help="factor research tools")
    actions = parser.add_subparsers(dest="action", required=True, metavar="ACTION")
    evaluate = actions.add_parser("eval", help="evaluate formulas on a panel file")
    evaluate.add_argument("expr", nargs="?", help="a formula, e.g. 'rank(-delta(close, 5))'")
    evaluate.add_argument("--formulas", type=Path, help="a file with one formula a line")
    evaluate.add_argument(
        "--data",
        type=Path,
        required=True,
        help="panel file (Parquet or CSV, long format: date, asset, fields)",
    )
    evaluate.add_argument("--horizon", type=_positive_int, default=1)
    evaluate.add_argument("--quantiles", type=_positive_int, default=5)
    evaluate.add_argument(
        "--periods-per-year",
        type=_positive_int,
        default=None,
        help="override the frequency inferred from the date spacing",
    )
    evaluate.add_argument(
        "--macro",
        action="append",
        default=[],
        metavar="COLUMN",
        help="a column that is a macro series (same value for every asset)",
    )
    evaluate.add_argument(
        "--macro-min-periods",
        type=_positive_int,
        default=60,
        help="rows the expanding regressions that map macro factors to per-asset "
        "forecasts need before they forecast",
    )
    evaluate.add_argument("--json", action="store_true", help="print JSON lines")
    evaluate.add_argument(
        "--plot",
        type=Path,
        metavar="PATH",
        help="also write a PNG tear sheet (cumulative long-short return, drawdown, IC, "
        "quantile returns) to PATH; with --formulas, one per valid formula, named "
        "PATH's stem + '-<n>' + suffix, n the formula's 1-based position among the "
        "file's formulas (e.g. sheet.png -> sheet-1.png, sheet-3.png)",
    )
    evaluate.set_defaults(handler=run_eval, needs_settings=False)


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}")
    return value


def run_eval(args, settings: Settings) -> int:
    from alphafactory.data.errors import DataError

    if (args.expr is None) == (args.formulas is None):
        print("alphafactory: give exactly one of EXPR or --formulas FILE", file=sys.stderr)
        return 2
    try:
        panel = _load(args)
        formulas = [args.expr] if args.expr else _read_formulas(args.formulas)
        scorer = _scorer(panel, args)
    except (DataError, OSError) as error:
        print(f"alphafactory: {error}", file=sys.stderr)
        return 2
    failures = 0
    plotter = _Plotter(args.plot, single=args.expr is not None, dates=panel.dates)
    for index, scored in enumerate(scorer.score_each(formulas, series=args.plot is not None)):
        result = _result(scored)
        if args.plot and scored.metrics is not None:
            plotter(index, result["formula"], scored.series, scored.metrics.to_dict())
        failures += "error" in result
        print(json.dumps(result) if args.json else _human(result))
    return 1 if failures or plotter.failures else 0


def _load(args):
    """The panel, read in a thread while this one loads the scoring kernels: reading
    Parquet runs outside the GIL and numba's set-up is Python, so together they take about
    the time of the longer (0.25 s less on 1,000 x 1,260). The reader's error is re-raised.

    Process settings for a short evaluation run (a command, not a library): freed arrays
    stay in the heap (``keep_freed_memory``); scipy's OpenBLAS, which numba's set-up loads
    to check for BLAS and which nothing here calls, starts no threads to spin on the second
    core (an explicit ``OPENBLAS_NUM_THREADS`` wins); no garbage collection while loading,
    and what exists after it (modules, numba's types and kernels) lives as long as the
    process, so it is frozen out of every later collection, the one at exit included (0.1
    to 0.4 s of walking numba's objects)."""
    import threading

    from alphafactory.allocator import keep_freed_memory
    from alphafactory.data.panel_files import load_panel
    from alphafactory.scoring import load_kernels

    keep_freed_memory()
    os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
    outcome: dict = {}

    def read() -> None:
        try:
            outcome["panel"] = load_panel(args.data, macro_columns=args.macro)
        except BaseException as error:  # handed to the caller's thread below
            outcome["error"] = error

    gc.disable()
    try:
        reader = threading.Thread(target=read, name="alphafactory-read-panel")
        reader.start()
        with _scipy_linalg_hidden():
            load_kernels()
        reader.join()
    finally:
        gc.freeze()
        gc.enable()
    if "error" in outcome:
        raise outcome["error"]
    return outcome["panel"]


@contextlib.contextmanager
def _scipy_linalg_hidden():
    """numba's set-up imports scipy.linalg (about 0.06 s here, and an ``lscpu`` subprocess
    run by numpy.testing on the way) only to learn whether numba-compiled ``np.dot`` and
    ``np.linalg`` can use its BLAS; no kernel here uses them, and the kernels are loaded
    compiled. While hidden, that import fails and numba notes "no BLAS" (its ``np.inner``
    then loops); afterwards scipy.linalg imports as usual for anyone else."""
    hide = "scipy.linalg" not in sys.modules
    if hide:
        sys.modules["scipy.linalg"] = None  # import scipy.linalg -> ImportError
    try:
        yield
    finally:
        if hide and sys.modules.get("scipy.linalg", False) is None:
            del sys.modules["scipy.linalg"]


def _scorer(panel, args):
    """The workers' scorer (:class:`~alphafactory.scoring.FormulaScorer`) with the options
    of the command line; a panel it cannot score (too few dates) is a :class:`DataError`."""
    from alphafactory.data.errors import DataError
    from alphafactory.scoring import FormulaScorer, ScoringOptions

    options = ScoringOptions(
        horizon=args.horizon,
        quantiles=args.quantiles,
        macro_min_periods=args.macro_min_periods,
        periods_per_year=args.periods_per_year,
    )
    try:
        return FormulaScorer(panel, options=options)
    except ValueError as error:  # MetricsError too: dates that give no periods per year
        raise DataError(f"{args.data}: cannot score this panel: {error}") from error


def _result(scored) -> dict:
    """The printed object: the metrics (NaN as null), or the formula and why it failed.
    An ML alpha's text (``ml:ridge(...)``) is scored like a formula, walked forward."""
    from alphafactory.ml.candidate import candidate_hash

    if scored.metrics is None:
        error = scored.error
        return {"formula": scored.text, "error": f"{type(error).__name__}: {error}"}
    return {
        "formula": str(scored.formula),
        "formula_hash": candidate_hash(str(scored.formula)),
        **{k: _json_number(v) for k, v in scored.metrics.to_dict().items()},
    }


class _Plotter:
    """``--plot``: one tear sheet per valid formula."""

    def __init__(self, path: Path | None, *, single: bool, dates) -> None:
        self.path, self.single, self.dates, self.failures = path, single, dates, 0

    def __call__(self, index: int, formula: str, series: dict, metrics: dict) -> None:
        from app.cli.tearsheet import write_tearsheet

        path = self.path
        target = path if self.single else path.with_name(f"{path.stem}-{index + 1}{path.suffix}")
        try:
            write_tearsheet(
                target, formula=formula, dates=self.dates, series=series, metrics=metrics
            )
        except (OSError, ValueError) as error:
            self.failures += 1
            print(f"alphafactory: cannot write tear sheet {target}: {error}", file=sys.stderr)


def _read_formulas(path: Path) -> list[str]:
    lines = path.read_text().splitlines()
    return [line.strip() for line in lines if line.strip() and not line.lstrip().startswith("#")]


def _json_number(value):
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict | list | tuple):
        return json.loads(json.dumps(value, default=float).replace("NaN", "null"))
    return value


def _human(result: dict) -> str:
    if "error" in result:
        return f"{result['formula']}\n  error: {result['error']}"
    from alphafactory.metrics import CONTRACT_KEYS

    keys = [k for k in CONTRACT_KEYS if k not in ("rank_icir", "periods_per_year")]
    cells = "  ".join(f"{k}={_fmt(result.get(k))}" for k in keys)
    return f"{result['formula']}\n  {cells}"


def _fmt(value) -> str:
    return "nan" if value is None else f"{value:.4f}" if isinstance(value, float) else str(value)
