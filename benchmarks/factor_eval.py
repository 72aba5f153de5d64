"""Factor-core benchmarks (issue 3, section 6).

(A) equity panel: our ``evaluate_batch`` vs a qlib-style pandas reference (a recursive
interpreter over the parsed tree, rolling windows per asset column, ``DataFrame.rank`` for
cross-sections) on Alpha101-style formulas, results checked equal; random formulas timed on
ours only; a memory-bandwidth floor (``np.copyto`` of a (T, N) array).
(B) macro panel: random macro formulas, evaluation + mapping to assets + metrics.

    .venv/bin/python benchmarks/factor_eval.py [--quick] [--assets N --dates T ...]
"""

from __future__ import annotations

import argparse
import resource
import statistics
import time

import numpy as np
import pandas as pd

from alphafactory.allocator import keep_freed_memory
from alphafactory.data.synthetic import synthetic_market
from alphafactory.evaluate import Evaluator, evaluate_batch, macro_scores
from alphafactory.formula import Kind, LanguageConfig, Vocabulary, parse, random_formula
from alphafactory.formula import operators as op
from alphafactory.formula.nodes import Constant, Operand
from alphafactory.metrics import FactorScorer

TINY = 1e-12
# Alpha101-style, in our language (vwap and adv replaced by fields we have). An outer rank
# of a value with exact ties in one implementation only (a rolling covariance of ranks: ulp
# noise of pandas' online algorithm) is dropped. Sums of ranks tie as in pandas, bit for
# bit (tests/metrics/test_metrics_ties.py); the set is kept as it was, for comparison.
ALPHA101 = (
    "-ts_corr(rank(delta(log(volume), 2)), rank((close - open) / open), 5)",  # 2
    "-ts_corr(rank(open), rank(volume), 10)",  # 3
    "-ts_rank(rank(low), 10)",  # 4
    "-ts_corr(open, volume, 10)",  # 6
    "-rank(ts_sum(open, 5) * ts_sum(returns, 5) - delay(ts_sum(open, 5) * ts_sum(returns, 5), 10))",
    "sign(delta(volume, 1)) * -delta(close, 1)",  # 12
    "-ts_cov(rank(close), rank(volume), 5)",  # 13 (outer rank dropped: ties)
    "-rank(delta(returns, 3)) * ts_corr(open, volume, 10)",  # 14
    "rank(open / close - 1)",  # 33
    "2 - rank(ts_std(returns, 2) / ts_std(returns, 5)) - rank(delta(close, 1))",  # 34 (same)
    "-delta(((close - low) - (high - close)) / (close - low), 10)",  # 53
    "(close - open) / (high - low + 0.001)",  # 101
    "zscore(-ts_zscore(close, 20)) * rank(ts_max(high, 20) - ts_min(low, 20))",
)


def _safe_div(x, y):
    y = y.where(y.abs() >= TINY) if isinstance(y, pd.DataFrame | pd.Series) else y
    return x / y


def _per_asset(frame: pd.DataFrame, fn) -> pd.DataFrame:
    """qlib style: one pandas Series pipeline per asset (instrument)."""
    columns = [fn(frame[c]).to_numpy() for c in frame.columns]
    return pd.DataFrame(np.column_stack(columns), index=frame.index, columns=frame.columns)


def _rolling(name: str, x: pd.DataFrame, w: int) -> pd.DataFrame:
    def one(s: pd.Series) -> pd.Series:
        r = s.rolling(w, min_periods=w)
        if name == "ts_zscore":
            std = r.std()
            return (s - r.mean()) / std.where(std >= TINY)
        if name == "ts_rank":
            return r.rank(pct=True)
        method = {"ts_mean": "mean", "ts_sum": "sum", "ts_std": "std", "ts_min": "min"}
        return getattr(r, method.get(name, "max"))()

    return _per_asset(x, one)


def _pair(name: str, x: pd.DataFrame, y: pd.DataFrame, w: int) -> pd.DataFrame:
    def one(c):
        rx, ry = x[c].rolling(w, min_periods=w), y[c].rolling(w, min_periods=w)
        if name == "ts_cov":
            return rx.cov(y[c])
        return rx.corr(y[c]).where((rx.std() > 0) & (ry.std() > 0))

    columns = [one(c).to_numpy() for c in x.columns]
    return pd.DataFrame(np.column_stack(columns), index=x.index, columns=x.columns)


UNARY = {
    op.Neg: lambda x: -x,
    op.Abs: lambda x: x.abs(),
    op.Sign: np.sign,
    op.Log: lambda x: np.log(x.where(x > 0)),
    op.Sqrt: lambda x: np.sqrt(x.where(x >= 0)),
    op.Slog: lambda x: np.sign(x) * np.log1p(x.abs()),
    op.Square: lambda x: x * x,
    op.Inv: lambda x: _safe_div(1.0, x),
}
BINARY = {
    op.Add: lambda x, y: x + y,
    op.Sub: lambda x, y: x - y,
    op.Mul: lambda x, y: x * y,
    op.Div: _safe_div,
}
CROSS = {
    op.Rank: lambda x: x.rank(axis=1, pct=True),
    op.Demean: lambda x: x.sub(x.mean(axis=1), axis=0),
    op.Zscore: lambda x: x.sub(x.mean(axis=1), axis=0).div(
        x.std(axis=1).where(lambda s: s.abs() >= TINY), axis=0
    ),
}
LAG = {
    op.Delay: lambda s, d: s.shift(d),
    op.Delta: lambda s, d: s - s.shift(d),
    op.PctChange: lambda s, d: _safe_div(s, s.shift(d)) - 1,
}


def pandas_eval(node, frames: dict[str, pd.DataFrame]):
    """Recursive qlib-style interpreter; panel formulas over the ops the Alpha set uses."""
    if isinstance(node, Operand):
        return frames[node.name]
    if isinstance(node, Constant):
        return node.value
    kind = type(node)
    args = [pandas_eval(a, frames) if hasattr(a, "arguments") else a for a in node.arguments]
    if kind in UNARY:
        return UNARY[kind](args[0])
    if kind in BINARY:
        return BINARY[kind](*args)
    if kind in LAG:
        return _per_asset(args[0], lambda s: LAG[kind](s, args[1]))
    if kind in CROSS:
        return CROSS[kind](args[0])
    if kind in (op.TsCorr, op.TsCov):
        return _pair(kind.name, *args)
    return _rolling(kind.name, args[0], args[1])


def _finish(frame: pd.DataFrame) -> np.ndarray:
    values = frame.to_numpy(dtype=np.float64, copy=True)
    values[np.isinf(values)] = np.nan
    return values


def _median_times(fn, items, repeats: int) -> list[float]:
    """Per-item median seconds over ``repeats`` timed runs (after one warm-up run)."""
    times = [[] for _ in items]
    for run in range(repeats + 1):
        for i, item in enumerate(items):
            start = time.perf_counter()
            fn(item)
            if run:
                times[i].append(time.perf_counter() - start)
    return [statistics.median(t) for t in times]


def copy_floor(shape, repeats: int) -> float:
    """Milliseconds per (T, N) float64 copy, warm memory."""
    src, dst = np.random.default_rng(0).standard_normal(shape), np.empty(shape)
    np.copyto(dst, src)
    times = []
    for _ in range(max(repeats, 5)):
        start = time.perf_counter()
        np.copyto(dst, src)
        times.append(time.perf_counter() - start)
    return 1e3 * statistics.median(times)


def bench_equity(args) -> None:
    market = synthetic_market(n_assets=args.assets, n_dates=args.dates, seed=1)
    panel, config = market.panel, LanguageConfig.daily()
    kinds = panel.operand_kinds
    alphas = [parse(text, kinds, config) for text in ALPHA101]
    fields = {k: v for k, v in kinds.items() if k in panel.fields}
    vocab, rng = Vocabulary(fields, config), np.random.default_rng(7)
    randoms = [
        random_formula(vocab, rng, max_tokens=16, root_kinds={Kind.PANEL})
        for _ in range(args.formulas)
    ]
    frames = {name: pd.DataFrame(values) for name, values in panel.fields.items()}
    evaluator = Evaluator(panel, config=config)
    print(
        f"(A) equity panel {args.dates} x {args.assets}, {len(alphas)} Alpha101-style, "
        f"{len(randoms)} random formulas, repeats={args.repeats}"
    )
    strict = 0  # elements outside rtol 1e-7 alone (cancellation near zero, e.g. corr ~ 1e-8)
    for node in alphas:  # equality check on the subset; atol scaled to the values' magnitude
        ours, ref = evaluator.evaluate(node), _finish(pandas_eval(node, frames))
        atol = 1e-7 * float(np.nanmax(np.abs(ref)))
        np.testing.assert_allclose(
            ours, ref, rtol=1e-7, atol=atol, equal_nan=True, err_msg=str(node)
        )
        strict += int((~np.isclose(ours, ref, rtol=1e-7, atol=0, equal_nan=True)).sum())
    print(
        f"  results equal to the pandas reference on all {len(alphas)} (rtol 1e-7, atol 1e-7 "
        f"x max|value|, NaN = NaN); {strict} elements off by rtol 1e-7 alone"
    )
    ours = _median_times(evaluator.evaluate, alphas, args.repeats)
    ref = _median_times(lambda n: pandas_eval(n, frames), alphas, args.repeats)
    for node, a, b in zip(alphas, ours, ref, strict=True):
        print(f"  {1e3 * a:8.1f} ms ours {1e3 * b:9.1f} ms pandas {b / a:6.1f}x  {node}")
    print(
        f"  per-formula median: ours {1e3 * statistics.median(ours):.1f} ms, pandas "
        f"{1e3 * statistics.median(ref):.1f} ms, ratio of medians "
        f"{statistics.median(ref) / statistics.median(ours):.1f}x; ratio of totals "
        f"{sum(ref) / sum(ours):.1f}x; median of ratios "
        f"{statistics.median(b / a for a, b in zip(ours, ref, strict=True)):.1f}x"
    )
    _bench_batches(panel, config, alphas, randoms, args.repeats)
    floor = copy_floor((args.dates, args.assets), args.repeats)
    print(
        f"  memory-bandwidth floor: np.copyto of one ({args.dates}, {args.assets}) float64 "
        f"array {floor:.1f} ms per pass"
    )


def _bench_batches(panel, config, alphas, randoms, repeats: int) -> None:
    for label, formulas in (("Alpha101 set", alphas), ("random set", randoms)):

        def run(batch, formulas=formulas):
            for _ in evaluate_batch(batch, panel, config=config):
                pass

        seconds = _median_times(run, [formulas], repeats)[0]
        print(
            f"  evaluate_batch {label}: {seconds:.2f} s for {len(formulas)}, "
            f"{1e3 * seconds / len(formulas):.1f} ms/formula"
        )


def bench_macro(args) -> None:
    market = synthetic_market(
        n_assets=args.macro_assets, n_dates=args.months, n_macro=args.series, seed=2, frequency="M"
    )
    panel, config = market.panel, LanguageConfig.monthly()
    vocab = Vocabulary(dict.fromkeys(panel.macro, "macro"), config)
    rng = np.random.default_rng(11)
    formulas = [
        random_formula(vocab, rng, max_tokens=16, root_kinds={Kind.MACRO})
        for _ in range(args.macro_formulas)
    ]
    scorer = FactorScorer.for_panel(panel, periods_per_year=12)

    stages: dict[str, float] = {}

    def pipeline(_):
        start = time.perf_counter()
        factors = np.column_stack(list(evaluate_batch(formulas, panel, config=config)))
        mapped = time.perf_counter()
        scores = macro_scores(factors, panel.returns)  # (T, K, N)
        scored = time.perf_counter()
        metrics = scorer.score_batch(np.ascontiguousarray(scores.transpose(1, 0, 2)))
        stages.update(evaluation=mapped - start, mapping=scored - mapped)
        stages["metrics"] = time.perf_counter() - scored
        return metrics

    print(
        f"(B) macro panel {args.series} series x {args.months} months, "
        f"{args.macro_assets} assets, {len(formulas)} random macro formulas"
    )
    seconds = _median_times(pipeline, [0], args.repeats)[0]
    metrics = pipeline(0)
    print(
        f"  evaluation + mapping (window 36) + metrics: {seconds:.3f} s, "
        f"{len(formulas) / seconds:,.0f} formulas/s ({len(metrics)} scored)"
    )
    print("  last run by stage: " + ", ".join(f"{k} {v:.3f} s" for k, v in stages.items()))


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--assets", type=int, default=3000)
    parser.add_argument("--dates", type=int, default=2520)
    parser.add_argument("--formulas", type=int, default=200, help="random formulas in (A)")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--series", type=int, default=500)
    parser.add_argument("--months", type=int, default=360)
    parser.add_argument("--macro-assets", type=int, default=20)
    parser.add_argument("--macro-formulas", type=int, default=1000)
    parser.add_argument("--only", choices=("A", "B"), help="run one part only")
    parser.add_argument("--quick", action="store_true", help="small smoke-test sizes")
    parser.add_argument(
        "--default-allocator",
        action="store_true",
        help="leave glibc's mmap/trim thresholds alone (see alphafactory.allocator)",
    )
    args = parser.parse_args(argv)
    if not args.default_allocator:
        keep_freed_memory()  # as the CLI does; applies to the pandas reference too
    if args.quick:
        args.assets, args.dates, args.formulas, args.repeats = 50, 300, 20, 1
        args.series, args.macro_formulas = 40, 100
    if args.only != "B":
        bench_equity(args)
    if args.only != "A":
        bench_macro(args)
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"peak RSS {peak:,.0f} MiB")


if __name__ == "__main__":
    main()
