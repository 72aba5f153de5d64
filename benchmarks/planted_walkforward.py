"""The proof on planted and null markets (issue 30): the walk-forward, through the live
pipeline, on macro markets where six formulas move class returns (planted) and on their
twins with the same noise and no signal (null), several seeds each.

    .venv/bin/python benchmarks/planted_walkforward.py [--seeds 0,1,2]
        [--markets planted,null] [--from 1990-01] [--to 2016-12] [--candidates 500]
        [--retrain-every 36] [--planted 6] [--strength 0.10] [--port-offset 100]
        [--variants pool25,random,tsmom,risk_parity]
        [--out /tmp/alphafactory-planted] [--record FILE]

Per run it writes the market's panel and release files and a store strategy (a tilt of
the classes' risk parity, the default admission control), runs ``alphafactory
walkforward`` with the strategy's pool, the random-grammar baseline and risk parity, and
prints per variant: trials, admitted and the rate, the out-of-sample IC of what was traded
with its t, and the excess return's t; then the targets:

- planted, every seed: the pool's ``oos_ic_t`` >= 3 and above the random baseline's by
  at least 1.5 (issue 30); the strategy's excess HAC t net of costs >= 3 and above the
  random baseline's (issue 31);
- null, every seed: fewer than 0.2% of the candidates admitted, and every variant's
  |``oos_ic_t``| and |``excess_hac_tstat``| (gross and net) below 2.

``--record FILE`` writes the machine, the command and every run's numbers as JSON.
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

import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from alphafactory.data.macro_markets import (  # noqa: E402
    CLASS_GROUP,
    PLANTED_STRENGTH,
    macro_market,
    oracle_information_ratio,
)
from benchmarks.factor_eval_cli import cpu_model  # noqa: E402

ALPHAFACTORY = str(Path(sys.executable).parent / "alphafactory")
VARIANTS = "pool25,random,tsmom,risk_parity"
STRATEGY = """
id = "planted"
description = "A tilt of the planted market's class risk parity (benchmarks/planted_walkforward.py)"
[universe]
data = "store"
cash = "CASH"
[formulas]
root_kinds = ["macro"]
max_tokens = 12
[alpha]
definition = "hac_tstat >= 2 or hac_tstat <= -2"
training_months = 120
[generation]
candidates = {candidates}
chunk_size = {chunk}
[pool]
size = 25
max_correlation = 0.7
[portfolio]
kind = "tilt"
tilt_limit = 0.05
tracking_error = 0.03
class_limit = 0.10
risk_parity_group = "{group}"
benchmark_excludes = ["CASH"]
[costs]
default_bps = 10
[triggers]
series = ["MAC00"]
[rebalance]
min_days_between = 20
"""


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seeds", default="0,1,2")
    parser.add_argument("--markets", default="planted,null")
    parser.add_argument("--from", dest="first", default="1990-01")
    parser.add_argument("--to", dest="last", default="2016-12")
    parser.add_argument("--candidates", type=int, default=500)
    parser.add_argument("--retrain-every", type=int, default=36)
    parser.add_argument("--planted", type=int, default=6, help="planted formulas")
    parser.add_argument("--port-offset", type=int, default=100, help="the run's stack ports")
    parser.add_argument("--strength", type=float, default=PLANTED_STRENGTH)
    parser.add_argument("--variants", default=VARIANTS, help="the targets read pool25 and random")
    parser.add_argument("--out", type=Path, default=Path("/tmp/alphafactory-planted"))
    parser.add_argument("--record", type=Path, help="write every run's numbers here (JSON)")
    args = parser.parse_args()
    runs = []
    for kind in args.markets.split(","):
        for seed in (int(s) for s in args.seeds.split(",")):
            runs.append(_run(kind, seed, args))
            _print_run(runs[-1])
    verdict = _targets(runs)
    print("\n" + "\n".join(verdict))
    if args.record:
        machine = f"CPU {cpu_model()}, {os.cpu_count()} cores"
        record = {"machine": machine, "arguments": vars(args) | {"out": str(args.out)}}
        record |= {"runs": runs, "targets": verdict}
        args.record.write_text(json.dumps(record, indent=1, default=str))
        print(f"recorded in {args.record}")
    return 0


def _run(kind: str, seed: int, args) -> dict:
    out = args.out / f"{kind}-{seed}"
    if out.exists():
        shutil.rmtree(out)
    files = out / "files"
    files.mkdir(parents=True)
    market = macro_market(
        seed=seed, null=kind == "null", n_planted=args.planted, strength=args.strength
    )
    panel_file, releases_file = write_market(market, files)
    strategies = out / "strategies"
    strategies.mkdir()
    chunk = max(1, args.candidates // 4)
    (strategies / "planted.toml").write_text(
        STRATEGY.format(candidates=args.candidates, chunk=chunk, group=CLASS_GROUP)
    )
    command = [
        ALPHAFACTORY, "walkforward", "--strategy", "planted", "--from", args.first,
        "--to", args.last, "--out", str(out / "run"), "--panel", str(panel_file),
        "--releases", str(releases_file), "--candidates", str(args.candidates),
        "--retrain-every", str(args.retrain_every), "--variants", args.variants,
        "--port-offset", str(args.port_offset),
    ]  # fmt: skip
    env = os.environ | {"ALPHAFACTORY_PIPELINE__STRATEGIES_DIR": str(strategies)}
    started = time.monotonic()
    code = subprocess.run(command, env=env, check=False).returncode
    wall = time.monotonic() - started
    if code != 0:
        raise SystemExit(f"walkforward of {kind} seed {seed} failed ({code})")
    report = json.loads((out / "run" / "report.json").read_text())
    keys = ("trials", "accepted", "hit_rate", "oos_ic", "oos_ic_t", "excess_hac_tstat")
    return {
        "market": kind,
        "seed": seed,
        "oracle_ir": oracle_information_ratio(market, f"{args.first}-01"),
        "wall_minutes": wall / 60,
        "admission_control": report["settings"]["admission_control"],
        "costs": report["settings"].get("costs"),
        "variants": {
            name: {k: v.get(k) for k in (*keys, "information_ratio", "mean_pool_size")}
            | {
                "net_excess_hac_tstat": (v.get("net") or {}).get("excess_hac_tstat"),
                "net_information_ratio": (v.get("net") or {}).get("information_ratio"),
            }
            for name, v in report["variants"].items()
        },
    }


def write_market(market, folder: Path) -> tuple[Path, Path]:
    panel = market.panel
    t, n = panel.shape
    frame = pd.DataFrame(
        {
            "date": np.repeat(pd.DatetimeIndex(panel.dates).strftime("%Y-%m-%d"), n),
            "asset": np.tile(panel.assets, t),
            "returns": panel.fields["returns"].reshape(-1),
            "close": panel.fields["close"].reshape(-1),
            f"group:{CLASS_GROUP}": panel.groups[CLASS_GROUP].reshape(-1),
        }
    )
    panel_file = folder / "panel.csv"
    frame.to_csv(panel_file, index=False, float_format="%.17g")
    releases = market.releases.assign(
        released_at=market.releases["released_at"].map(lambda t: pd.Timestamp(t).isoformat())
    )
    releases_file = folder / "releases.csv"
    releases[["series_id", "period", "value", "released_at"]].to_csv(releases_file, index=False)
    return panel_file, releases_file


def _print_run(run: dict) -> None:
    print(
        f"\n{run['market']} seed {run['seed']}: oracle IR {_num(run['oracle_ir'])}, "
        f"{run['wall_minutes']:.1f} min; control {run['admission_control']}"
    )
    headers = ("variant", "trials", "admitted", "rate", "OOS IC", "OOS IC t", "excess t", "IR")
    print("| " + " | ".join((*headers, "net t", "net IR")) + " |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    for name, v in run["variants"].items():
        rate = f"{v['hit_rate']:.3%}" if v.get("hit_rate") is not None else ""
        print(
            f"| {name} | {v.get('trials') or ''} | {v.get('accepted') or ''} | {rate} | "
            f"{_num(v.get('oos_ic'), 3)} | {_num(v.get('oos_ic_t'))} | "
            f"{_num(v.get('excess_hac_tstat'))} | {_num(v.get('information_ratio'))} | "
            f"{_num(v.get('net_excess_hac_tstat'))} | {_num(v.get('net_information_ratio'))} |"
        )


def _targets(runs: list[dict]) -> list[str]:
    lines = []
    for run in runs:
        pool, random = run["variants"].get("pool25", {}), run["variants"].get("random", {})
        name = f"{run['market']} seed {run['seed']}"
        if run["market"] == "planted":
            t, base = pool.get("oos_ic_t") or float("nan"), random.get("oos_ic_t") or 0.0
            ok = t >= 3 and t - base >= 1.5
            lines.append(f"{name}: pool oos_ic_t {t:.2f} vs random {base:.2f}: {_pass(ok)}")
            net = pool.get("net_excess_hac_tstat") or float("nan")
            net_base = random.get("net_excess_hac_tstat") or 0.0
            ok = net >= 3 and net > net_base
            lines.append(
                f"{name}: pool's excess t net of costs {net:.2f} vs random {net_base:.2f}: "
                f"{_pass(ok)}"
            )
        else:
            trials = sum(v.get("trials") or 0 for v in run["variants"].values())
            accepted = sum(v.get("accepted") or 0 for v in run["variants"].values())
            rate = accepted / trials if trials else float("nan")
            worst = max(
                abs(v.get(k) or 0.0)
                for v in run["variants"].values()
                for k in ("oos_ic_t", "excess_hac_tstat", "net_excess_hac_tstat")
            )
            ok = rate < 0.002 and worst < 2
            lines.append(f"{name}: admitted {rate:.3%}, largest |t| {worst:.2f}: {_pass(ok)}")
    return lines


def _pass(ok: bool) -> str:
    return "meets the target" if ok else "MISSES the target"


def _num(value, digits: int = 2) -> str:
    return "" if value is None or not np.isfinite(value) else f"{value:.{digits}f}"


if __name__ == "__main__":
    sys.exit(main())
