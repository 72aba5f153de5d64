"""`alphafactory factor eval EXPR --data FILE`: one formula's (or a file of formulas') metrics.

Output follows DESIGN.md contract 5: one JSON object per formula with the metric keys
(NaN written as null), plus ``formula`` (canonical text) and ``formula_hash``. With
``--formulas FILE`` a bad line yields an error object for that line and the batch goes on.
``--plot PATH`` also writes a PNG tear sheet per valid formula (see :mod:`.tearsheet`); the
printed output is the same with or without it.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from pathlib import Path

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
        "--macro-window",
        type=_positive_int,
        default=36,
        help="rows in the trailing regressions that map macro factors to assets",
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
    evaluate.set_defaults(handler=run_eval)


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}")
    return value


def run_eval(args, settings: Settings) -> int:
    from alphafactory.allocator import keep_freed_memory
    from alphafactory.data.errors import DataError
    from alphafactory.data.panel_files import load_panel

    keep_freed_memory()
    if (args.expr is None) == (args.formulas is None):
        print("alphafactory: give exactly one of EXPR or --formulas FILE", file=sys.stderr)
        return 2
    try:
        panel = load_panel(args.data, macro_columns=args.macro)
        formulas = [args.expr] if args.expr else _read_formulas(args.formulas)
    except (DataError, OSError) as error:
        print(f"alphafactory: {error}", file=sys.stderr)
        return 2
    failures = 0
    plotter = _Plotter(args.plot, single=args.expr is not None, dates=panel.dates)
    for result in evaluate_formulas(
        panel, formulas, args, on_scored=plotter if args.plot else None
    ):
        failures += "error" in result
        print(json.dumps(result) if args.json else _human(result))
    return 1 if failures or plotter.failures else 0


class _Plotter:
    """``on_scored`` callback for ``--plot``: one tear sheet per valid formula."""

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


def evaluate_formulas(panel, formulas: list[str], args, *, on_scored=None):
    """One result dict per formula: the metrics, or ``{"formula": text, "error": ...}``.

    ``on_scored(index, formula, series, metrics)``, if given, is called for each valid
    formula with its position in ``formulas``, its canonical text, the per-date
    :meth:`FactorScorer.series` and the metrics dict (NaN as NaN, not None)."""
    from alphafactory.evaluate import Evaluator, asset_scores
    from alphafactory.formula import FormulaError, formula_hash
    from alphafactory.metrics import FactorScorer, infer_periods_per_year
    from alphafactory.scoring import config_for_periods

    periods = args.periods_per_year or infer_periods_per_year(panel.dates)
    config = config_for_periods(periods)
    evaluator = Evaluator(panel, config=config)
    scorer = FactorScorer.for_panel(
        panel, horizon=args.horizon, quantiles=args.quantiles, periods_per_year=periods
    )
    for index, text in enumerate(formulas):
        try:
            formula = evaluator.prepare(text)
        except FormulaError as error:
            yield {"formula": text, "error": f"{type(error).__name__}: {error}"}
            continue
        values = asset_scores(formula, panel, window=args.macro_window, evaluator=evaluator)
        metrics = scorer.score(values).to_dict()
        if on_scored is not None:
            on_scored(index, str(formula), scorer.series(values), metrics)
        yield {
            "formula": str(formula),
            "formula_hash": formula_hash(formula),
            **{k: _json_number(v) for k, v in metrics.items()},
        }


def _json_number(value):
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict | list | tuple):
        return json.loads(json.dumps(value, default=float).replace("NaN", "null"))
    return value


def _human(result: dict) -> str:
    if "error" in result:
        return f"{result['formula']}\n  error: {result['error']}"
    keys = (
        "ic",
        "rank_ic",
        "icir",
        "ls_sharpe",
        "ls_annual_return",
        "ls_max_drawdown",
        "turnover",
        "hac_tstat",
        "n_periods",
    )
    cells = "  ".join(f"{k}={_fmt(result.get(k))}" for k in keys)
    return f"{result['formula']}\n  {cells}"


def _fmt(value) -> str:
    return "nan" if value is None else f"{value:.4f}" if isinstance(value, float) else str(value)
