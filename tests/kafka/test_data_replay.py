"""`alphafactory data replay`: stored (or file) market data and releases published on one
clock in time order, on the session's real Postgres and broker."""

from __future__ import annotations

import json
import uuid
from datetime import UTC, date, datetime

import numpy as np
import pandas as pd
import psycopg
import pytest

from alphafactory.data.market_files import read_market_file
from alphafactory.events import MacroRelease, MarketData
from producers.history import market_events, observation_events
from producers.replay import replay
from storage.loading import load_observations, load_releases


@pytest.fixture
def names():
    tag = uuid.uuid4().hex[:6].upper()
    return f"AS{tag}", f"BS{tag}", f"S_{tag}"


def _panel_file(tmp_path, a: str, b: str):
    path = tmp_path / "panel.csv"
    rows = [
        "date,asset,close,volume,group:sector,available_at",
        f"2001-01-31,{a},10.0,100,1,2001-01-31T21:00:00+00:00",
        f"2001-01-31,{b},20.0,200,2,2001-01-31T21:00:00+00:00",
        f"2001-01-31,{a},10.5,,1,2001-02-02T14:00:00+00:00",  # a revision of close only
        f"2001-02-28,{a},11.0,110,1,2001-02-28T21:00:00+00:00",
        f"2001-03-30,{a},12.0,120,1,2001-03-30T21:00:00+00:00",  # after the window
    ]
    path.write_text("\n".join(rows) + "\n")
    return path


def _release_file(tmp_path, series: str):
    path = tmp_path / "releases.csv"
    path.write_text(
        "series_id,period,value,released_at\n"
        f"{series},2001-01-01,1.5,2001-02-01T13:30:00+00:00\n"
        f"{series},2001-02-01,1.7,2001-03-01T13:30:00+00:00\n"
    )
    return path


def test_market_events_hold_one_vintage_each_without_groups_or_gaps(tmp_path, names):
    a, b, _ = names
    observations = read_market_file(_panel_file(tmp_path, a, b), now=datetime.now(UTC))
    events = observation_events(observations)
    assert len(events) == 5
    revision = [e for e in events if e.asset == a and e.available_at.day == 2]
    assert [e.fields for e in revision] == [{"close": 10.5}]  # volume was empty: left out
    assert all("group:sector" not in e.fields for e in events)
    assert revision[0].event_id == f"market:{a}:2001-01-31:2001-02-02T14:00:00+00:00"
    assert [e.event_id for e in observation_events(observations)] == [
        e.event_id for e in events
    ]  # the same history gives the same ids: a second replay is a duplicate downstream
    none = market_events(*(np.empty(0) for _ in range(5)))
    assert none == []


def test_one_clock_across_both_topics_with_market_data_first_in_an_instant(names):
    a, _, series = names
    at = datetime(2001, 2, 1, 13, 30, tzinfo=UTC)
    release = MacroRelease(
        event_id="r1", series_id=series, period=date(2001, 1, 1), value=1.0, released_at=at
    )
    close = {"close": 1.0}
    same = MarketData(event_id="m1", asset=a, date=date(2001, 2, 1), fields=close, available_at=at)
    early = MarketData(
        event_id="m0",
        asset=a,
        date=date(2001, 1, 31),
        fields=close,
        available_at=at.replace(hour=1),
    )

    class Spy:
        sent: list = []

        def publish_many(self, records):
            self.sent += [(r.topic, json.loads(r.value)["event_id"]) for r in records]

    spy = Spy()
    assert replay(spy, [release, same, early], speed=None) == 3
    assert spy.sent == [("market.data", "m0"), ("market.data", "m1"), ("macro.releases", "r1")]


def _replayed(read_topic, names, expect_market: int, expect_releases: int):
    a, b, series = names
    market = read_topic(
        "market.data", expect=expect_market, where=lambda r: r.key.decode() in (a, b)
    )
    releases = read_topic(
        "macro.releases", expect=expect_releases, where=lambda r: r.key.decode() == series
    )
    return market, releases


def _stamps_in_time_order(records) -> list[int]:
    """The producer's timestamps (ms) of the records, in the order of the events' own
    times: non-decreasing when they were published in time order."""

    def known_at(record) -> datetime:
        body = json.loads(record.value)
        return datetime.fromisoformat(body.get("available_at") or body["released_at"])

    # events of one instant may go out in any order between themselves
    return [r.timestamp for r in sorted(records, key=lambda r: (known_at(r), r.timestamp))]


def test_the_store_is_replayed_in_time_order_within_the_window(
    cli, stack_settings, private_database, read_topic, tmp_path, names
):
    a, b, series = names
    postgres = private_database()
    now = datetime.now(UTC)
    with psycopg.connect(postgres.dsn("app"), autocommit=True) as conn:
        load_observations(conn, read_market_file(_panel_file(tmp_path, a, b), now=now))
        frame = pd.read_csv(_release_file(tmp_path, series))
        frame["released_at"] = pd.to_datetime(frame["released_at"], utc=True)
        frame["event_id"] = [f"{series}:{k}" for k in range(len(frame))]
        load_releases(conn, frame)
    settings = stack_settings.model_copy(update={"postgres": postgres})

    code, out, err = cli(
        "data", "replay", "--from", "2001-01-01", "--to", "2001-02-28", "--no-wait", "--json",
        settings=settings,
    )  # fmt: skip

    assert code == 0, err
    summary = json.loads(out)
    assert summary["source"] == "store" and summary["stopped"] is False
    # Jan (two assets), the revision, Feb; the March close and release are after --to
    assert (summary["market_data"], summary["releases"]) == (4, 1)
    market, releases = _replayed(read_topic, names, 4, 1)
    assert len(market) == 4 and len(releases) == 1
    stamps = _stamps_in_time_order(market + releases)
    assert stamps == sorted(stamps)


def test_files_are_replayed_without_the_store_and_bad_bounds_are_refused(
    cli, read_topic, tmp_path, names
):
    a, b, series = names
    code, out, err = cli(
        "data", "replay", "--from", "2001-01-01", "--to", "2001-12-31", "--no-wait",
        "--panel", str(_panel_file(tmp_path, a, b)),
        "--releases", str(_release_file(tmp_path, series)),
    )  # fmt: skip
    assert code == 0, err
    assert "replayed 7 of 7 events from the files: 2 releases, 5 market data" in out
    market, releases = _replayed(read_topic, names, 5, 2)
    assert len(market) == 5 and len(releases) == 2
    code, _, err = cli("data", "replay", "--from", "2001-03-01", "--to", "2001-01-01")
    assert code == 2 and "--from 2001-03-01 is not before --to 2001-01-01" in err
