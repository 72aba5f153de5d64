"""``market.data`` events in the point-in-time store: one row per event in
``core.market_events`` (asset, date, available_at, and the event's fields and values as
parallel arrays), read back beside the bulk blocks by ``storage.market_reads``.

A field already held at the same (asset, date, available_at) with the same value is not
stored again, so an event replayed under another id, or one that repeats part of an
earlier one, adds only what is new; the same key with another value is refused: a
revision needs a later ``available_at``.
"""

from __future__ import annotations

import json
from collections.abc import Sequence

import psycopg

from storage.errors import InvalidRecordError

_INCOMING = """
incoming AS (
    SELECT * FROM jsonb_to_recordset(%(rows)s::jsonb) AS n(
        asset text, date date, available_at timestamptz, fields text[], observed_values float8[])
),
new AS (
    SELECT i.asset, i.date, i.available_at, f.field, f.value
    FROM incoming AS i, unnest(i.fields, i.observed_values) AS f(field, value)
)
"""

# what the store holds at the incoming keys: event rows, and the single rows of the
# row-per-observation path (core.market_observations, events before migration 0007)
_HELD = f"""
WITH {_INCOMING}
SELECT n.asset, n.date, n.available_at, n.field, n.value, f.value
FROM new AS n
JOIN core.market_events AS e USING (date, asset, available_at),
     unnest(e.fields, e.observed_values) AS f(field, value)
WHERE f.field = n.field
UNION ALL
SELECT n.asset, n.date, n.available_at, n.field, n.value, o.value
FROM new AS n
JOIN core.market_observations AS o USING (field, asset, date, available_at)
"""

_INSERT = f"""
WITH {_INCOMING}
INSERT INTO core.market_events (asset, date, available_at, fields, observed_values)
SELECT asset, date, available_at, fields, observed_values FROM incoming
"""


def record_events(conn: psycopg.Connection, *, events: Sequence) -> int:
    """Store market-data events (objects with ``asset``, ``date``, ``fields`` and
    ``available_at``) in the caller's transaction; returns how many observations (event
    fields) were new."""
    rows = _grouped(_unique_fields(events))
    if not rows:
        return 0
    # one JSON document, not array parameters: psycopg binds arrays value by value in
    # Python, which costs more than the insert itself
    document = _document(rows)
    held = conn.execute(_HELD, {"rows": document}).fetchall()
    known = set()
    for asset, day, at, field, new, old in held:
        if new != old:
            raise InvalidRecordError(
                f"asset {asset!r}, field {field!r}, date {day}, available_at {at.isoformat()} "
                f"is stored with value {old}, not {new}; a revision needs a later available_at"
            )
        known.add((asset, day, at, field))
    if known:  # only what is not held yet
        rows = _grouped(
            [
                (asset, day, at, field, value)
                for asset, day, at, fields, values in rows
                for field, value in zip(fields, values, strict=True)
                if (asset, day, at, field) not in known
            ]
        )
        document = _document(rows) if rows else None
    if document is not None:
        conn.execute(_INSERT, {"rows": document})
    return sum(len(fields) for _, _, _, fields, _ in rows)


def _unique_fields(events: Sequence) -> list[tuple]:
    """(asset, date, available_at, field, value) of every event field, each key once; two
    events of a batch giving one key two values are refused."""
    entries = [
        (e.asset, e.date, e.available_at, field, float(value))
        for e in events
        for field, value in e.fields.items()
    ]
    if len({(e.asset, e.date, e.available_at) for e in events}) == len(events):
        return entries  # one event per key (the usual batch): fields are unique already
    seen: dict[tuple, float] = {}
    for *key, value in entries:
        key = tuple(key)
        if seen.setdefault(key, value) != value:
            asset, day, at, field = key
            raise InvalidRecordError(
                f"asset {asset!r}, field {field!r}, date {day}, available_at "
                f"{at.isoformat()}: two events of one batch give it {seen[key]} and {value}"
            )
    return [(*key, value) for key, value in seen.items()]


def _grouped(entries: list[tuple]) -> list[tuple]:
    """One row per (asset, date, available_at) of ``entries``, fields and values as lists."""
    rows: dict[tuple, tuple[list, list]] = {}
    for asset, day, at, field, value in entries:
        fields, values = rows.setdefault((asset, day, at), ([], []))
        fields.append(field)
        values.append(value)
    return [(*key, fields, values) for key, (fields, values) in rows.items()]


def _document(rows: list[tuple]) -> str:
    return json.dumps(
        [
            {
                "asset": asset,
                "date": day.isoformat(),
                "available_at": at.isoformat(),
                "fields": fields,
                "observed_values": values,
            }
            for asset, day, at, fields, values in rows
        ]
    )
