"""What the planted markets allow at best (issue 30): how much of the planted signal the
strategy's own forecasts keep, and whether a planted formula's in-sample evidence can
clear the admission control at all. In-process, no pipeline, about a minute a seed.

    .venv/bin/python benchmarks/planted_detection.py [--seeds 0,1,2] [--planted 6]
        [--strength 0.10] [--candidates 500] [--record FILE]

Per seed, over the monthly decisions 1990-2016 (each at the trigger's release, on the
decision's own point-in-time panel, 120 training months as benchmarks/planted_walkforward.py):

- ``ceiling``: the out-of-sample IC t of the planted expected returns themselves (what
  knowing the market exactly would rank);
- ``planted formulas``: the out-of-sample IC t of the planted formulas, written exactly,
  turned into forecasts by the strategy's scoring and combined with equal weights (what a
  pool that held all of them from 1990 would trade);
- ``in-sample t``: each planted formula's HAC t over the training window at each decision,
  the evidence admission judges: its median, the share of (formula, decision) pairs at
  2 or more (the definition's bar) and at or above the bar a lone true alpha must clear
  among ``--candidates`` trials under the default control (Benjamini-Yekutieli at 0.10:
  |t| >= 4.18 for 500), and at the loosest bar the null target allows (|t| >= 3.09:
  noise passes 0.2% of the time, with no allowance for the search at all);
- ``tilt``: what the strategy's decision (its construction, risk model and costs) earns
  over its benchmark trading the planted formulas' combination and, as the
  construction's ceiling, the planted expected returns: the excess HAC t gross and net
  of costs, and the information ratio (the issue-31 target is a net t of 3);
- ``retired``: how often the pool's retirement rule (``alphafactory.pool.retirement``)
  retires a planted formula with a positive out-of-sample IC within three years of
  entering (entries every six months from 1990), under the strategy's rule and under the
  old one (the mean alone, ``retire_t`` = +inf), and the same for the formulas' records
  with the skill taken out (each demeaned and shuffled in time).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tomllib
from pathlib import Path

import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from scipy.stats import norm  # noqa: E402

from alphafactory.admission import admit  # noqa: E402
from alphafactory.constructions import construction  # noqa: E402
from alphafactory.data.macro_markets import (  # noqa: E402
    CLASS_GROUP,
    PLANTED_STRENGTH,
    macro_market,
    oracle_information_ratio,
)
from alphafactory.decision import alpha_signals, decision_panel, evaluate_formulas  # noqa: E402
from alphafactory.decision_inputs import (  # noqa: E402
    benchmark_weights,
    decision_market,
    position_rule,
    trading_costs,
)
from alphafactory.metrics.crosssection import rank_ic  # noqa: E402
from alphafactory.metrics.series import series_stats  # noqa: E402
from alphafactory.performance import held_asset_returns, held_periods, held_returns  # noqa: E402
from alphafactory.pool import Record, retirement  # noqa: E402
from alphafactory.strategy import Strategy  # noqa: E402
from alphafactory.walkforward import out_of_sample_ic, variant_record  # noqa: E402
from benchmarks.factor_eval_cli import cpu_model  # noqa: E402
from benchmarks.planted_walkforward import STRATEGY  # noqa: E402

# the |t| noise passes 0.2% of the time (two-sided): the null target's admission rate
NULL_BAR = float(norm.isf(0.002 / 2))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seeds", default="0,1,2")
    parser.add_argument("--planted", type=int, default=6, help="planted formulas")
    parser.add_argument("--strength", type=float, default=PLANTED_STRENGTH)
    parser.add_argument("--candidates", type=int, default=500, help="trials a decision")
    parser.add_argument("--record", type=Path, help="write the numbers here (JSON)")
    args = parser.parse_args()
    strategy = Strategy.model_validate(
        tomllib.loads(STRATEGY.format(candidates=args.candidates, chunk=1, group=CLASS_GROUP))
    )
    bar = admission_bar(args.candidates, strategy)
    print(f"a lone true alpha among {args.candidates} trials needs |t| >= {bar:.2f}")
    print("| seed | oracle IR | ceiling IC t | planted formulas IC t | median in-sample |t| "
          f"| share >= 2 | share >= {NULL_BAR:.2f} | share >= bar "
          "| tilt on the formulas: t, net t, IR | tilt on the ceiling: t, net t, IR |")  # fmt: skip
    print("|---:|---:|---:|---:|---:|---:|---:|---:|---|---|")
    runs = []
    for seed in (int(s) for s in args.seeds.split(",")):
        market = macro_market(seed=seed, n_planted=args.planted, strength=args.strength)
        run = {"seed": seed, "oracle_ir": oracle_information_ratio(market, "1990-01-01")}
        run |= measure(market, strategy, bar)
        runs.append(run)
        print(
            f"| {seed} | {run['oracle_ir']:.2f} | {run['ceiling_ic_t']:.2f} | "
            f"{run['planted_ic_t']:.2f} | {run['median_in_sample_t']:.2f} | "
            f"{run['share_above_2']:.0%} | {run['share_above_null_bar']:.1%} | "
            f"{run['share_above_bar']:.1%} | {_traded(run['tilt_formulas'])} | "
            f"{_traded(run['tilt_ceiling'])} |"
        )
        print(f"  retired within three years: {run['retired']}")
    if args.record:
        record = {
            "machine": f"CPU {cpu_model()}, {os.cpu_count()} cores",
            "arguments": vars(args) | {"record": str(args.record)},
            "admission_bar": bar,
            "null_bar": NULL_BAR,
            "runs": runs,
        }
        args.record.write_text(json.dumps(record, indent=1))
        print(f"recorded in {args.record}")
    return 0


def _traded(record: dict) -> str:
    return (
        f"{record['excess_hac_tstat']:.2f}, {record['net_excess_hac_tstat']:.2f}, "
        f"{record['information_ratio']:.2f}"
    )


def admission_bar(trials: int, strategy: Strategy) -> float:
    """The smallest |t| at which one candidate, among ``trials`` with no evidence, is
    admitted by the strategy's control."""
    noise = np.zeros(trials)
    for t in np.arange(2.0, 8.0, 0.01):
        noise[0] = t
        if admit(
            noise, np.ones(trials, bool), strategy.alpha.control, strategy.alpha.level
        ).n_admitted:
            return float(t)
    return float("nan")


def measure(market, strategy: Strategy, bar: float) -> dict:
    releases = market.releases
    trigger = releases[releases["series_id"] == "MAC00"].drop_duplicates("period")["released_at"]
    decisions = pd.DatetimeIndex(trigger[(trigger >= "1990-01-01") & (trigger < "2017-01-01")])
    decisions = decisions + pd.Timedelta(minutes=1)
    formulas = list(market.planted)
    combined, in_sample, panels, each = [], [], [], []
    history = strategy.alpha.training_months + 60
    for when in decisions:
        visible = releases[releases["released_at"] <= when]
        panel = decision_panel(market.panel, visible, when.to_pydatetime(), history)
        last = alpha_signals(panel, strategy, formulas)[:, -1, :]
        spread = np.nanstd(last, axis=1, keepdims=True)
        z = (last - np.nanmean(last, axis=1, keepdims=True)) / np.where(spread > 0, spread, 1)
        combined.append(np.nanmean(z, axis=0))
        each.append(last)
        panels.append(panel)
        if when.month == 6:  # the in-sample evidence once a year is enough to see its size
            scored = evaluate_formulas(panel, strategy, formulas)
            in_sample += [abs(e.metrics.hac_tstat) for e in scored if e.metrics is not None]
    held = held_asset_returns(market.panel.dates, market.panel.returns, decisions)
    starts = [start for start, _ in held_periods(market.panel.dates, decisions)]
    expected = np.array(
        [market.expected[s] if s < len(market.expected) else np.nan * market.expected[0]
         for s in starts]
    )  # fmt: skip
    in_sample = np.array([t for t in in_sample if np.isfinite(t)])
    traded = {
        name: trade(market, strategy, panels, decisions, signals)
        for name, signals in (("tilt_formulas", combined), ("tilt_ceiling", expected))
    }
    ics = np.array(
        [[rank_ic(row[k], held[d]) for d, row in enumerate(each)] for k in range(len(formulas))]
    )
    traded["retired"] = retired_shares(ics, strategy)
    return traded | {
        "decisions": len(decisions),
        "ceiling_ic_t": out_of_sample_ic(expected, held)["oos_ic_t"],
        "planted_ic_t": out_of_sample_ic(np.array(combined), held)["oos_ic_t"],
        "median_in_sample_t": float(np.median(in_sample)),
        "share_above_bar": float((in_sample >= bar).mean()),
        "share_above_2": float((in_sample >= 2).mean()),
        "share_above_null_bar": float((in_sample >= NULL_BAR).mean()),
    }


RETIRED_WITHIN = 36  # months


def retired_shares(ics: np.ndarray, strategy: Strategy, seed: int = 0) -> dict:
    """The share of entries (every six months, each planted formula with a positive
    out-of-sample IC) retired within ``RETIRED_WITHIN`` months, by the strategy's rule
    and by the mean alone; and the same for the records without their skill."""
    skilled = [x[np.isfinite(x)] for x in ics if np.nanmean(x) > 0]
    rng = np.random.default_rng(seed)
    unskilled = [rng.permutation(x - x.mean()) for x in skilled]
    rules = strategy.pool
    out = {}
    for name, records in (("planted", skilled), ("without skill", unskilled)):
        for rule, retire_t in (("rule", rules.retire_t), ("mean alone", float("inf"))):
            lives = [
                _life(x[start:], rules, retire_t)
                for x in records
                for start in range(0, len(x) - 60, 6)
            ]
            out[f"{name}, {rule}"] = float(np.mean(np.array(lives) <= RETIRED_WITHIN))
    return out


def _life(ics: np.ndarray, rules, retire_t: float) -> int:
    """Periods until a member with this record from its entry retires (its length if never)."""
    n = len(ics)
    prefixes = np.where(np.arange(n)[None, :] <= np.arange(n)[:, None], ics[None, :], np.nan)
    t_stats = series_stats(prefixes, 1)["hac_tstat"]
    for j in range(rules.retire_after - 1, n):
        record = Record(j + 1, float(ics[: j + 1].mean()), float(t_stats[j]))
        rule = {"retire_after": rules.retire_after, "retire_below": rules.retire_below}
        if retirement(record, True, retire_t=retire_t, **rule):
            return j + 1
    return n


def trade(market, strategy: Strategy, panels, decisions, signals) -> dict:
    """The strategy's decisions on ``signals`` (one row per decision) held over the
    market: its record against the benchmark, gross and net of costs."""
    kind = construction(strategy.portfolio.kind)
    sizing = position_rule(strategy).sizing
    assets = market.panel.assets.astype(str)
    held, benchmark, previous = [], [], None
    for panel, signal in zip(panels, signals, strict=True):
        mix = benchmark_weights(panel, strategy, len(panel.returns))
        weights = kind.decide(
            np.nan_to_num(signal), sizing, decision_market(panel, strategy, mix, previous)
        )
        previous = dict(zip(assets, weights.tolist(), strict=True))
        held.append(previous)
        benchmark.append(dict(zip(assets, mix.tolist(), strict=True)))
    costs = trading_costs(panels[-1], strategy)
    dates, returns = market.panel.dates, market.panel.returns
    record = {}
    for prefix, rates in (("", None), ("net_", costs)):
        mine, mixes = (
            held_returns(dates, assets, returns, decisions, w, costs=rates)
            for w in (held, benchmark)
        )
        figures = variant_record(mine, mixes, held, periods_per_year=12)
        record |= {f"{prefix}{k}": figures[k] for k in ("excess_hac_tstat", "information_ratio")}
    return record


if __name__ == "__main__":
    raise SystemExit(main())
