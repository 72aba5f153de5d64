"""What an ML variant adds to a walk-forward month (issue 15): the same months of the
bundled strategy walked forward twice through the live pipeline, once with its usual
variants and once also with a supervised alpha (``--ml MODEL``: the strategy's ``[ml]``
model, allocated alone as the variant of that name) and a pool combined by it
(``combo_lightgbm``). Target: at most 50% more time per month.

    .venv/bin/python benchmarks/ml_walkforward.py [--from 2005-01] [--to 2005-12]
        [--candidates 2000] [--ml lightgbm] [--out /tmp/alphafactory-ml-walkforward]

The generator is trained once before the window in both runs (``--retrain-every 0``), and
the month's time is the wall time of the decisions (the report's phases without the
training), so the comparison is the pipeline's work per month. Prints the machine, both
times per month, the ratio and the CPU seconds per process of each run.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks.factor_eval_cli import cpu_model  # noqa: E402
from benchmarks.walkforward import VARIANTS, run_walkforward  # noqa: E402

TARGET = 1.5


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--from", dest="first", default="2005-01")
    parser.add_argument("--to", dest="last", default="2005-12")
    parser.add_argument("--candidates", type=int, default=2000)
    parser.add_argument("--ml", default="lightgbm", help="the [ml] model of the ML variant")
    parser.add_argument("--out", type=Path, default=Path("/tmp/alphafactory-ml-walkforward"))
    args = parser.parse_args()
    runs = {
        "formulas": VARIANTS,
        f"with {args.ml}": f"{VARIANTS},{args.ml},combo_lightgbm",
    }
    print(f"machine: CPU {cpu_model()}, {os.cpu_count()} cores; load {os.getloadavg()[0]:.2f}")
    per_month = {}
    for label, variants in runs.items():
        out = args.out / label.replace(" ", "_")
        shutil.rmtree(out, ignore_errors=True)
        _, _, code = run_walkforward(args.first, args.last, out, args.candidates, 0, variants)
        if code != 0:
            print(f"{label}: walkforward failed ({code})", file=sys.stderr)
            return code
        report = json.loads((out / "report.json").read_text())
        phases = report["phases"]
        deciding = sum(v for k, v in phases["wall_seconds"].items() if k != "training")
        months = max(v["n_rebalances"] for v in report["variants"].values())
        per_month[label] = deciding / months
        print(
            f"{label}: {months} months, {per_month[label]:.2f} s a month deciding "
            f"(training {phases['wall_seconds']['training']:.0f} s apart); "
            f"CPU s by process {phases['cpu_seconds_by_process']}"
        )
        if args.ml in report["variants"]:
            ml = report["variants"][args.ml]
            print(f"  {args.ml} variant: Sharpe {ml['sharpe']}, excess {ml['excess_return']}")
    formulas, with_ml = per_month.values()
    ratio = with_ml / formulas
    verdict = "meets" if ratio <= TARGET else "misses"
    print(f"an ML variant's month: {ratio:.2f}x the formulas' ({verdict} the {TARGET}x target)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
