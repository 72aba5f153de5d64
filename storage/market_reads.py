"""Market observations read back from every place the store keeps them: bulk blocks
(``core.market_blocks``, decoded straight into numpy by binary array loaders), event rows
(``core.market_events``, one per ``market.data`` event) and single rows
(``core.market_observations``), as one :class:`StoredObservations`, unresolved: each
vintage its own entry (``storage.market`` resolves them as of a time).
"""

from __future__ import annotations

import struct
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime

import numpy as np
import psycopg
from psycopg.adapt import Loader
from psycopg.pq import Format

from storage.errors import InvalidRecordError

PG_EPOCH_DAYS = 10_957  # 2000-01-01, Postgres's epoch, in days since 1970-01-01
PG_EPOCH_US = PG_EPOCH_DAYS * 86_400 * 1_000_000
FLOAT8, DATE, TIMESTAMPTZ = 701, 1082, 1184  # element type oids
_ARRAY_OIDS = {FLOAT8: 1022, DATE: 1182, TIMESTAMPTZ: 1185}


@dataclass(frozen=True)
class StoredObservations:
    """Observations read back, one entry per stored vintage of an (asset, field, date)."""

    assets: np.ndarray  # str
    fields: np.ndarray  # str
    days: np.ndarray  # int32, days since 1970-01-01
    values: np.ndarray  # float64
    available_us: np.ndarray  # int64, microseconds since 1970-01-01 UTC
    ingested_us: np.ndarray  # int64, when the store received it (ties of a key: first wins)

    def take(self, where: np.ndarray) -> StoredObservations:
        return StoredObservations(*(getattr(self, n)[where] for n in self.__dataclass_fields__))

    @classmethod
    def concat(cls, parts: Sequence[StoredObservations]) -> StoredObservations:
        names = ("assets", "fields", "days", "values", "available_us", "ingested_us")
        empty = (object, object, np.int32, np.float64, np.int64, np.int64)
        return cls(
            *(
                np.concatenate([getattr(p, n) for p in parts]) if parts else np.empty(0, kind)
                for n, kind in zip(names, empty, strict=True)
            )
        )


def read_observations(
    conn: psycopg.Connection,
    *,
    assets: Sequence[str] | None = None,
    fields: Sequence[str] | None = None,
    start: date | None = None,
    end: date | None = None,
    as_of: datetime | None = None,
) -> StoredObservations:
    """Every stored observation matching the filters (``None``: any), in blocks or in
    events (``core.market_events``) or single rows (``core.market_observations``), unresolved: each
    vintage is its own entry; ``as_of`` drops those available after it."""
    params = {
        "fields": None if fields is None else list(fields),
        "assets": None if assets is None else list(assets),
        "as_of": as_of,
        "start": start,
        "end": end,
    }
    found = StoredObservations.concat(
        [*read_blocks(conn, params), read_rows(conn, params), read_events(conn, params)]
    )
    keep = np.ones(len(found.days), bool)
    if as_of is not None:
        keep &= found.available_us <= _epoch_us(as_of)
    if start is not None:
        keep &= found.days >= _epoch_days(start)
    if end is not None:
        keep &= found.days <= _epoch_days(end)
    return found.take(keep)


_FILTERS = """
      (%(fields)s::text[] IS NULL OR field = ANY(%(fields)s::text[]))
  AND (%(assets)s::text[] IS NULL OR asset = ANY(%(assets)s::text[]))
"""


def read_blocks(conn: psycopg.Connection, params: dict) -> list[StoredObservations]:
    cur = conn.cursor(binary=True)
    for element, array in _ARRAY_OIDS.items():
        cur.adapters.register_loader(array, _array_loader(element))
    cur.execute(
        f"""
        SELECT asset, field, dates, observed_values, available_at,
               (extract(epoch FROM ingested_at) * 1000000)::int8
        FROM core.market_blocks
        WHERE {_FILTERS}
          AND (%(as_of)s::timestamptz IS NULL OR first_available_at <= %(as_of)s)
          AND (%(start)s::date IS NULL OR last_date >= %(start)s::date)
          AND (%(end)s::date IS NULL OR first_date <= %(end)s::date)
        ORDER BY block_id
        """,
        params,
    )
    return [_part(*row) for row in cur.fetchall()]


def read_rows(conn: psycopg.Connection, params: dict) -> StoredObservations:
    rows = conn.execute(
        f"""
        SELECT asset, field, date - DATE '1970-01-01', coalesce(value, 'NaN'),
               (extract(epoch FROM available_at) * 1000000)::int8,
               (extract(epoch FROM ingested_at) * 1000000)::int8
        FROM core.market_observations
        WHERE {_FILTERS}
          AND (%(as_of)s::timestamptz IS NULL OR available_at <= %(as_of)s)
          AND (%(start)s::date IS NULL OR date >= %(start)s::date)
          AND (%(end)s::date IS NULL OR date <= %(end)s::date)
        ORDER BY observation_id
        """,
        params,
    ).fetchall()
    return _columns(rows)


def _columns(rows: list[tuple]) -> StoredObservations:
    columns = list(zip(*rows, strict=True)) if rows else [()] * 6
    kinds = (object, object, np.int32, np.float64, np.int64, np.int64)
    return StoredObservations(*(np.array(c, kind) for c, kind in zip(columns, kinds, strict=True)))


def read_events(conn: psycopg.Connection, params: dict) -> StoredObservations:
    rows = conn.execute(
        f"""
        SELECT e.asset, f.field, e.date - DATE '1970-01-01', f.value,
               (extract(epoch FROM e.available_at) * 1000000)::int8,
               (extract(epoch FROM e.ingested_at) * 1000000)::int8
        FROM core.market_events AS e, unnest(e.fields, e.observed_values) AS f(field, value)
        WHERE {_FILTERS}
          AND (%(as_of)s::timestamptz IS NULL OR e.available_at <= %(as_of)s)
          AND (%(start)s::date IS NULL OR e.date >= %(start)s::date)
          AND (%(end)s::date IS NULL OR e.date <= %(end)s::date)
        ORDER BY e.event_row_id
        """,
        params,
    ).fetchall()
    return _columns(rows)


def _part(asset, field, days, values, available, ingested) -> StoredObservations:
    n = len(days)
    return StoredObservations(
        np.full(n, asset, object),
        np.full(n, field, object),
        days,
        values,
        available,
        np.full(n, ingested, np.int64),
    )


def _array_loader(element_oid: int) -> type[Loader]:
    """A binary loader of a NULL-free one-dimensional array into a numpy array (days since
    1970 for dates, microseconds since 1970 for timestamps)."""
    code = {FLOAT8: ">f8", DATE: ">i4", TIMESTAMPTZ: ">i8"}[element_oid]
    shift = {FLOAT8: 0, DATE: PG_EPOCH_DAYS, TIMESTAMPTZ: PG_EPOCH_US}[element_oid]
    native = {FLOAT8: np.float64, DATE: np.int32, TIMESTAMPTZ: np.int64}[element_oid]

    class ArrayLoader(Loader):
        format = Format.BINARY

        def load(self, data) -> np.ndarray:
            ndim, has_null = struct.unpack_from(">ii", data)
            if ndim == 0:
                return np.empty(0, native)
            if ndim != 1 or has_null:
                raise InvalidRecordError("a market block array is not one-dimensional or has NULL")
            (count,) = struct.unpack_from(">i", data, 12)
            kind = np.dtype([("length", ">i4"), ("value", code)])
            elements = np.frombuffer(data, kind, count=count, offset=20)
            values = elements["value"].astype(native)
            return values + native(shift) if shift else values

    return ArrayLoader


def _epoch_days(day: date) -> int:
    return int(np.datetime64(day, "D").astype(np.int64))


def _epoch_us(instant: datetime) -> int:
    return int(np.datetime64(instant.astimezone(UTC).replace(tzinfo=None), "us").astype(np.int64))
