"""Windowed reductions over time (axis 0) by binary decomposition of the window.

A window of ``w`` rows ending at row ``t`` is split into segments whose lengths are the
set bits of ``w`` (e.g. 20 = 4 + 16). Segment summaries of length 1, 2, 4, ... are built by
doubling (``level[j]`` summarises rows ``j .. j + size - 1``), and each window combines its
segments oldest first. The cost is ``O(log w)`` vectorised passes per row, and:

* the arithmetic producing row ``t`` is a fixed tree over rows ``t - w + 1 .. t`` only, so a
  value is bit-identical however much history precedes it or follows it (point-in-time and
  lookback truncation exact -- a running cumulative sum would drift with the start row);
* NaN propagates through sums, max and min, so "any missing value in the window gives NaN"
  (pandas ``min_periods = w``) costs nothing extra;
* pairwise summation keeps rounding error at ``O(log w)`` ulps.

Rows are processed in blocks that fit in cache (the extended block carries the ``w - 1``
rows of history each block needs). A summary ("state") is a tuple of arrays; ``combine``
merges an older and a newer summary given their lengths.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator

import numpy as np

State = tuple[np.ndarray, ...]
Combine = Callable[[State, State, int, int], State]
Leaf = Callable[..., State]
Finish = Callable[..., np.ndarray]

_BLOCK_ELEMENTS = 1 << 15  # 256 kB of float64 per array: a block's temporaries stay in L2
_MIN_WIDTH = 64  # columns; shorter inner loops cost more in numpy overhead than they save


def add(older: State, newer: State, _lo: int, _ln: int) -> State:
    return tuple(np.add(a, b) for a, b in zip(older, newer, strict=True))


def maximum(older: State, newer: State, _lo: int, _ln: int) -> State:
    return (np.maximum(older[0], newer[0]),)


def minimum(older: State, newer: State, _lo: int, _ln: int) -> State:
    return (np.minimum(older[0], newer[0]),)


def reduce_block(leaves: State, w: int, rows_out: int, combine: Combine) -> State:
    """Summaries of the ``rows_out`` windows of ``w`` rows in an extended block.

    ``leaves`` hold ``rows_out + w - 1`` rows; window ``i`` covers leaf rows ``i .. i+w-1``.
    """
    result: State | None = None
    level, size, offset = leaves, 1, 0
    while True:
        if w & size:
            part = tuple(a[offset : offset + rows_out] for a in level)
            result = part if result is None else combine(result, part, offset, size)
            offset += size
        if 2 * size > w:
            assert result is not None
            return result
        level = combine(tuple(a[:-size] for a in level), tuple(a[size:] for a in level), size, size)
        size *= 2


def rolling(
    inputs: tuple[np.ndarray, ...],
    w: int,
    leaf: Leaf,
    combine: Combine,
    finish: Finish,
    dtype: np.dtype,
) -> np.ndarray:
    """Apply a windowed reduction; rows before the first full window are NaN.

    ``leaf(*blocks)`` makes one-row summaries from extended input blocks, and
    ``finish(state, out, *blocks)`` writes the values of the window summaries into ``out``
    (``blocks[k][w - 1:]`` are the current rows; the state arrays are scratch it may
    overwrite). Inputs broadcast against each other ((T, 1) with (T, N)).
    """
    shape = np.broadcast_shapes(*(a.shape for a in inputs))
    out = np.empty(shape, dtype=dtype)
    out[: min(w - 1, shape[0])] = np.nan
    for rows, columns in blocks(shape, w):
        extended = slice(rows.start - w + 1, rows.stop)
        ext = tuple(_cut(a, extended, columns) for a in inputs)
        state = reduce_block(leaf(*ext), w, rows.stop - rows.start, combine)
        finish(state, out[rows, columns], *ext)
    return out


def _cut(a: np.ndarray, rows: slice, columns: slice) -> np.ndarray:
    # a (T, 1) macro series broadcast against a panel keeps its single column
    return a[rows, columns] if a.ndim == 2 and a.shape[1] > 1 else a[rows]


def blocks(shape: tuple[int, ...], w: int) -> Iterator[tuple[slice, slice]]:
    """Output (rows, columns) blocks covering rows ``w - 1 ..`` that fit in cache.

    Time-series work is independent per column, so 2-D panels are cut both ways: a block
    holds at least ``4 w`` rows (the ``w - 1`` rows of history it carries stay cheap) and
    as many columns as keep it near ``_BLOCK_ELEMENTS``. No value depends on the cut: each
    window's arithmetic is fixed relative to its own row.
    """
    rows = max(4 * w, 64)
    if len(shape) == 2:
        width = min(shape[1], max(_MIN_WIDTH, _BLOCK_ELEMENTS // rows))
    else:
        width = max(1, int(np.prod(shape[1:])))
    rows = max(rows, _BLOCK_ELEMENTS // width)  # narrow inputs (a macro series): few blocks
    columns = (
        [slice(c, c + width) for c in range(0, shape[1], width)]
        if len(shape) == 2
        else [slice(None)]
    )
    for start in range(w - 1, shape[0], rows):
        for column in columns:
            yield slice(start, min(start + rows, shape[0])), column


def any_nan(block: np.ndarray, w: int) -> np.ndarray:
    """For an extended block: does each window of ``w`` rows hold a missing value."""
    rows_out = block.shape[0] - w + 1
    return reduce_block((np.isnan(block),), w, rows_out, _logical_or)[0]


def _logical_or(older: State, newer: State, _lo: int, _ln: int) -> State:
    return (np.logical_or(older[0], newer[0]),)


def shift(x: np.ndarray, d: int) -> np.ndarray:
    """``x`` moved ``d`` rows later (row t holds row t - d), NaN where there is no row."""
    out = np.empty_like(x)
    out[:d] = np.nan
    if d < x.shape[0]:
        out[d:] = x[: x.shape[0] - d]
    return out
