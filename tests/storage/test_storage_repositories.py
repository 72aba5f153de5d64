"""Factors, evaluations, pools, the ledger, dead letters, market data and the pool opener."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta, timezone

import numpy as np
import pandas as pd
import pytest

from storage.db import open_pool, redact_dsn
from storage.dead_letters import delete_dead_letter, list_dead_letters, record_dead_letter
from storage.errors import ConflictError, InvalidRecordError, StorageConnectionError
from storage.factors import (
    EvaluationRow,
    alpha_pool,
    evaluations,
    known_factor_hashes,
    replace_alpha_pool,
    upsert_evaluations,
    upsert_factor,
    upsert_factors,
)
from storage.ledger import is_processed, mark_processed
from storage.market import as_panel, market_as_of, panel_to_observations, record_market_observations

AS_OF = date(2024, 3, 29)
DECIDED = datetime(2024, 3, 29, 12, 30, tzinfo=UTC)
AT = {"as_of": AS_OF, "decision_time": DECIDED}
LATER = {"as_of": AS_OF, "decision_time": DECIDED + timedelta(hours=4)}


def test_factor_upsert_is_idempotent_and_guards_the_hash(app_conn, unique):
    h = unique("hash")
    assert upsert_factor(app_conn, formula_hash=h, formula="rank(close)", origin="library")
    assert not upsert_factor(app_conn, formula_hash=h, formula="rank(close)", origin="generator")
    assert known_factor_hashes(app_conn, formula_hashes=[h, unique("other")]) == {h}
    with pytest.raises(ConflictError, match=h):
        upsert_factor(app_conn, formula_hash=h, formula="rank(open)", origin="library")


def test_a_batch_of_factors_stores_the_new_ones_in_one_statement(app_conn, unique):
    known, fresh = unique("known"), unique("fresh")
    upsert_factor(app_conn, formula_hash=known, formula="rank(close)", origin="library")
    batch = [(known, "rank(close)", "generator"), (fresh, "rank(open)", "generator")]
    assert upsert_factors(app_conn, batch) == {fresh}
    assert upsert_factors(app_conn, batch) == set()
    origins = dict(
        app_conn.execute(
            "SELECT formula_hash, origin FROM core.factors WHERE formula_hash = ANY(%s)",
            ([known, fresh],),
        ).fetchall()
    )
    assert origins == {known: "library", fresh: "generator"}  # the first origin wins
    with pytest.raises(ConflictError, match=known):
        upsert_factors(app_conn, [(unique("new"), "x", "generator"), (known, "y", "generator")])
    twice = unique("twice")
    with pytest.raises(ConflictError, match=twice):
        upsert_factors(app_conn, [(twice, "x", "generator"), (twice, "y", "generator")])


def test_evaluation_upsert_overwrites_one_row_per_key(app_conn, unique):
    h, strategy = unique("hash"), unique("strategy")
    upsert_factor(app_conn, formula_hash=h, formula="x", origin="generator")
    metrics = {
        "ic": 0.05,
        "ls_sharpe": 1.2,
        "hac_tstat": np.float64(3.1),
        "ls_max_drawdown": 0.1,
        "turnover": float("nan"),
        "n_periods": 120,
    }
    first = EvaluationRow(h, strategy, metrics=metrics, is_alpha=True, **AT)
    rewritten = EvaluationRow(
        h, strategy, metrics={**metrics, "ls_sharpe": 1.3}, is_alpha=True, **AT
    )
    # a second decision the same day is a row of its own: it saw other data
    later = {"as_of": AS_OF, "decision_time": DECIDED + timedelta(hours=4)}
    upsert_evaluations(app_conn, [first])
    # one key twice in one batch (a single statement): the later row wins, as two upserts
    upsert_evaluations(
        app_conn,
        [first, rewritten, EvaluationRow(h, strategy, metrics=metrics, is_alpha=False, **later)],
    )
    stored = "SELECT count(*) FROM core.evaluations WHERE formula_hash = %s AND strategy_id = %s"
    assert app_conn.execute(stored, (h, strategy)).fetchone()[0] == 2
    frame = evaluations(app_conn, strategy_id=strategy, decision_time=DECIDED, alphas_only=True)
    assert len(frame) == 1
    row = frame.iloc[0]
    assert (row["ls_sharpe"], row["hac_tstat"], row["ic"]) == (1.3, 3.1, 0.05)
    assert row["metrics"]["turnover"] is None and pd.isna(row["turnover"])
    assert row["metrics"]["n_periods"] == 120


def test_alpha_pool_replacement_is_idempotent(app_conn, unique):
    strategy = unique("s")
    hashes = [unique(f"h{i}") for i in range(3)]
    for h in hashes:
        upsert_factor(app_conn, formula_hash=h, formula=h, origin="generator")
    replace_alpha_pool(
        app_conn, strategy_id=strategy, weights={hashes[0]: 0.5, hashes[1]: 0.5}, **AT
    )
    weights = {hashes[1]: 0.25, hashes[2]: 0.75}
    assert replace_alpha_pool(app_conn, strategy_id=strategy, weights=weights, **AT) == 2
    assert replace_alpha_pool(app_conn, strategy_id=strategy, weights=weights, **AT) == 2
    assert alpha_pool(app_conn, strategy_id=strategy, decision_time=DECIDED) == weights


def test_ledger_marks_once_and_rolls_back_with_the_transaction(connect_as, unique):
    conn = connect_as("app")
    event = unique("event")
    with conn.transaction():
        assert mark_processed(conn, consumer="release-handler", event_id=event)
        assert not mark_processed(conn, consumer="release-handler", event_id=event)
        assert mark_processed(conn, consumer="allocator", event_id=event)
    other = unique("rolled-back")
    conn.execute("SELECT 1")
    mark_processed(conn, consumer="release-handler", event_id=other)
    conn.rollback()
    assert is_processed(conn, consumer="release-handler", event_id=event)
    assert not is_processed(conn, consumer="release-handler", event_id=other)
    conn.rollback()


def test_dead_letter_is_recorded_once_per_kafka_record(app_conn, unique):
    topic = unique("macro.releases")
    first = record_dead_letter(
        app_conn,
        topic=topic,
        partition=0,
        offset=41,
        key="CPI",
        payload=b"\xffnot json",
        error="JSONDecodeError: ...",
    )
    again = record_dead_letter(
        app_conn,
        topic=topic,
        partition=0,
        offset=41,
        key="CPI",
        payload=b"\xffnot json",
        error="JSONDecodeError: ...",
    )
    assert first is not None and again is None
    [letter] = list_dead_letters(app_conn, topic=topic)
    assert (letter.key, letter.payload, letter.offset) == (b"CPI", b"\xffnot json", 41)
    assert delete_dead_letter(app_conn, dead_letter_id=first)
    assert list_dead_letters(app_conn, topic=topic) == []


def test_market_as_of_returns_the_vintage_available_then(app_conn, unique):
    asset = unique("EQ")
    close_time = datetime(2024, 1, 2, 21, 0, tzinfo=UTC)
    revised_at = close_time + timedelta(days=1)
    observations = pd.DataFrame(
        {
            "asset": [asset, asset, asset],
            "date": pd.to_datetime(["2024-01-02", "2024-01-02", "2024-01-02"]),
            "field": ["close", "volume", "close"],
            "value": [100.0, np.nan, 101.0],
            "available_at": [close_time, close_time, revised_at],
        }
    )
    assert record_market_observations(app_conn, observations=observations) == 3
    assert record_market_observations(app_conn, observations=observations) == 0

    assert market_as_of(app_conn, as_of=close_time - timedelta(seconds=1), assets=[asset]).empty
    then = market_as_of(app_conn, as_of=close_time, assets=[asset])
    assert then["field"].tolist() == ["close", "volume"]
    assert then["value"].iloc[0] == 100.0 and np.isnan(then["value"].iloc[1])
    later = market_as_of(app_conn, as_of=revised_at, assets=[asset], fields=["close"])
    assert later["value"].tolist() == [101.0]
    panel = as_panel(later)
    assert list(panel.columns) == ["date", "asset", "close"]


def test_panel_melts_into_observations(app_conn, unique):
    asset = unique("BOND")
    panel = pd.DataFrame(
        {
            "date": pd.to_datetime(["2024-01-02", "2024-01-03"]),
            "asset": [asset, asset],
            "returns": [0.01, -0.02],
        }
    )
    at = datetime(2024, 1, 4, tzinfo=UTC)
    observations = panel_to_observations(panel, available_at=at)
    assert record_market_observations(app_conn, observations=observations) == 2
    frame = as_panel(market_as_of(app_conn, as_of=at, assets=[asset]))
    pd.testing.assert_frame_equal(frame, panel)


@pytest.mark.parametrize(
    ("column", "bad", "message"),
    [
        ("available_at", datetime(2024, 1, 2, 21, 0), "time-zone aware"),
        ("date", datetime(2024, 1, 2, 9, 30), "calendar dates"),
        ("value", float("inf"), "finite"),
    ],
)
def test_market_rejects_unusable_columns(app_conn, column, bad, message):
    row = {
        "asset": "A",
        "date": date(2024, 1, 2),
        "field": "close",
        "value": 1.0,
        "available_at": datetime(2024, 1, 2, 21, 0, tzinfo=UTC),
    }
    row[column] = bad
    with pytest.raises(InvalidRecordError, match=message):
        record_market_observations(app_conn, observations=pd.DataFrame([row]))


def test_pool_opens_explicitly_and_reports_a_bad_login_without_the_password(db_settings):
    pool = open_pool(db_settings.dsn("app"), min_size=1, max_size=2)
    try:
        with pool.connection() as conn:
            assert conn.execute("SELECT current_user").fetchone()[0] == db_settings.app_user
            assert conn.autocommit  # each call commits; a transaction block is a real one
    finally:
        pool.close()
    wrong = db_settings.dsn("app").replace(db_settings.password("app"), "nope")
    with pytest.raises(StorageConnectionError) as caught:
        open_pool(wrong, min_size=1, max_size=1, timeout_s=2)
    assert "nope" not in str(caught.value)
    assert "nope" not in redact_dsn(wrong)


def test_an_evaluation_batch_is_checked_whole_before_any_row_is_written(app_conn, unique):
    h, strategy = unique("hash"), unique("strategy")
    upsert_factor(app_conn, formula_hash=h, formula="x", origin="generator")
    good = EvaluationRow(h, strategy, metrics={"ic": 0.1}, is_alpha=True, **AT)
    bad = EvaluationRow(h, strategy, metrics={"ic": object()}, is_alpha=True, **LATER)
    with pytest.raises(InvalidRecordError, match="metrics are not JSON-serialisable"):
        upsert_evaluations(app_conn, [good, bad])
    stored = "SELECT count(*) FROM core.evaluations WHERE strategy_id = %s"
    assert app_conn.execute(stored, (strategy,)).fetchone()[0] == 0


def test_one_instant_in_two_zones_is_one_evaluation_key_in_a_batch(app_conn, unique):
    h, strategy = unique("hash"), unique("strategy")
    upsert_factor(app_conn, formula_hash=h, formula="x", origin="generator")
    new_york = DECIDED.astimezone(timezone(timedelta(hours=-4)))
    upsert_evaluations(
        app_conn,
        [
            EvaluationRow(h, strategy, metrics={"ic": 0.1}, is_alpha=True, **AT),
            EvaluationRow(h, strategy, as_of=AS_OF, decision_time=new_york, metrics={"ic": 0.2}),
        ],
    )
    stored = app_conn.execute(
        "SELECT metrics ->> 'ic' FROM core.evaluations WHERE strategy_id = %s", (strategy,)
    ).fetchall()
    assert stored == [("0.2",)]
