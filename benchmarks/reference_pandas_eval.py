"""The per-asset pandas script a user would write for the six formulas of factor_eval_cli.py.

Reads the long panel, computes each formula with per-asset ``groupby`` rolling windows and
cross-sectional ``groupby(date).rank(pct=True)``, and prints each formula's mean Pearson
and Spearman IC against the next period's return (one JSON line per formula). Run as its
own process by ``benchmarks/factor_eval_cli.py``; not part of the package.

    python benchmarks/reference_pandas_eval.py panel.parquet
"""

import json
import sys

import numpy as np
import pandas as pd

df = pd.read_parquet(sys.argv[1]).sort_values(["asset", "date"], kind="stable")
df = df.reset_index(drop=True)
by_asset = df.groupby("asset", sort=False)


def rank(x):
    return x.groupby(df["date"]).rank(pct=True)


def delta(x, d):
    return x - x.groupby(df["asset"]).shift(d)


def ts_rank(x, w):
    return x.groupby(df["asset"]).transform(lambda s: s.rolling(w).rank(pct=True))


def ts_pair(x, y, w, how):
    both = pd.DataFrame({"x": x, "y": y, "asset": df["asset"]})

    def one(g):
        rolling = g["x"].rolling(w)
        return rolling.corr(g["y"]) if how == "corr" else rolling.cov(g["y"])

    return both.groupby("asset", group_keys=False).apply(one, include_groups=False)


def ic(factor, forward):
    frame = pd.DataFrame({"f": factor, "r": forward, "date": df["date"]}).dropna()
    frame = frame.replace([np.inf, -np.inf], np.nan).dropna()
    by_date = frame.groupby("date")
    pearson = by_date.apply(lambda g: g["f"].corr(g["r"]), include_groups=False)
    spearman = by_date.apply(lambda g: g["f"].corr(g["r"], method="spearman"), include_groups=False)
    return float(pearson.mean()), float(spearman.mean())


forward = by_asset["returns"].shift(-1)
o, c, v, low, r = df["open"], df["close"], df["volume"], df["low"], df["returns"]
formulas = {
    "-ts_corr(rank(open), rank(volume), 10)": lambda: -ts_pair(rank(o), rank(v), 10, "corr"),
    "-ts_rank(rank(low), 10)": lambda: -ts_rank(rank(low), 10),
    "-ts_cov(rank(close), rank(volume), 5)": lambda: -ts_pair(rank(c), rank(v), 5, "cov"),
    "rank(open / close - 1)": lambda: rank(o / c - 1),
    "-rank(delta(returns, 3)) * ts_corr(open, volume, 10)": lambda: (
        -rank(delta(r, 3)) * ts_pair(o, v, 10, "corr")
    ),
    "-ts_corr(rank(delta(log(volume), 2)), rank((close - open) / open), 5)": lambda: (
        -ts_pair(rank(delta(np.log(v), 2)), rank((c - o) / o), 5, "corr")
    ),
}
for text, compute in formulas.items():
    mean_ic, mean_rank_ic = ic(compute(), forward)
    print(json.dumps({"formula": text, "ic": mean_ic, "rank_ic": mean_rank_ic}))
