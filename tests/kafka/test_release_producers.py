"""Release producers against the real tansu broker: the CLI, publish_release and the replayer.

Every test uses series ids with a unique prefix, so records other tests put on the shared
``macro.releases`` topic never match.
"""

from __future__ import annotations

import json
import os
import re
import signal
import threading
import uuid
from datetime import UTC, date, datetime, timedelta

import pandas as pd
import pytest

from alphafactory.data.bundled import bundled_market
from alphafactory.data.synthetic import synthetic_market
from alphafactory.events import MacroRelease, decode
from alphafactory.settings import KafkaSettings
from alphafactory.topics import MACRO_RELEASES
from app.cli.release_cmd import stop_on_ctrl_c
from messaging.admin import ensure_topics
from messaging.publisher import KafkaPublisher
from producers.releases import (
    InvalidReleaseError,
    make_release,
    publish_release,
    release_events,
)
from producers.replay import replay, select_events

CONTRACT_KEYS = {"event_id", "series_id", "period", "value", "released_at", "schema_version"}
T0 = datetime(2024, 1, 2, 13, 30, tzinfo=UTC)


@pytest.fixture
def series() -> str:
    return f"test_{uuid.uuid4().hex[:10]}"


@pytest.fixture
def publisher(kafka_settings):
    ensure_topics(kafka_settings, [MACRO_RELEASES])
    with KafkaPublisher.open(kafka_settings) as opened:
        yield opened


def release(series: str, at: datetime, period: date = date(2023, 12, 1)) -> MacroRelease:
    return make_release(
        event_id=f"{series}:{period}:{at.isoformat()}",
        series_id=series,
        period=period,
        value=1.5,
        released_at=at,
    )


class SpyPublisher:
    """Delegates to a real publisher, keeping the batches handed to publish_many."""

    def __init__(self, inner, on_batch=None) -> None:
        self.inner, self.batches, self.on_batch = inner, [], on_batch

    def publish_many(self, records):
        batch = list(records)
        self.batches.append(batch)
        result = self.inner.publish_many(batch) if self.inner else []
        if self.on_batch:
            self.on_batch(self)
        return result


class FakeClock:
    """``clock``/``sleep`` pair: sleeping advances the clock and is recorded, no real wait."""

    def __init__(self) -> None:
        self.now, self.sleeps = 100.0, []

    def clock(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds


def published_released_at(spy: SpyPublisher) -> list[datetime]:
    return [decode(MacroRelease, r.value).released_at for b in spy.batches for r in b]


# -- one release: the CLI and publish_release ------------------------------------------------


def test_cli_publish_sends_exactly_the_contract_message(cli, read_topic, series):
    code, out, _ = cli(
        "release",
        "publish",
        "--series",
        series,
        "--period",
        "2024-04-01",
        "--value",
        "3.25",
        "--released-at",
        "2024-05-10T08:30:00-04:00",
        "--json",
    )

    assert code == 0
    shown = json.loads(out)
    (record,) = read_topic(MACRO_RELEASES, expect=1, where=lambda r: r.key == series.encode())
    message = json.loads(record.value.decode("utf-8"))
    assert set(message) == CONTRACT_KEYS
    released_at = datetime.fromisoformat(message.pop("released_at"))
    assert released_at.utcoffset() is not None
    assert released_at == datetime(2024, 5, 10, 12, 30, tzinfo=UTC)
    assert message == {
        "event_id": f"{series}:2024-04-01:2024-05-10T12:30:00+00:00",
        "series_id": series,
        "period": "2024-04-01",
        "value": 3.25,
        "schema_version": 1,
    }
    assert (shown["topic"], shown["partition"], shown["offset"]) == (
        MACRO_RELEASES,
        record.partition,
        record.offset,
    )
    assert shown["event_id"] == message["event_id"] and shown["key"] == series


def test_cli_publish_defaults_to_now_and_a_derived_event_id(cli, read_topic, series):
    before = datetime.now(UTC)
    code, out, _ = cli(
        "release",
        "publish",
        "--series",
        series,
        "--period",
        "2024-04-01",
        "--value",
        "-0.5",
        "--event-id",
        f"{series}-manual",
    )
    after = datetime.now(UTC)

    assert code == 0 and f"published {series}-manual to {MACRO_RELEASES}" in out
    (record,) = read_topic(MACRO_RELEASES, expect=1, where=lambda r: r.key == series.encode())
    event = decode(MacroRelease, record.value)
    assert before <= event.released_at <= after
    assert (event.event_id, event.value) == (f"{series}-manual", -0.5)

    code, out, _ = cli(
        "release", "publish", "--series", series, "--period", "2024-05-01", "--value", "1", "--json"
    )
    event = json.loads(out)["event"]
    released_at = datetime.fromisoformat(event["released_at"])
    assert event["event_id"] == f"{series}:2024-05-01:{released_at.isoformat()}"


@pytest.mark.parametrize(
    "option, text, message",
    [
        ("--value", "nan", "--value 'nan' is not valid; expected a finite number"),
        ("--value", "3,2", "--value '3,2' is not valid; expected a finite number"),
        ("--released-at", "2024-05-10T12:30:00", "'2024-05-10T12:30:00' has no time zone"),
        ("--released-at", "yesterday", "not an ISO-8601 timestamp"),
        ("--period", "2024-02-30", "--period '2024-02-30' is not a date; expected YYYY-MM-DD"),
        ("--series", "", "series_id '': String should have at least 1 character"),
    ],
)
def test_cli_publish_rejects_bad_values_before_connecting(
    cli, stack_settings, closed_port, option, text, message
):
    # a broker that cannot be reached: exit code 2 (not 1) proves nothing was attempted
    unreachable = stack_settings.model_copy(
        update={"kafka": KafkaSettings(bootstrap=f"127.0.0.1:{closed_port}")}
    )
    argv = {
        "--series": "s",
        "--period": "2024-04-01",
        "--value": "1",
        "--released-at": "2024-05-10T12:30:00Z",
        option: text,
    }
    code, out, err = cli(
        "release", "publish", *[x for kv in argv.items() for x in kv], settings=unreachable
    )
    assert (code, out) == (2, "")
    assert message in err


def test_cli_publish_without_a_broker_exits_1_naming_it(cli, stack_settings, closed_port):
    kafka = KafkaSettings(bootstrap=f"127.0.0.1:{closed_port}", request_timeout_ms=1000)
    code, _, err = cli(
        "release",
        "publish",
        "--series",
        "s",
        "--period",
        "2024-04-01",
        "--value",
        "1",
        settings=stack_settings.model_copy(update={"kafka": kafka}),
    )
    assert code == 1 and f"127.0.0.1:{closed_port}" in err


def test_publish_release_is_acknowledged_and_keyed_by_series(publisher, read_topic, series):
    event = release(series, T0)
    meta = publish_release(publisher, event)

    (record,) = read_topic(MACRO_RELEASES, expect=1, where=lambda r: r.key == series.encode())
    assert (record.partition, record.offset) == (meta.partition, meta.offset)
    assert record.value == event.to_json()
    assert decode(MacroRelease, record.value) == event


# -- release tables --------------------------------------------------------------------------


def synthetic_releases(prefix: str) -> pd.DataFrame:
    """A small synthetic release history (with revisions), series renamed to ``prefix``."""
    market = synthetic_market(n_assets=2, n_dates=24, n_macro=3, seed=3, frequency="M")
    frame = market.releases.copy()
    frame["series_id"] = prefix + frame["series_id"]
    frame["event_id"] = prefix + frame["event_id"]
    return frame


def test_release_events_sorts_by_time_then_series_then_period(series):
    frame = synthetic_releases(series).sample(frac=1.0, random_state=0)  # shuffled
    events = release_events(frame)
    assert len(events) == len(frame)
    order = [(e.released_at, e.series_id, e.period) for e in events]
    assert order == sorted(order)
    assert any(a[0] == b[0] for a, b in zip(order, order[1:], strict=False))  # ties exist


def test_release_events_names_a_bad_row_and_a_naive_column(series):
    frame = synthetic_releases(series)
    frame.loc[5, "value"] = float("nan")
    with pytest.raises(InvalidReleaseError, match=f"{frame.loc[5, 'event_id']}.*value nan"):
        release_events(frame)
    naive = frame.assign(released_at=frame["released_at"].dt.tz_localize(None))
    with pytest.raises(InvalidReleaseError, match="released_at has dtype datetime64"):
        release_events(naive)


# -- the replayer ----------------------------------------------------------------------------


def test_replay_publishes_a_synthetic_history_in_release_order(publisher, read_topic, series):
    frame = synthetic_releases(series).sample(frac=1.0, random_state=1)
    spy = SpyPublisher(publisher)

    count = replay(spy, release_events(frame), speed=None, batch_size=16)

    assert count == len(frame) and len(spy.batches) == -(-len(frame) // 16)
    sent = published_released_at(spy)
    assert sent == sorted(sent)
    records = read_topic(
        MACRO_RELEASES, expect=len(frame), where=lambda r: r.key.decode().startswith(series)
    )
    assert sorted(decode(MacroRelease, r.value).event_id for r in records) == sorted(
        frame["event_id"]
    )
    for key in frame["series_id"].unique():  # a series stays in order on its partition
        mine = sorted((r for r in records if r.key == key.encode()), key=lambda r: r.offset)
        times = [decode(MacroRelease, r.value).released_at for r in mine]
        assert times == sorted(times) and len({r.partition for r in mine}) == 1


def paced_history(series: str) -> list[MacroRelease]:
    """Gaps: 1 day, 0 (same instant, other series), 2 days, 37 days."""
    day = timedelta(days=1)
    return [
        release(series, T0 + 40 * day),
        release(series, T0),
        release(series, T0 + day),
        release(series + "b", T0 + day),
        release(series, T0 + 3 * day),
    ]


def test_accelerated_clock_sleeps_the_scaled_gaps_capped(publisher, read_topic, series):
    fake = FakeClock()
    spy = SpyPublisher(publisher)

    count = replay(
        spy, paced_history(series), speed=86_400, max_gap_s=5.0, sleep=fake.sleep, clock=fake.clock
    )

    assert count == 5
    assert fake.sleeps == pytest.approx([1.0, 2.0, 5.0])  # 37 s scaled is capped at 5
    assert [len(b) for b in spy.batches] == [1, 2, 1, 1]  # one batch per instant
    assert published_released_at(spy) == sorted(e.released_at for e in paced_history(series))
    records = read_topic(
        MACRO_RELEASES, expect=5, where=lambda r: r.key.decode().startswith(series)
    )
    assert len(records) == 5


def test_accelerated_clock_counts_publishing_time_against_the_gap(series):
    fake = FakeClock()

    def slow_broker(spy):  # every batch takes 0.25 s of (fake) wall time
        fake.now += 0.25

    replay(
        SpyPublisher(None, on_batch=slow_broker),
        paced_history(series),
        speed=86_400,
        sleep=fake.sleep,
        clock=fake.clock,
    )
    assert fake.sleeps == pytest.approx([0.75, 1.75, 4.75])


def test_since_and_until_select_a_half_open_window(publisher, read_topic, series):
    days = [release(series, T0 + timedelta(days=d)) for d in range(5)]
    since, until = T0 + timedelta(days=1), T0 + timedelta(days=3)

    count = replay(publisher, days, speed=None, since=since, until=until)

    assert count == 2
    records = read_topic(MACRO_RELEASES, expect=2, where=lambda r: r.key == series.encode())
    assert sorted(decode(MacroRelease, r.value).released_at for r in records) == [
        T0 + timedelta(days=1),
        T0 + timedelta(days=2),
    ]
    with pytest.raises(ValueError, match="since=2024-01-02T13:30:00 has no time zone"):
        select_events(days, since=T0.replace(tzinfo=None))


def test_stop_event_ends_a_paced_replay_during_a_pause(publisher, read_topic, series):
    stop, fake = threading.Event(), FakeClock()

    def stop_while_sleeping(seconds: float) -> None:
        fake.sleep(seconds)
        stop.set()

    count = replay(
        publisher,
        paced_history(series),
        speed=86_400,
        sleep=stop_while_sleeping,
        clock=fake.clock,
        stop_event=stop,
    )

    assert count == 1 and fake.sleeps == [pytest.approx(1.0)]
    records = read_topic(
        MACRO_RELEASES, expect=2, timeout_s=1.0, where=lambda r: r.key.decode().startswith(series)
    )
    assert [decode(MacroRelease, r.value).released_at for r in records] == [T0]


def test_stop_event_ends_a_fast_replay_between_batches(series):
    stop = threading.Event()
    spy = SpyPublisher(None, on_batch=lambda _: stop.set())
    events = [release(series, T0 + timedelta(hours=h)) for h in range(6)]

    assert replay(spy, events, speed=None, batch_size=2, stop_event=stop) == 2
    assert replay(spy, events, speed=None, stop_event=stop) == 0  # already set


def test_the_default_sleep_waits_on_the_stop_event(series):
    stop = threading.Event()
    threading.Timer(0.2, stop.set).start()
    started = datetime.now(UTC)

    count = replay(
        SpyPublisher(None), paced_history(series), speed=1.0, max_gap_s=30.0, stop_event=stop
    )

    assert count == 1  # a 30 s pause cut short by the event
    assert datetime.now(UTC) - started < timedelta(seconds=5)


# -- the replay command ----------------------------------------------------------------------


def test_cli_replay_sends_the_bundled_window(cli, read_topic):
    expected = select_events(
        release_events(bundled_market().releases),
        since=datetime(2009, 7, 1, tzinfo=UTC),
        until=datetime(2009, 8, 1, tzinfo=UTC),
    )
    code, out, _ = cli(
        "release",
        "replay",
        "--since",
        "2009-07-01",
        "--until",
        "2009-07-31",
        "--speed",
        "1e9",
        "--no-wait",  # no release handler runs here to store them
        "--json",
    )

    summary = json.loads(out)
    assert code == 0 and len(expected) > 5
    assert (summary["published"], summary["selected"], summary["stopped"]) == (
        len(expected),
        len(expected),
        False,
    )
    assert summary["first_released_at"] == expected[0].released_at.isoformat()
    assert summary["last_released_at"] == expected[-1].released_at.isoformat()
    wanted = {e.event_id for e in expected}
    records = read_topic(
        MACRO_RELEASES,
        expect=len(wanted),
        where=lambda r: json.loads(r.value)["event_id"] in wanted,
    )
    assert {decode(MacroRelease, r.value).event_id for r in records} == wanted


@pytest.mark.parametrize("speed", [None, 1e9])
def test_a_settled_replay_waits_before_each_trigger_for_the_releases_before_it(series, speed):
    at = datetime(2024, 1, 2, 13, 30, tzinfo=UTC)
    history = [
        release(f"{series}-other", at),
        release(f"{series}-trigger", at + timedelta(days=1)),
        release(f"{series}-other", at + timedelta(days=2), date(2024, 1, 1)),
        release(f"{series}-other", at + timedelta(days=2), date(2024, 2, 1)),
        release(f"{series}-trigger", at + timedelta(days=3)),
    ]
    spy, settled = SpyPublisher(None), []

    def settle(event_ids):  # what was published before each trigger, and only that
        published = [json.loads(r.value)["event_id"] for batch in spy.batches for r in batch]
        assert set(event_ids) <= set(published)
        settled.append(list(event_ids))

    replay(
        spy,
        history,
        speed=speed,
        sleep=lambda s: None,
        settle=settle,
        is_trigger=lambda r: r.series_id.endswith("-trigger"),
    )
    ids = [e.event_id for e in history]
    assert settled == [ids[:1], ids[1:4]]


def test_a_settled_replay_publishes_a_trigger_after_the_other_releases_of_its_instant(series):
    at = datetime(2024, 1, 2, 13, 30, tzinfo=UTC)
    # by series id the trigger would go first; its decision at `at` includes the sibling
    history = [release(f"{series}-trigger", at), release(f"{series}-zz-sibling", at)]
    spy, settled = SpyPublisher(None), []
    replay(
        spy,
        history,
        speed=None,
        settle=lambda event_ids: settled.append(list(event_ids)),
        is_trigger=lambda r: r.series_id.endswith("-trigger"),
    )
    published = [json.loads(r.value)["event_id"] for batch in spy.batches for r in batch]
    assert published == [history[1].event_id, history[0].event_id]
    assert settled == [[history[1].event_id]]


def test_a_trigger_sharing_its_instant_waits_for_the_decisions_on_the_earlier_ones(series):
    at = datetime(2024, 1, 2, 13, 30, tzinfo=UTC)
    history = [
        release(f"{series}-a-trigger", at),
        release(f"{series}-b-trigger", at),
        release(f"{series}-c-trigger", at),
        release(f"{series}-a-trigger", at + timedelta(days=1), date(2024, 1, 1)),
    ]
    spy, waits = SpyPublisher(None), []

    def decided(triggers):  # what was published when each wait began
        published = [json.loads(r.value)["event_id"] for batch in spy.batches for r in batch]
        waits.append(([t.event_id for t in triggers], published))

    replay(
        spy,
        history,
        speed=None,
        settle=lambda event_ids: None,
        is_trigger=lambda r: r.series_id.endswith("-trigger"),
        decided=decided,
    )
    ids = [e.event_id for e in history]
    # b waits for a's decision, c for a's and b's; the next instant waits for nothing
    assert waits == [(ids[:1], ids[:1]), (ids[:2], ids[:2])]


def test_release_settling_waits_for_the_store_and_names_the_handler_when_it_is_silent(
    stack_settings, monkeypatch, series
):
    from app import wiring
    from storage.db import connect
    from storage.macro import record_macro_observation

    settle, is_trigger, decided = wiring.release_settling(stack_settings)
    stored = release(series, datetime(2024, 1, 2, 13, 30, tzinfo=UTC))
    with connect(stack_settings.postgres.dsn("app"), autocommit=True) as conn:
        record_macro_observation(conn, **stored.model_dump(exclude={"schema_version"}))
    settle([stored.event_id])  # returns: it is stored
    assert is_trigger(stored.model_copy(update={"series_id": "us_core_cpi"}))
    assert not is_trigger(stored)
    monkeypatch.setattr(wiring, "SETTLE_TIMEOUT_S", 0.3)
    with pytest.raises(TimeoutError, match="release-handler.log"):
        settle([stored.event_id, f"{series}-never-published"])
    cpi = stored.model_copy(update={"series_id": "us_core_cpi"})
    expected = f"no decision on.*{re.escape(stored.event_id)}.*allocator.log"
    with pytest.raises(TimeoutError, match=expected):
        decided([cpi])  # no strategy has decided on it


def test_cli_replay_rejects_a_bad_speed(cli):
    code, _, err = cli("release", "replay", "--speed", "0")
    assert code == 2 and "--speed '0' is not valid; expected a positive finite number" in err


def test_ctrl_c_during_a_replay_sets_the_stop_event_and_restores_the_handler():
    stop, before = threading.Event(), signal.getsignal(signal.SIGINT)
    with stop_on_ctrl_c(stop):
        os.kill(os.getpid(), signal.SIGINT)  # delivered to this thread: no KeyboardInterrupt
    assert stop.is_set() and signal.getsignal(signal.SIGINT) is before
