"""The persistent pool (alphafactory.pool, through alphafactory.decision.allocate): members
stay across decisions with an out-of-sample record, weighted by it, and retire when it
decays or their formula stops evaluating; on the planted macro market."""

from __future__ import annotations

from datetime import UTC, datetime

import numpy as np
import pandas as pd
import pytest

from alphafactory.data.macro_markets import CLASS_GROUP, macro_market
from alphafactory.decision import allocate, decision_panel
from alphafactory.pool import Member, Record, record_weights, records, retirement
from alphafactory.strategy import Strategy

STRATEGY = Strategy.model_validate(
    {
        "id": "pooled",
        "alpha": {"training_months": 120},
        "pool": {"size": 5, "max_correlation": 0.95, "retire_after": 12},
        "portfolio": {
            "kind": "tilt",
            "tilt_limit": 0.05,
            "risk_parity_group": CLASS_GROUP,
            "benchmark_excludes": ["CASH"],
        },
    }
)


@pytest.fixture(scope="module")
def market():
    return macro_market(seed=0)


def _decide(market, when: str, members=(), alphas=(), scores=()):
    at = pd.Timestamp(when, tz="UTC").to_pydatetime()
    releases = market.releases[market.releases["released_at"] <= at]
    panel = decision_panel(market.panel, releases, at, 240)
    return allocate(panel, STRATEGY, list(alphas), list(scores), members=members)


def test_a_record_counts_only_the_rows_after_entry_and_signs_a_reversed_member():
    rng = np.random.default_rng(1)
    earned = rng.standard_normal((40, 6))
    signal = np.full((2, 40, 6), np.nan)
    # each row's signal ranks the next row's return, noisily; the reverse before row 20
    signal[:, :-1] = earned[1:] + 0.5 * rng.standard_normal((39, 6))
    signal[:, :20] = -signal[:, :20]
    found = records(signal, earned, np.array([20, 20]), np.array([1.0, -1.0]))
    assert found[0].oos_periods == 19 and found[0].oos_ic > 0.6
    assert found[1].oos_ic == pytest.approx(-found[0].oos_ic)  # admitted reversed
    assert found[0].oos_ic_t > 5


def test_retirement_waits_for_the_record_then_judges_it():
    young, decayed = Record(5, -0.2, -1.0), Record(12, -0.01, -0.3)
    assert retirement(young, True, retire_after=12, retire_below=0.0) == ""
    assert "not above +0.0000" in retirement(decayed, True, retire_after=12, retire_below=0.0)
    assert retirement(Record(12, 0.03, 1.0), True, retire_after=12, retire_below=0.0) == ""
    assert "no longer evaluates" in retirement(young, False, retire_after=12, retire_below=0.0)


def test_a_mean_not_above_zero_retires_only_with_a_t_that_counts_against_it():
    """A member that passed the control is kept through a stretch with a mean at or
    below zero unless the record's t says it has no skill (alphafactory.pool)."""
    rules = {"retire_after": 12, "retire_below": 0.0, "retire_t": -1.0}
    assert retirement(Record(12, -0.01, -0.3), True, **rules) == ""
    assert "(t -1.40)" in retirement(Record(30, -0.03, -1.4), True, **rules)
    assert retirement(Record(30, 0.01, -1.4), True, **rules) == ""  # a positive mean stays


def test_mature_members_are_weighted_by_their_record():
    weights = record_weights(
        np.array([0.5, -0.3, 0.2]),
        [Record(24, 0.06, 2.0), Record(24, 0.02, 1.0), None],
        np.array([1.0, -1.0, 1.0]),
        mature=12,
    )
    # the members' weights are their IC in the direction admitted; the new one keeps its own
    np.testing.assert_allclose(weights, np.array([0.06, -0.02, 0.2]) / 0.28)


def test_members_persist_with_their_record_and_decayed_ones_retire(market):
    planted = market.planted[2]
    entered = datetime(1998, 1, 20, tzinfo=UTC)
    members = [
        Member(planted, entered, 1.0),  # a real signal, admitted the right way round
        Member(market.planted[3], entered, -1.0),  # admitted reversed: its record decays
        Member("ts_zscore(NOT_A_SERIES, 12)", entered, 1.0),
    ]
    decided = _decide(market, "2008-06-20", members=members)
    assert planted in decided.pool and decided.records[planted].oos_ic > 0.02
    assert decided.records[planted].oos_periods >= 100
    assert (
        market.planted[3] in decided.retired and "not above" in decided.retired[market.planted[3]]
    )
    assert "no longer evaluates" in decided.retired["ts_zscore(NOT_A_SERIES, 12)"]
    # a retired member's record is kept with the reason (what storage writes)
    assert decided.records[market.planted[3]].oos_ic <= 0
    assert decided.entered == {}  # nothing new was admitted
    # the member's weight is its record, and the tilt follows its signal
    assert decided.pool[planted] == pytest.approx(1.0)
    assert decided.signal and np.isfinite(list(decided.signal.values())).all()


def test_a_new_admission_enters_unless_it_repeats_a_member(market):
    entered = datetime(2005, 12, 20, tzinfo=UTC)  # too young to be judged by June
    members = [Member(market.planted[0], entered, 1.0)]
    fresh = [market.planted[0], market.planted[1], "MAC09"]
    decided = _decide(market, "2006-06-20", members, fresh, scores=[5.0, 4.0, 3.0])
    assert market.planted[0] in decided.probation and market.planted[0] not in decided.entered
    assert set(decided.entered) <= {market.planted[1], "MAC09"} and decided.entered
    assert all(sign == 1.0 for sign in decided.entered.values())
    assert decided.records[market.planted[0]].oos_periods < 12


def test_members_are_not_evicted_for_their_correlation_with_each_other(market):
    """Correlation gates entry: a relative of a member is not admitted, but two members
    (their correlation drifted up as the window moved) both stay."""
    planted = market.planted[2]
    relative = f"2 * {planted}"  # the same signal: correlation 1
    older = Member(planted, datetime(2004, 6, 21, tzinfo=UTC), 1.0)
    younger = Member(relative, datetime(2005, 6, 20, tzinfo=UTC), 1.0)
    decided = _decide(market, "2006-06-20", [older, younger])
    assert decided.retired == {}
    assert {planted, relative} <= set(decided.pool) | set(decided.probation)
    fresh = _decide(market, "2006-06-20", [older], [relative], scores=[9.0])
    assert fresh.entered == {} and relative not in fresh.probation


def test_an_alpha_is_traded_only_once_its_own_record_confirms_it(market):
    """Probation: new admissions and members with fewer than ``probation`` periods of
    record, or a record at or below ``retire_below``, are held with no weight."""
    young = Member(market.planted[0], datetime(2006, 3, 20, tzinfo=UTC), 1.0)
    proven = Member(market.planted[2], datetime(2005, 6, 20, tzinfo=UTC), 1.0)
    reversed_ = Member(market.planted[3], datetime(2005, 6, 20, tzinfo=UTC), -1.0)
    decided = _decide(market, "2006-06-20", [young, proven, reversed_], ["MAC09"], scores=[3.0])
    records = decided.records
    assert records[young.formula].oos_periods < 6 <= records[proven.formula].oos_periods
    assert records[proven.formula].oos_ic > 0 >= records[reversed_.formula].oos_ic
    assert set(decided.pool) == {proven.formula}
    assert set(decided.probation) == {young.formula, reversed_.formula, "MAC09"}
    assert decided.entered == {"MAC09": 1.0}
    # nothing confirmed: the benchmark, with the new members kept
    alone = _decide(market, "2006-06-20", [young], ["MAC09"], scores=[3.0])
    benchmark = _decide(market, "2006-06-20")
    assert alone.pool == {} and alone.entered == {"MAC09": 1.0}
    assert alone.weights == pytest.approx(benchmark.weights)
    assert set(alone.probation) == {young.formula, "MAC09"}
