"""Fault injection on the real local stack, the short version of benchmarks/chaos.py: 12
trigger releases replayed through every service while each service is killed with
SIGKILL once and Postgres, Kafka (its in-memory log lost), Redis and Triton are each
restarted once, at seeded random moments, with malformed and future-dated events mixed
in. Then: every trigger ends in exactly one allocation, nothing is doubled or lost, the bad
events are in the dead letters and nowhere else, the positions are bit-identical to a
fault-free run of the same releases, and every service is up."""

from __future__ import annotations

import uuid
from pathlib import Path

import pytest

from alphafactory.data import synthetic_market
from alphafactory.settings import LOCAL_DEFAULT_PASSWORDS
from app import stack
from tests.chaos import FAULTS, run_with_faults, running_world
from tests.chaos_checks import (
    fault_free_positions,
    invariants,
    positions,
    wait_until_finished,
)

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def world():
    market = synthetic_market(n_assets=6, n_dates=120, n_macro=4, seed=21, frequency="M")
    with running_world("alphafactory-chaos-", market, n_triggers=12) as started:
        yield started


@pytest.mark.timeout(900)
def test_every_fault_is_survived_and_nothing_is_lost_doubled_or_changed(world):
    run = run_with_faults(world, seed=11, n_faults=len(FAULTS), n_bad=6)
    assert sorted(fault for _, fault in run.injector.applied) == sorted(FAULTS)
    outcomes = wait_until_finished(world)
    assert outcomes == {t.event_id: "allocated" for t in world.triggers}
    assert invariants(world, run) == []
    expected = fault_free_positions(world, database=f"fault_free_{uuid.uuid4().hex[:8]}")
    assert positions(world.settings, world.strategy.id) == expected  # bit for bit
    status = stack.status(world.settings)
    assert status["up"], {k: v for k, v in status.items() if isinstance(v, dict) and not v["up"]}


def test_no_password_appears_in_any_log(world):
    logs = list(Path(world.settings.state_path, "logs").glob("*.log"))
    assert len(logs) >= 10
    for log in logs:
        text = log.read_text(errors="replace")
        for role, password in LOCAL_DEFAULT_PASSWORDS.items():
            assert password not in text, f"the {role} password is in {log.name}"
