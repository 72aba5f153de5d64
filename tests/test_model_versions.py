"""Which generator version a request may use, and when the next one is due (pure rules)."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from alphafactory.model_versions import (
    ModelVersion,
    NoEligibleVersion,
    choose_version,
    retraining_due,
    training_schedule,
)

READY = datetime(2030, 1, 1, tzinfo=UTC)


def version(number: int, cutoff: str, *, ready=True, withdrawn=False) -> ModelVersion:
    when = datetime.fromisoformat(cutoff).replace(tzinfo=UTC)
    return ModelVersion(
        generator="",
        version=number,
        cutoff=when,
        trained_until=when,
        strategy_id="s",
        checkpoint=f"v{number}.pt",
        served_model="m",
        ready_at=READY if ready else None,
        withdrawn_at=READY if withdrawn else None,
    )


def at(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=UTC)


VERSIONS = [version(1, "2000-01-01"), version(2, "2001-01-01"), version(3, "2002-01-01")]


def test_a_version_trained_after_the_decision_is_never_chosen():
    # promoted v3 is from after the decision: the newest eligible one answers instead
    assert choose_version(VERSIONS, 3, at("2001-06-30")).version == 2
    assert choose_version(VERSIONS, 3, at("2000-12-31T23:59:59")).version == 1
    # a cutoff equal to the decision time is allowed (trained on data released before)
    assert choose_version(VERSIONS, None, at("2002-01-01")).version == 3
    with pytest.raises(
        NoEligibleVersion, match=r"released by 1999-12-31.*v1 \(cutoff 2000-01-01\)"
    ):
        choose_version(VERSIONS, 1, at("1999-12-31"))


def test_the_promoted_version_wins_when_its_cutoff_allows():
    assert choose_version(VERSIONS, 1, at("2005-01-01")).version == 1
    assert choose_version(VERSIONS, None, at("2005-01-01")).version == 3  # none promoted


def test_withdrawn_and_unserved_versions_are_skipped():
    versions = [version(1, "2000-01-01"), version(2, "2001-01-01", withdrawn=True)]
    assert choose_version(versions, 2, at("2005-01-01")).version == 1
    versions = [version(1, "2000-01-01"), version(2, "2001-01-01", ready=False)]
    assert choose_version(versions, None, at("2005-01-01")).version == 1
    with pytest.raises(ValueError, match="time zone"):
        choose_version(versions, None, datetime(2005, 1, 1))


def test_retraining_is_due_every_n_months_after_the_newest_cutoff():
    assert retraining_due(VERSIONS, 12, at("2002-12-31")) is None
    assert retraining_due(VERSIONS, 12, at("2003-01-01")) == at("2003-01-01")
    # years later (a stack down for long): the latest due date, not the first
    assert retraining_due(VERSIONS, 12, at("2005-07-01")) == at("2005-01-01")
    assert retraining_due(VERSIONS, 6, at("2002-08-15")) == at("2002-07-01")
    assert retraining_due(VERSIONS, 0, at("2030-01-01")) is None  # no rule
    assert retraining_due([], 12, at("2030-01-01")) is None  # nothing trained yet


def test_a_walk_forward_schedule_steps_from_its_first_month():
    schedule = training_schedule(at("1995-01-10"), at("1997-06-30"), 12)
    assert schedule == [at("1995-01-01"), at("1996-01-01"), at("1997-01-01")]
    assert training_schedule(at("1995-03-31"), at("1996-03-02"), 12) == [
        at("1995-03-01"),
        at("1996-03-01"),
    ]
    # the end is exclusive: no model trained for a period with no decision in it
    assert training_schedule(at("1995-03-31"), at("1996-03-01"), 12) == [at("1995-03-01")]
    assert training_schedule(at("1995-03-31"), at("2000-01-01"), 0) == [at("1995-03-01")]
    # the schedule and the production rule agree
    versions = [version(1, "1995-03-01")]
    assert retraining_due(versions, 12, at("1996-03-05")) == at("1996-03-01")


def test_a_retraining_warm_starts_from_the_latest_ready_version_before_its_cutoff():
    from alphafactory.model_versions import warm_start_version

    first, second = version(1, "1995-01-01"), version(2, "1996-01-01")
    third = version(3, "1997-01-01")
    assert warm_start_version([first, second, third], at("1997-01-01")) == second
    assert warm_start_version([third, first, second], at("1996-06-01")) == second
    assert warm_start_version([first, second], at("1995-01-01")) is None  # none before
    withdrawn = version(2, "1996-01-01", withdrawn=True)
    assert warm_start_version([first, withdrawn], at("1997-01-01")) == first
    unready = version(2, "1996-01-01", ready=False)
    assert warm_start_version([first, unready], at("1997-01-01")) == first
