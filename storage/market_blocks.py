"""Bulk market data as columnar blocks (``core.market_blocks``), written with binary COPY.

A block is one (asset, field)'s observations of one load: parallel arrays of dates, values
and availability times, sorted by (date, available_at). The COPY stream is built with
numpy record arrays, so no Python code runs per observation; reads decode the arrays
straight into numpy with binary loaders. Storing a load skips what the store already holds
(same asset, date, field and available_at, same value) and refuses a different value for
one of those keys, so loading a file twice stores nothing the second time. Loads are
serialised by an advisory lock, which makes that check exact.
"""

from __future__ import annotations

import hashlib
import struct
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import date

import numpy as np
import pandas as pd
import psycopg

from alphafactory.observations import MarketObservations
from storage.errors import InvalidRecordError
from storage.market_reads import (
    DATE,
    FLOAT8,
    PG_EPOCH_DAYS,
    PG_EPOCH_US,
    TIMESTAMPTZ,
    StoredObservations,
    read_blocks,
    read_events,
    read_rows,
)

_LOAD_LOCK = 7_301_805  # advisory lock key of bulk loads
_COPY_CHUNK = 1 << 24

_COPY = (
    "COPY core.market_blocks (asset, field, dates, observed_values, available_at, "
    "first_date, last_date, first_available_at, n_values, content_sha256) "
    "FROM STDIN (FORMAT BINARY)"
)


def store_blocks(conn: psycopg.Connection, observations: MarketObservations) -> int:
    """Store ``observations`` as blocks; returns how many observations were new.

    Runs in the caller's transaction (all of it or nothing). Raises
    :class:`InvalidRecordError` when a key already holds a different value."""
    conn.execute("SELECT pg_advisory_xact_lock(%s)", (_LOAD_LOCK,))
    if len(observations) == 0 or not observations.fields:
        return 0
    entries = _Entries.of(observations)
    names = observations.asset_names.astype(str)
    blocks = [
        block
        for field, values in observations.fields.items()
        for block in entries.blocks(names, field, np.asarray(values, np.float64))
    ]
    blocks = _not_loaded_before(conn, blocks)
    if not blocks:
        return 0
    held = _held(
        conn,
        assets=sorted({b.asset for b in blocks}),
        fields=sorted({b.field for b in blocks}),
        start=_day(min(int(b.days[0]) for b in blocks)),
        end=_day(max(int(b.days[-1]) for b in blocks)),
    )
    rows = [row for row in (_without_held(b, held.get((b.asset, b.field))) for b in blocks) if row]
    if rows:
        _copy(conn, rows)
    return sum(len(row.days) for row in rows)


@dataclass(frozen=True)
class _Block:
    """One (asset, field)'s observations of a load, sorted by (date, available_at)."""

    asset: str
    field: str
    days: np.ndarray  # days since 1970
    values: np.ndarray
    available_us: np.ndarray  # microseconds since 1970, UTC
    sha256: bytes  # of the block as the load presented it

    def only(self, keep: np.ndarray) -> _Block:
        return _Block(
            self.asset,
            self.field,
            self.days[keep],
            self.values[keep],
            self.available_us[keep],
            self.sha256,
        )


def _not_loaded_before(conn: psycopg.Connection, blocks: list[_Block]) -> list[_Block]:
    """The blocks whose exact content no earlier load presented."""
    if not blocks:
        return blocks
    held = conn.execute(
        """
        SELECT asset, field, content_sha256 FROM core.market_blocks
        WHERE asset = ANY(%s) AND field = ANY(%s)
        """,
        (sorted({b.asset for b in blocks}), sorted({b.field for b in blocks})),
    ).fetchall()
    seen = {(asset, field, bytes(digest)) for asset, field, digest in held}
    return [b for b in blocks if (b.asset, b.field, b.sha256) not in seen]


@dataclass(frozen=True)
class _Entries:
    """A load's entries sorted by (asset, date, available_at), as integer columns."""

    order: np.ndarray
    asset_index: np.ndarray
    days: np.ndarray  # days since 1970
    available_us: np.ndarray  # microseconds since 1970, UTC
    bounds: np.ndarray  # where each asset's run starts, and the end

    @classmethod
    def of(cls, observations: MarketObservations) -> _Entries:
        index = np.asarray(observations.asset_index, np.int64)
        days = observations.dates.astype("datetime64[D]").astype(np.int64)
        available = observations.available_at.astype("datetime64[us]").astype(np.int64)
        order = np.lexsort((available, days, index))
        index, days, available = index[order], days[order], available[order]
        same = (index[1:] == index[:-1]) & (days[1:] == days[:-1])
        same &= available[1:] == available[:-1]
        if same.any():
            at = int(np.flatnonzero(same)[0])
            name = observations.asset_names[index[at]]
            raise InvalidRecordError(
                f"market observations hold asset {name!r}, date {_day(int(days[at]))} twice "
                f"with the same available_at"
            )
        bounds = np.flatnonzero(np.r_[True, index[1:] != index[:-1], True])
        return cls(order, index, days, available, bounds)

    def blocks(self, names: np.ndarray, field: str, values: np.ndarray) -> Iterator[_Block]:
        """One block per asset of ``field``'s values."""
        values = values[self.order]
        if np.isinf(values).any():
            bad = values[np.isinf(values)][:3].tolist()
            raise InvalidRecordError(f"field {field!r} must be finite or NaN, got {bad}")
        for lo, hi in zip(self.bounds[:-1], self.bounds[1:], strict=True):
            days, run, available = self.days[lo:hi], values[lo:hi], self.available_us[lo:hi]
            digest = hashlib.sha256(days.tobytes() + run.tobytes() + available.tobytes())
            asset = str(names[self.asset_index[lo]])
            yield _Block(asset, field, days, run, available, digest.digest())


def _held(conn: psycopg.Connection, **filters) -> dict[tuple[str, str], StoredObservations]:
    """What the store holds of these assets and fields between the dates, by (asset,
    field)."""
    params = {"as_of": None, **filters}
    by_key: dict[tuple[str, str], list[StoredObservations]] = {}
    for part in read_blocks(conn, params):
        by_key.setdefault((part.assets[0], part.fields[0]), []).append(part)
    rows = StoredObservations.concat([read_rows(conn, params), read_events(conn, params)])
    if len(rows.days):
        keys = pd.MultiIndex.from_arrays([rows.assets, rows.fields])
        for key, where in pd.Series(np.arange(len(rows.days)), index=keys).groupby(level=[0, 1]):
            by_key.setdefault(key, []).append(rows.take(where.to_numpy()))
    return {key: StoredObservations.concat(parts) for key, parts in by_key.items()}


def _without_held(block: _Block, held: StoredObservations | None) -> _Block | None:
    """``block`` less the observations the store holds; a held key with another value is
    refused."""
    if held is None or len(held.days) == 0:
        return block
    held_days, held_at = held.days.astype(np.int64), held.available_us
    held_values = held.values
    n = len(block.days)
    days = np.concatenate([block.days, held_days])
    available = np.concatenate([block.available_us, held_at])
    is_new = np.r_[np.ones(n, bool), np.zeros(len(held_days), bool)]
    both = np.concatenate([block.values, held_values])
    order = np.lexsort((is_new, available, days))  # within a key, what is held comes first
    same = (days[order][1:] == days[order][:-1]) & (available[order][1:] == available[order][:-1])
    repeat = np.flatnonzero(same & is_new[order][1:]) + 1  # new entries with a held key
    later, first = order[repeat], order[repeat - 1]
    a, b = both[later], both[first]
    differs = ~((a == b) | (np.isnan(a) & np.isnan(b)))
    if differs.any():
        i, j = int(later[differs][0]), int(first[differs][0])
        raise InvalidRecordError(
            f"asset {block.asset!r}, field {block.field!r}, date {_day(int(days[i]))}, "
            f"available_at {np.datetime64(int(available[i]), 'us')}Z is stored with value "
            f"{both[j]}, not {both[i]}; a revision needs a later available_at"
        )
    keep = np.ones(n, bool)
    keep[later] = False
    return block.only(keep) if keep.any() else None


def _copy(conn: psycopg.Connection, rows: list[_Block]) -> None:
    """COPY the blocks, streamed in pieces of about ``_COPY_CHUNK`` bytes."""
    with conn.cursor().copy(_COPY) as copy:
        pending, size = [b"PGCOPY\n\xff\r\n\x00", b"\x00" * 8], 19
        for row in rows:
            encoded = _copy_row(row)
            pending.append(encoded)
            size += len(encoded)
            if size >= _COPY_CHUNK:
                copy.write(b"".join(pending))
                pending, size = [], 0
        pending.append(b"\xff\xff")
        copy.write(b"".join(pending))


def _copy_row(block: _Block) -> bytes:
    """One block in COPY's binary row format: ten fields, each length-prefixed."""
    pg_days = block.days - PG_EPOCH_DAYS
    pg_us = block.available_us - PG_EPOCH_US
    return b"".join(
        [
            struct.pack(">h", 10),
            _text(block.asset),
            _text(block.field),
            _array(DATE, ">i4", pg_days),
            _array(FLOAT8, ">f8", block.values),
            _array(TIMESTAMPTZ, ">i8", pg_us),
            struct.pack(">ii", 4, int(pg_days.min())),
            struct.pack(">ii", 4, int(pg_days.max())),
            struct.pack(">iq", 8, int(pg_us.min())),
            struct.pack(">ii", 4, len(block.days)),
            struct.pack(">i", 32) + block.sha256,
        ]
    )


def _text(value: str) -> bytes:
    encoded = value.encode()
    return struct.pack(">i", len(encoded)) + encoded


def _array(element_oid: int, code: str, values: np.ndarray) -> bytes:
    """A one-dimensional array without NULLs in Postgres's binary array format."""
    elements = np.empty(len(values), [("length", ">i4"), ("value", code)])
    elements["length"] = np.dtype(code).itemsize
    elements["value"] = values
    body = struct.pack(">iiiii", 1, 0, element_oid, len(values), 1) + elements.tobytes()
    return struct.pack(">i", len(body)) + body


def _day(days_since_epoch: int) -> date:
    return np.datetime64(days_since_epoch, "D").astype(object)
