"""The radix ordering behind ranks: exactly a stable argsort, whatever the values, and the
cross-sectional ``rank`` bit for bit pandas' on the rows that are hard for it."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pandas as pd
import pytest
from scipy.stats import rankdata

from alphafactory.evaluate import cross_section as cs
from alphafactory.ordering import SHORT, order_and_ranks, workspace

RNG = np.random.default_rng(5)
N = 300


def rows() -> dict[str, np.ndarray]:
    """Rows without NaN that stress each part: float32 collisions, ties, signs, range."""
    normal = RNG.standard_normal(N)
    return {
        "normal": normal,
        "ties": np.round(normal, 1),
        "discrete": RNG.integers(-2, 3, N).astype(float),
        "constant": np.full(N, 7.0),
        # distinct doubles that share one float32: one long run the full value must order
        "one float32": 1.0 + RNG.permutation(N) * 1e-13,
        "few float32s": np.repeat([1.0, 2.0, 3.0], N // 3) + RNG.random(N) * 1e-12,
        "signed zeros": RNG.choice([0.0, -0.0, 1e-320, -1e-320, -1.0], N),
        "infinities": RNG.choice([np.inf, -np.inf, 1.0, -3.5, 1e300, -1e300], N),
        "huge range": np.exp(RNG.uniform(-700, 700, N)) * RNG.choice([-1, 1], N),
        "powers of two": 2.0 ** RNG.integers(-20, 20, N),  # keys differ in one digit only
        "sorted": np.arange(N, dtype=float),
        "reversed": np.arange(N, 0, -1, dtype=float),
    }


@pytest.mark.parametrize("size", [0, 1, 2, SHORT, SHORT + 1, N])
@pytest.mark.parametrize("name", list(rows()))
def test_order_is_a_stable_argsort_and_ranks_average_ties(name, size):
    values = rows()[name][:size].copy()
    order, ranks = np.empty(size, np.int64), np.empty(size)
    order_and_ranks(values, size, order, ranks, workspace(max(size, 1)))
    np.testing.assert_array_equal(order, np.argsort(values, kind="stable"))
    np.testing.assert_array_equal(ranks, rankdata(values, method="average"))


@pytest.mark.parametrize("name", list(rows()))
def test_rank_is_pandas_bit_for_bit(name):
    x = np.vstack([RNG.permutation(rows()[name]) for _ in range(6)])
    x[RNG.random(x.shape) < 0.1] = np.nan
    expected = pd.DataFrame(x).rank(axis=1, pct=True).to_numpy()
    got = cs.rank(x)
    valid = ~np.isnan(expected)
    np.testing.assert_array_equal(np.isnan(got), ~valid)
    np.testing.assert_array_equal(got[valid].view(np.uint64), expected[valid].view(np.uint64))


def test_sums_of_ranks_tie_where_pandas_ties():
    x = RNG.integers(0, 5, (200, 97)).astype(float)
    y = np.round(RNG.standard_normal(x.shape), 1)
    x[RNG.random(x.shape) < 0.05] = np.nan
    ours = cs.rank(cs.rank(x) + cs.rank(y))
    theirs = pd.DataFrame(x).rank(axis=1, pct=True) + pd.DataFrame(y).rank(axis=1, pct=True)
    theirs = theirs.rank(axis=1, pct=True).to_numpy()
    np.testing.assert_array_equal(ours, theirs)


def test_importing_the_evaluator_starts_no_thread():
    code = (
        "import os, numpy, threading\n"
        "before = len(os.listdir('/proc/self/task'))\n"
        "import alphafactory.evaluate, alphafactory.scoring\n"
        "print(len(os.listdir('/proc/self/task')) - before, threading.active_count())\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert done.stdout.split() == ["0", "1"]
