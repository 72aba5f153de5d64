"""market.data events in core.market_events on the real Postgres: one row per event, only
what is new stored, contradictions refused (against event rows, the row path and other
events of the batch), and read back with the blocks as of any time."""

from __future__ import annotations

import uuid
from datetime import UTC, date, datetime, timedelta

import pandas as pd
import psycopg
import pytest

from alphafactory.events import MarketData
from storage.admin import prepare_database
from storage.errors import InvalidRecordError
from storage.market import latest_as_of, record_market_observations
from storage.market_events import record_events

T0 = datetime(2024, 3, 1, 21, 0, tzinfo=UTC)


@pytest.fixture
def conn(fresh_db):
    """A migrated database of its own: the tests count every row of the table."""
    settings = fresh_db()
    prepare_database(settings)
    with psycopg.connect(settings.dsn("app"), autocommit=True) as connection:
        yield connection


def event(asset: str, at: datetime = T0, **fields: float) -> MarketData:
    return MarketData(
        event_id=f"e-{uuid.uuid4().hex[:8]}",
        asset=asset,
        date=date(2024, 3, 1),
        fields=fields,
        available_at=at,
    )


def rows(conn) -> int:
    return conn.execute("SELECT count(*) FROM core.market_events").fetchone()[0]


def test_an_event_is_one_row_and_a_repeat_under_another_id_adds_only_what_is_new(conn):
    assert record_events(conn, events=[event("A", close=1.0, volume=10.0)]) == 2
    assert rows(conn) == 1
    assert record_events(conn, events=[event("A", close=1.0, volume=10.0)]) == 0
    # the same vintage with one more field: only that field is stored
    assert record_events(conn, events=[event("A", close=1.0, high=1.2)]) == 1
    assert rows(conn) == 2
    found = latest_as_of(conn, as_of=T0, assets=["A"])
    values = dict(zip(found.fields.tolist(), found.values.tolist(), strict=True))
    assert values == {"close": 1.0, "volume": 10.0, "high": 1.2}


def test_a_revision_is_kept_beside_the_first_vintage(conn):
    later = T0 + timedelta(days=2)
    record_events(conn, events=[event("A", close=1.0), event("A", at=later, close=1.1)])
    before = latest_as_of(conn, as_of=T0 + timedelta(days=1), assets=["A"])
    after = latest_as_of(conn, as_of=later, assets=["A"])
    assert before.values.tolist() == [1.0] and after.values.tolist() == [1.1]


def test_contradictions_are_refused_and_store_nothing(conn):
    record_events(conn, events=[event("A", close=1.0)])
    clash = r"'A', field 'close'.*stored with value 1.0"
    with pytest.raises(InvalidRecordError, match=clash), conn.transaction():
        record_events(conn, events=[event("B", close=5.0), event("A", close=2.0)])
    assert rows(conn) == 1  # B was not stored either: the batch is one transaction
    with pytest.raises(InvalidRecordError, match="two events of one batch give it 3.0 and 4.0"):
        record_events(conn, events=[event("C", close=3.0), event("C", close=4.0)])
    # a value stored by the row-per-observation path is held too
    frame = pd.DataFrame(
        {"asset": ["D"], "date": [date(2024, 3, 1)], "field": ["close"], "value": [7.0],
         "available_at": [T0]}
    )  # fmt: skip
    record_market_observations(conn, observations=frame)
    assert record_events(conn, events=[event("D", close=7.0)]) == 0
    with pytest.raises(InvalidRecordError, match=r"'D', field 'close'.*stored with value 7.0"):
        record_events(conn, events=[event("D", close=7.5)])
