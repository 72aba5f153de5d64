"""The six formulas of factor_eval_cli.py the way a Microsoft Qlib user computes them.

Qlib's expression engine (``D.features``, 2 kernels, no caches) computes every per-asset
part it can express; its operators have no cross-sectional rank, so ranks are pandas
``groupby(datetime).rank(pct=True)`` on the frame ``D.features`` returns, and windows over
ranked values are per-instrument pandas rolling windows. Each formula's IC is qlib's own
``calc_ic`` against ``Ref($returns, -1)``. Prints one JSON line per formula.

Runs in an environment of its own (pyqlib is not a project dependency); the data directory
is written by ``benchmarks/factor_eval_cli.py``:

    .venv-qlib/bin/python benchmarks/reference_qlib_eval.py QLIB_DATA_DIR
"""

import json
import sys

import qlib
from qlib.contrib.eva.alpha import calc_ic
from qlib.data import D

qlib.init(provider_uri=sys.argv[1], expression_cache=None, dataset_cache=None, kernels=2)
EXPRESSIONS = {
    "open": "$open",
    "volume": "$volume",
    "low": "$low",
    "close": "$close",
    "open_close": "$open / $close - 1",
    "delta_returns": "$returns - Ref($returns, 3)",
    "corr_open_volume": "Corr($open, $volume, 10)",
    "delta_log_volume": "Log($volume) - Ref(Log($volume), 2)",
    "body": "($close - $open) / $open",
    "label": "Ref($returns, -1)",
}
df = D.features(D.instruments("all"), list(EXPRESSIONS.values()))
df.columns = list(EXPRESSIONS)


def rank(name):
    return df[name].groupby(level="datetime").rank(pct=True)


def per_instrument(frame, fn):
    return frame.groupby(level="instrument", group_keys=False).apply(fn)


def ts_pair(x, y, w, how):
    both = x.rename("x").to_frame().join(y.rename("y"))

    def one(g):
        rolling = g["x"].rolling(w)
        return rolling.corr(g["y"]) if how == "corr" else rolling.cov(g["y"])

    return per_instrument(both, one)


formulas = {
    "-ts_corr(rank(open), rank(volume), 10)": lambda: (
        -ts_pair(rank("open"), rank("volume"), 10, "corr")
    ),
    "-ts_rank(rank(low), 10)": lambda: (
        -per_instrument(rank("low"), lambda s: s.rolling(10).rank(pct=True))
    ),
    "-ts_cov(rank(close), rank(volume), 5)": lambda: (
        -ts_pair(rank("close"), rank("volume"), 5, "cov")
    ),
    "rank(open / close - 1)": lambda: rank("open_close"),
    "-rank(delta(returns, 3)) * ts_corr(open, volume, 10)": lambda: (
        -rank("delta_returns") * df["corr_open_volume"]
    ),
    "-ts_corr(rank(delta(log(volume), 2)), rank((close - open) / open), 5)": lambda: (
        -ts_pair(rank("delta_log_volume"), rank("body"), 5, "corr")
    ),
}
for text, compute in formulas.items():
    ic, rank_ic = calc_ic(compute(), df["label"], date_col="datetime", dropna=True)
    print(json.dumps({"formula": text, "ic": float(ic.mean()), "rank_ic": float(rank_ic.mean())}))
