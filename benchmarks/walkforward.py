"""The walk-forward at full scale (issue 14): the bundled strategy from 1995-01 to the end
of the bundled data, 2,000 candidates per rebalance, yearly retraining, three pool-size
variants, the two generator baselines and the plain benchmarks, through the live
pipeline. Target: under 60 minutes on 2 cores, phase times reported.

    .venv/bin/python benchmarks/walkforward.py [--from 1995-01] [--to 2017-03]
        [--candidates 2000] [--retrain-every 12] [--port-offset 100]
        [--out /tmp/alphafactory-walkforward]
        [--record benchmarks/walkforward]

Runs ``alphafactory walkforward`` (a fresh ``--out`` unless you resume one), then prints
the machine, the wall time, the phases (from report.json) and the headline table; with
``--record DIR`` it copies report.json and report.html there.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks.factor_eval_cli import cpu_model  # noqa: E402

ALPHAFACTORY = str(Path(sys.executable).parent / "alphafactory")
VARIANTS = "pool10,pool25,pool100,random,library,risk_parity,equal_weight,60_40"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--from", dest="first", default="1995-01")
    parser.add_argument("--to", dest="last", default="2017-03")
    parser.add_argument("--candidates", type=int, default=2000)
    parser.add_argument("--retrain-every", type=int, default=12)
    parser.add_argument("--variants", default=VARIANTS)
    parser.add_argument("--port-offset", type=int, default=100, help="the run's stack ports")
    parser.add_argument("--out", type=Path, default=Path("/tmp/alphafactory-walkforward"))
    parser.add_argument("--resume", action="store_true", help="keep --out's earlier run")
    parser.add_argument("--record", type=Path, help="copy report.json and report.html here")
    args = parser.parse_args()
    if args.out.exists() and not args.resume:
        shutil.rmtree(args.out)
    load = os.getloadavg()[0]
    command, wall, code = run_walkforward(
        args.first,
        args.last,
        args.out,
        args.candidates,
        args.retrain_every,
        args.variants,
        args.port_offset,
    )
    if code != 0:
        print(f"walkforward failed ({code})", file=sys.stderr)
        return code
    report = json.loads((args.out / "report.json").read_text())
    print(f"\nmachine: CPU {cpu_model()}, {os.cpu_count()} cores; load before {load:.2f}")
    print(f"command: {' '.join(command[1:])}")
    print(f"wall: {wall / 60:.1f} min (target: under 60)")
    phases = report["phases"]
    print(
        "CPU minutes by phase: "
        + ", ".join(f"{k} {v / 60:.1f}" for k, v in phases["cpu_seconds"].items())
    )
    print(f"CPU seconds by process: {phases['cpu_seconds_by_process']}")
    print(f"wall seconds: {phases['wall_seconds']}")
    trained = [m for m in report["models"] if m["requests"]]
    seconds = sum(m["training_seconds"] or 0.0 for m in trained)
    print(f"training: {len(trained)} versions, {seconds / 60:.1f} min in the trainer")
    print(
        "\n| variant | rebalances | CAGR | vol | Sharpe | max DD | excess | IR | HAC t "
        "| IS Sharpe |"
    )
    print("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    for name, v in report["variants"].items():
        print(
            f"| {name} | {v['n_rebalances']} | {_pct(v['cagr'])} | {_pct(v['volatility'])} | "
            f"{_num(v['sharpe'])} | {_pct(v['max_drawdown'])} | {_pct(v['excess_return'])} | "
            f"{_num(v['information_ratio'])} | {_num(v['excess_hac_tstat'])} | "
            f"{_num(v.get('in_sample_sharpe'))} |"
        )
    print(f"\npool sizes: {json.dumps(report['pool_sizes'])}")
    if args.record:
        args.record.mkdir(parents=True, exist_ok=True)
        for name in ("report.json", "report.html"):
            shutil.copy2(args.out / name, args.record / name)
        print(f"recorded in {args.record}")
    return 0


def run_walkforward(
    first: str,
    last: str,
    out: Path,
    candidates: int,
    retrain_every: int,
    variants: str,
    port_offset: int = 100,
) -> tuple[list[str], float, int]:
    """Run ``alphafactory walkforward`` on the bundled strategy: (command, wall s, exit)."""
    command = [
        ALPHAFACTORY,
        "walkforward",
        "--strategy",
        "macro_allocation",
        "--from",
        first,
        "--to",
        last,
        "--out",
        str(out),
        "--candidates",
        str(candidates),
        "--retrain-every",
        str(retrain_every),
        "--variants",
        variants,
        "--port-offset",
        str(port_offset),
    ]
    started = time.monotonic()
    code = subprocess.run(command, check=False).returncode
    return command, time.monotonic() - started, code


def _pct(value) -> str:
    return "" if value is None else f"{value:.2%}"


def _num(value) -> str:
    return "" if value is None else f"{value:.2f}"


if __name__ == "__main__":
    sys.exit(main())
