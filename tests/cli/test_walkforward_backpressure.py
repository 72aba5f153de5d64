"""The walk-forward driver's order of steps (in-memory fakes for the stack's calls): the
next version trains while the period before is decided, and a period is replayed only
once the period before it is decided, so at most one period's decisions are queued."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

from alphafactory.events import MacroRelease
from app import walkforward_run
from app.walkforward_run import Plan, Progress, run_periods


class Strategy:
    """What run_periods reads of a strategy."""

    class triggers:  # noqa: N801 - mirrors Strategy.triggers
        market = False

    @staticmethod
    def triggered_by(series_id: str) -> bool:
        return True


def release(when: datetime) -> MacroRelease:
    return MacroRelease(
        event_id=f"release-{when:%Y-%m}",
        series_id="CPI",
        period=when.date(),
        value=1.0,
        released_at=when,
    )


def test_a_period_is_replayed_only_after_the_period_before_is_decided(monkeypatch):
    calls: list[tuple] = []
    decided: set[str] = set()
    monkeypatch.setattr(
        walkforward_run, "_period_events", lambda _s, _st, since, _until: [release(since)]
    )
    monkeypatch.setattr(
        walkforward_run,
        "ensure_version",
        lambda _s, _p, _st, cutoff: calls.append(("train", f"{cutoff:%Y}")),
    )
    monkeypatch.setattr(walkforward_run, "_decided", lambda _s, ids: all(i in decided for i in ids))

    def wait_decided(_settings, ids):
        calls.append(("wait", *ids))
        decided.update(ids)  # the pipeline decides what was replayed

    def replay(_settings, events):
        calls.append(("replay", *(e.event_id for e in events)))

    monkeypatch.setattr(walkforward_run, "_wait_decided", wait_decided)
    monkeypatch.setattr(walkforward_run, "_replay", replay)
    plan = Plan(
        strategy_id="s",
        first=datetime(2001, 1, 1, tzinfo=UTC),
        last=datetime(2004, 1, 1, tzinfo=UTC),
        out=Path("unused"),
        variants=(),
        retrain_every=12,
    )
    progress = Progress()
    run_periods(None, plan, Strategy(), progress=progress)
    assert calls == [
        ("train", "2001"),
        ("wait",),
        ("replay", "release-2001-01"),
        ("train", "2002"),  # trains while 2001 is decided
        ("wait", "release-2001-01"),
        ("replay", "release-2002-01"),
        ("train", "2003"),
        ("wait", "release-2002-01"),
        ("replay", "release-2003-01"),
        ("wait", "release-2003-01"),  # the last decisions
    ]
    assert set(progress.seconds) == {"training", "backlog", "replay", "last_decisions"}
