"""Search methods at equal budget: Decision Transformer vs random, MCMC and behaviour cloning.

    .venv/bin/python benchmarks/search_comparison.py [--budget N] [--seeds 0 1] [--quick]

Two markets (issue 4, section 4):
(1) a synthetic daily market with planted signals (``synthetic_market(planted=...)``),
    per-asset formulas; a planted signal counts as recovered when one of a method's top 10
    formulas (ranked by training reward) has a test IC of at least 0.9x the planted
    formula's own test IC;
(2) the bundled real data (monthly industry and size/value portfolios, point-in-time
    macro series), macro formulas mapped to assets.
Each method searches the period before the split under the same evaluation budget; the
held-out period decides what qualified (``inference.search``). Prints one table per market.
"""

from __future__ import annotations

import argparse
import time

import numpy as np

from alphafactory.data import synthetic_market
from alphafactory.data.bundled import bundled_market
from alphafactory.formula import Vocabulary
from alphafactory.metrics import parse_definition
from alphafactory.scoring import FormulaScorer, config_for_panel
from inference.model import ModelConfig
from inference.search import METHODS, SearchConfig, run_search, search_report
from inference.trajectories import RewardSpec

DEFINITION = "hac_tstat >= 2"
PLANTED = (("reversal", 0.05), ("volume_shock", 0.04))


def compare(label, panel, split_row, roots, args, planted=()) -> None:
    vocab = Vocabulary(panel.operand_kinds, config_for_panel(panel))
    definition = parse_definition(DEFINITION)
    test = FormulaScorer(panel, config=vocab.config, score_from=split_row)
    planted_ic = {s.name: test.score([s.formula])[0].ic for s in planted}
    print(
        f"\n{label}: {panel.shape[0]} dates x {panel.shape[1]} assets, split at "
        f"{str(panel.dates[split_row])[:10]}, budget {args.budget}, definition "
        f"'{DEFINITION}', reward hac_tstat"
    )
    if planted_ic:
        print("  planted test IC: " + ", ".join(f"{k} {v:.4f}" for k, v in planted_ic.items()))
    print("  method  seed  evaluated  unique  qualified  hit_rate  top10_test_ic  recovered  secs")
    rates: dict[str, list[float]] = {}
    for method in args.methods:
        for seed in args.seeds:
            config = SearchConfig(
                method=method,
                budget=args.budget,
                seed=seed,
                reward=RewardSpec("hac_tstat"),
                max_tokens=args.max_tokens,
                root_kinds=roots,
                train_steps=args.train_steps,
                target=args.target,
                target_quantile=args.target_quantile,
                top_weight=args.top_weight,
                model=ModelConfig(vocab_size=1, d_model=64, n_head=4, n_layer=2),
            )
            start = time.perf_counter()
            found = run_search(panel.head(split_row), vocab, config)
            report = search_report(found, config, panel, split_row, definition, vocab)
            seconds = time.perf_counter() - start
            recovered = _recovered(report, planted_ic)
            rates.setdefault(method, []).append(report["hit_rate"])
            top_ic = report["mean_test_ic_top"]
            print(
                f"  {method:6s} {seed:5d} {report['n_evaluated']:10d} {report['n_unique']:7d} "
                f"{report['n_qualified']:10d} {report['hit_rate']:9.4f} "
                f"{top_ic if top_ic is None else round(top_ic, 4)!s:>14} "
                f"{recovered:>10s} {seconds:5.0f}"
            )
    random_rate = np.mean(rates.get("random", [0.0]))
    summary = ", ".join(
        f"{m} {np.mean(r):.4f} ({np.mean(r) / random_rate:.1f}x random)"
        if random_rate
        else f"{m} {np.mean(r):.4f}"
        for m, r in rates.items()
    )
    print(f"  mean hit rate: {summary}")


def _recovered(report: dict, planted_ic: dict[str, float]) -> str:
    if not planted_ic:
        return "-"
    best = max((e["test"].get("ic") or -1.0 for e in report["best"]), default=-1.0)
    names = [name for name, ic in planted_ic.items() if ic > 0 and best >= 0.9 * ic]
    return "+".join(names) or "none"


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--budget", type=int, default=2000)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0])
    parser.add_argument("--train-steps", type=int, default=300)
    parser.add_argument("--max-tokens", type=int, default=12)
    parser.add_argument("--quick", action="store_true", help="tiny sizes: a smoke test")
    parser.add_argument("--only", choices=("synthetic", "real"), default=None)
    parser.add_argument("--methods", nargs="+", choices=METHODS, default=list(METHODS))
    parser.add_argument(
        "--target",
        type=float,
        default=None,
        help="dt conditioning target (default: --target-quantile of the data)",
    )
    parser.add_argument("--target-quantile", type=float, default=0.99)
    parser.add_argument(
        "--top-weight",
        type=float,
        default=20.0,
        help="dt: best trajectory drawn this many times as often as the worst",
    )
    args = parser.parse_args(argv)
    assets, dates = (30, 300) if args.quick else (100, 1000)
    if args.quick:
        args.budget, args.train_steps = min(args.budget, 100), 20
    if args.only in (None, "synthetic"):
        market = synthetic_market(
            n_assets=assets, n_dates=dates, n_macro=0, seed=5, frequency="B", planted=PLANTED
        )
        compare(
            "(1) synthetic daily market, planted signals",
            market.panel,
            int(0.7 * dates),
            ("panel",),
            args,
            planted=market.planted,
        )
    if args.only in (None, "real"):
        panel = bundled_market().panel
        split = int(np.searchsorted(panel.dates, np.datetime64("1995-01-01")))
        compare("(2) bundled real data, macro formulas", panel, split, ("macro",), args)


if __name__ == "__main__":
    main()
