"""Allocations: one per (strategy, trigger) under concurrent duplicates; views; outbox."""

from __future__ import annotations

import threading
import time as clock
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, date, datetime, time

import psycopg
import pytest

from alphafactory.exposures import ClassExposure
from storage.allocations import (
    AllocationResult,
    allocation_id_for,
    held_before,
    latest_class_exposures,
    latest_target_positions,
    target_positions,
    write_allocation,
)
from storage.errors import ConflictError, InvalidRecordError, StorageError
from storage.outbox import OutboxEvent, claim_unsent, enqueue, enqueue_many, mark_sent


def allocate(conn, strategy, trigger, *, allocation_id=None, as_of=date(2024, 3, 29), **kw):
    return write_allocation(
        conn,
        allocation_id=allocation_id or allocation_id_for(strategy, trigger),
        strategy_id=strategy,
        as_of=as_of,
        decision_time=kw.pop("decision_time", datetime.combine(as_of, time(13, 30), UTC)),
        trigger_event_id=trigger,
        weights=kw.pop("weights", {"EQ": 0.6, "BOND": -0.6}),
        event=kw.pop("event", None),
        exposures=kw.pop("exposures", ()),
    )


def count(conn, sql: str, *params) -> int:
    return conn.execute(sql, params).fetchone()[0]


def test_duplicate_waits_for_the_first_and_writes_nothing(connect_as, unique):
    strategy, trigger = unique("macro-ls"), unique("cpi-2024-02")
    topic = unique("portfolio.rebalances")
    first, second = connect_as("app"), connect_as("app", autocommit=True)
    event = OutboxEvent(topic=topic, key=strategy, payload={"strategy_id": strategy})

    first.execute("SELECT 1")  # a caller's open transaction: the write joins it uncommitted
    won = allocate(first, strategy, trigger, allocation_id=unique("a1"), event=event)
    with ThreadPoolExecutor(1) as pool:
        pending = pool.submit(
            allocate,
            second,
            strategy,
            trigger,
            allocation_id=unique("a2"),
            event=event,
            weights={"EQ": 1.0},
        )
        clock.sleep(0.3)
        assert not pending.done(), "the duplicate must wait on the uncommitted unique key"
        first.commit()
        lost = pending.result(timeout=30)

    assert won == AllocationResult(unique("a1"), created=True)
    assert lost == AllocationResult(unique("a1"), created=False)
    check = connect_as("owner")
    assert (
        count(check, "SELECT count(*) FROM core.allocations WHERE strategy_id = %s", strategy) == 1
    )
    assert target_positions(check, allocation_id=unique("a1")) == {"BOND": -0.6, "EQ": 0.6}
    assert count(check, "SELECT count(*) FROM core.outbox WHERE topic = %s", topic) == 1


def test_many_concurrent_duplicates_leave_exactly_one(connect_as, unique):
    strategy, trigger = unique("s"), unique("t")
    conns = [connect_as("app", autocommit=True) for _ in range(6)]
    barrier = threading.Barrier(len(conns))

    def run(i: int) -> AllocationResult:
        barrier.wait()
        return allocate(conns[i], strategy, trigger, allocation_id=unique(f"a{i}"))

    with ThreadPoolExecutor(len(conns)) as pool:
        results = list(pool.map(run, range(len(conns))))

    assert sum(r.created for r in results) == 1
    assert len({r.allocation_id for r in results}) == 1


def test_rolled_back_first_writer_lets_the_duplicate_in(connect_as, unique):
    strategy, trigger = unique("s"), unique("t")
    first, second = connect_as("app"), connect_as("app", autocommit=True)
    first.execute("SELECT 1")
    allocate(first, strategy, trigger, allocation_id=unique("a1"))
    with ThreadPoolExecutor(1) as pool:
        pending = pool.submit(allocate, second, strategy, trigger, allocation_id=unique("a2"))
        clock.sleep(0.3)
        assert not pending.done()
        first.rollback()
        assert pending.result(timeout=30) == AllocationResult(unique("a2"), created=True)


def test_allocation_id_of_another_strategy_is_a_conflict(app_conn, unique):
    allocate(app_conn, unique("s1"), unique("t"), allocation_id=unique("a"))
    with pytest.raises(ConflictError, match=unique("a")):
        allocate(app_conn, unique("s2"), unique("t"), allocation_id=unique("a"))


@pytest.mark.parametrize("weights", [{}, {"EQ": float("nan")}, {"EQ": float("inf")}])
def test_unusable_weights_are_rejected(app_conn, unique, weights):
    with pytest.raises(InvalidRecordError):
        allocate(app_conn, unique("s"), unique("t"), weights=weights)


def test_views_show_every_allocation_and_the_latest_per_strategy(app_conn, connect_as, unique):
    strategy = unique("s")
    allocate(app_conn, strategy, unique("jan"), as_of=date(2024, 1, 31), weights={"EQ": 1.0})
    newest = allocate(
        app_conn, strategy, unique("feb"), as_of=date(2024, 2, 29), weights={"EQ": 0.5, "GOLD": 0.5}
    )
    # written last, but decided earlier: a late revision of January does not become latest
    allocate(app_conn, strategy, unique("late-jan-revision"), as_of=date(2024, 1, 31))

    latest = latest_target_positions(app_conn, strategy_id=strategy)
    assert set(latest["allocation_id"]) == {newest.allocation_id}
    assert latest["asset"].tolist() == ["EQ", "GOLD"]
    assert latest["trigger_event_id"].tolist() == [unique("feb")] * 2

    reader = connect_as("trading")
    rows = reader.execute(
        "SELECT count(*) FROM trading.target_positions WHERE strategy_id = %s", (strategy,)
    ).fetchone()[0]
    assert rows == 1 + 2 + 2


def test_class_exposures_are_read_beside_the_latest_positions(app_conn, connect_as, unique):
    strategy = unique("s")
    first = [ClassExposure("asset_class", 0, 1.0, 0.2, 0.001)]
    allocate(
        app_conn, strategy, unique("jan"), as_of=date(2024, 1, 31), weights={"EQ": 1.0},
        exposures=first,
    )  # fmt: skip
    newest = [
        ClassExposure("asset_class", 0, 0.5, -0.1, float("nan")),  # no forecast: null
        ClassExposure("asset_class", 1, 0.5, 0.1, -0.002),
    ]
    feb = allocate(
        app_conn, strategy, unique("feb"), as_of=date(2024, 2, 29),
        weights={"EQ": 0.5, "BOND": 0.5}, exposures=newest,
    )  # fmt: skip
    latest = latest_class_exposures(app_conn, strategy_id=strategy)
    assert set(latest["allocation_id"]) == {feb.allocation_id}
    assert latest["class_code"].tolist() == [0, 1]
    assert latest["active_weight"].tolist() == [-0.1, 0.1]
    assert latest["forecast_return"].isna().tolist() == [True, False]
    assert latest["forecast_return"].iloc[1] == -0.002
    reader = connect_as("trading")  # the desk's role reads every allocation's too
    rows = reader.execute(
        "SELECT count(*), count(forecast_return) FROM trading.class_exposures "
        "WHERE strategy_id = %s",
        (strategy,),
    ).fetchone()
    assert rows == (3, 2)  # the missing forecast stored as null
    # what a strategy holds when deciding: its last allocation decided before then
    held = held_before(
        app_conn, strategy_id=strategy, decision_time=datetime(2024, 2, 29, 23, 0, tzinfo=UTC)
    )
    assert held == {"BOND": 0.5, "EQ": 0.5}
    early = held_before(
        app_conn, strategy_id=strategy, decision_time=datetime(2024, 1, 31, 13, 30, tzinfo=UTC)
    )
    assert early is None


def test_latest_is_the_latest_decision_not_the_last_commit(app_conn, unique):
    strategy, day = unique("s"), date(2024, 5, 15)
    later = allocate(
        app_conn,
        strategy,
        unique("payrolls"),
        as_of=day,
        decision_time=datetime(2024, 5, 15, 16, 0, tzinfo=UTC),
        weights={"EQ": 1.0},
    )
    allocate(  # two triggers on one New York date; the earlier decision commits last
        app_conn,
        strategy,
        unique("cpi"),
        as_of=day,
        decision_time=datetime(2024, 5, 15, 12, 30, tzinfo=UTC),
        weights={"BOND": 1.0},
    )
    latest = latest_target_positions(app_conn, strategy_id=strategy)
    assert set(latest["allocation_id"]) == {later.allocation_id}
    assert latest["decision_time"].tolist() == [datetime(2024, 5, 15, 16, 0, tzinfo=UTC)]


def test_views_refuse_writes_even_from_the_owner(connect_as):
    owner = connect_as("owner", autocommit=True)
    with pytest.raises(psycopg.Error) as caught:
        owner.execute(
            "INSERT INTO trading.target_positions (strategy_id, asset, weight) "
            "VALUES ('s', 'EQ', 1.0)"
        )
    assert caught.value.sqlstate == "42501"
    assert "trading.target_positions is read-only" in str(caught.value)


def test_outbox_claims_skip_rows_locked_by_another_relay(connect_as, unique):
    topic = unique("topic")
    writer = connect_as("app", autocommit=True)
    ids = [enqueue(writer, event=OutboxEvent(topic, f"k{i}", {"i": i})) for i in range(3)]
    relay_a, relay_b = connect_as("app"), connect_as("app")

    claimed_a = claim_unsent(relay_a, limit=2, topic=topic)
    claimed_b = claim_unsent(relay_b, limit=10, topic=topic)
    assert [m.id for m in claimed_a] == ids[:2]
    assert [m.id for m in claimed_b] == ids[2:]
    assert claimed_a[0].payload == {"i": 0} and claimed_a[0].key == "k0"

    assert mark_sent(relay_a, ids=[m.id for m in claimed_a]) == 2
    relay_a.commit()
    relay_b.rollback()  # relay b crashed before publishing: its message is still unsent
    assert [m.id for m in claim_unsent(relay_b, limit=10, topic=topic)] == ids[2:]
    relay_b.rollback()


def test_outbox_claim_outside_a_transaction_is_refused(app_conn):
    with pytest.raises(StorageError, match="transaction"):
        claim_unsent(app_conn, limit=1)


def test_outbox_rejects_payloads_json_cannot_hold(app_conn, unique):
    with pytest.raises(InvalidRecordError, match="JSON"):
        enqueue(app_conn, event=OutboxEvent(unique("t"), None, {"x": float("nan")}))


def test_a_batch_enters_the_outbox_in_order_or_not_at_all(connect_as, unique):
    topic = unique("topic")
    writer = connect_as("app", autocommit=True)
    events = [OutboxEvent(topic, f"k{i}", {"i": i}) for i in range(5)]
    with pytest.raises(InvalidRecordError, match=topic):
        enqueue_many(writer, [*events, OutboxEvent(topic, "bad", {"x": float("inf")})])
    relay = connect_as("app")
    assert claim_unsent(relay, limit=10, topic=topic) == []  # checked before any was sent
    relay.rollback()
    enqueue_many(writer, events)
    claimed = claim_unsent(relay, limit=10, topic=topic)
    assert [(m.key, m.payload) for m in claimed] == [(e.key, e.payload) for e in events]
    relay.rollback()


def test_a_large_batch_takes_outbox_ids_in_the_events_order(connect_as, unique):
    # one statement writes the batch: the ids (the relay's publishing order) must still
    # follow the events, keyless ones included
    topic = unique("topic")
    writer = connect_as("app", autocommit=True)
    events = [OutboxEvent(topic, None if i % 7 else f"k{i}", {"i": i}) for i in range(500)]
    enqueue_many(writer, events)
    relay = connect_as("app")
    claimed = claim_unsent(relay, limit=1000, topic=topic)  # by id
    relay.rollback()
    assert [m.payload["i"] for m in claimed] == list(range(500))
    assert [m.key for m in claimed] == [e.key for e in events]
