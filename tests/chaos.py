"""Fault injection on the real local stack: a replay of releases through every service
while a seeded schedule kills services (kill -9) and restarts Postgres, Kafka, Redis and
Triton, with malformed and future-dated events mixed in; then invariants over Postgres and
positions compared with a fault-free run of the same releases.

Used by tests/pipeline/test_faults.py (the short version in the test command) and
benchmarks/chaos.py (the long one). The feed behaves as a real one must with a broker whose
log can be lost: it publishes at least once, waiting before each trigger until what it
sent is stored (or dead-lettered) and sending again what the broker lost.
"""

from __future__ import annotations

import contextlib
import json
import os
import random
import shutil
import signal
import threading
import time
import tomllib
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pandas as pd
import psycopg

from alphafactory.events import MacroRelease
from alphafactory.settings import Settings
from alphafactory.strategy import Strategy
from alphafactory.topics import MACRO_RELEASES
from app import stack
from tests.stack_support import isolated_settings, make_state_dir, untrained_generator

SERVICE_FAULTS = tuple(f"kill:{name}" for name in ("release-handler", "generator", "worker"))
SERVICE_FAULTS += tuple(f"kill:{name}" for name in ("allocator", "relay", "reconciler"))
INFRASTRUCTURE_FAULTS = tuple(f"restart:{n}" for n in ("postgres", "kafka", "redis", "triton"))
FAULTS = SERVICE_FAULTS + INFRASTRUCTURE_FAULTS

STRATEGY_TOML = """
id = "chaos"
[universe]
data = "store"
[formulas]
root_kinds = ["macro"]
max_tokens = 8
[alpha]
definition = "hac_tstat >= 0"
# plumbing, not statistics: every candidate that meets the definition is admitted
control = "none"
target = "hac_tstat=3"
training_months = 48
[generation]
candidates = 12
chunk_size = 4
[pool]
probation = 0  # plumbing: traded from admission
size = 4
max_correlation = 0.95
[portfolio]
kind = "long_only"
[triggers]
series = ["M0000", "M0001"]
[rebalance]
min_days_between = 0
"""


@dataclass
class World:
    settings: Settings
    strategy: Strategy
    market: object  # a SyntheticMarket
    start: pd.Timestamp  # the first replayed release time
    replay: list[MacroRelease]  # every release from ``start`` on, in release order

    @property
    def triggers(self) -> list[MacroRelease]:
        return [r for r in self.replay if self.strategy.triggered_by(r.series_id)]


def make_world(
    state_dir: Path,
    market,
    *,
    n_triggers: int,
    strategy_toml: str = STRATEGY_TOML,
    visibility_timeout_s: int = 10,
) -> World:
    """Settings for a stack with every service (fast reconciler), the strategy, and the
    window of the market's releases that holds its last ``n_triggers`` triggers. A task
    unacknowledged ``visibility_timeout_s`` after its delivery is delivered again: short,
    so a killed worker's chunk returns within a test."""
    from producers.releases import release_events
    from producers.replay import triggers_last_in_each_instant

    strategy = Strategy.model_validate(tomllib.loads(strategy_toml))
    strategies_dir = state_dir / "strategies"
    strategies_dir.mkdir(parents=True, exist_ok=True)
    (strategies_dir / f"{strategy.id}.toml").write_text(strategy_toml)
    base = isolated_settings(state_dir)
    pipeline = base.pipeline.model_copy(
        update={
            "services": True,
            "strategies_dir": strategies_dir,
            "poll_interval_s": 0.2,
            "generator_checkpoint": state_dir / "generator.pt",
            "visibility_timeout_s": visibility_timeout_s,
            "reconcile_every_s": 2.0,
            "reconcile_grace_s": 5.0,
            "reconcile_stall_s": 20.0,
        }
    )
    settings = base.model_copy(update={"pipeline": pipeline})
    events = release_events(market.releases)
    triggers = [e for e in events if strategy.triggered_by(e.series_id)]
    start = pd.Timestamp(triggers[-n_triggers].released_at)
    later = [e for e in events if e.released_at >= start]
    replay = triggers_last_in_each_instant(later, lambda e: strategy.triggered_by(e.series_id))
    return World(settings, strategy, market, start, replay)


@contextlib.contextmanager
def running_world(prefix: str, market, *, keep: bool = False, **options) -> Iterator[World]:
    """A started world (:func:`make_world` ``options``) in a new state directory, its
    stack brought down and the directory removed afterwards (unless ``keep``)."""
    state = make_state_dir(prefix)
    world = make_world(state, market, **options)
    try:
        start_world(world)
        yield world
    finally:
        if not keep:
            stack.down(world.settings)
            shutil.rmtree(state, ignore_errors=True)


def start_world(world: World) -> None:
    """Generator checkpoint served by Triton, the stack with its services, and the history
    before the window."""
    from inference.export import export_repository
    from inference.repository import ServingOptions
    from inference.training import load_checkpoint
    from storage.loading import load_panel, load_releases

    checkpoint = world.settings.pipeline.generator_checkpoint
    untrained_generator(world.market.panel, context=8, d_model=16, path=checkpoint)
    # served by Triton from the start, as after `alphafactory demo`: its restarts are faults
    serving = ServingOptions(model_name=world.settings.triton.generator_model, instances="cpu")
    export_repository(load_checkpoint(checkpoint), world.settings.triton.repository, serving)
    stack.up(world.settings)
    history = world.market.releases[world.market.releases["released_at"] < world.start]
    with psycopg.connect(world.settings.postgres.dsn("app"), autocommit=True) as conn:
        load_panel(conn, world.market.panel)
        load_releases(conn, history)


class Injector:
    """Applies faults by name: kill -9 a service's process (its supervisor restarts it), or
    restart an infrastructure component (the local Kafka loses its log doing so)."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.applied: list[tuple[float, str]] = []
        self._one_at_a_time = threading.Lock()  # two restarts must not race on pid files

    def apply(self, fault: str) -> None:
        with self._one_at_a_time:
            self._apply(fault)

    def _apply(self, fault: str) -> None:
        kind, name = fault.split(":")
        if kind == "kill":
            supervision = stack.service_process(name).supervision(stack.stack_paths(self.settings))
            pid = supervision.get("child_pid")
            # it may have just died by itself: then the supervisor has it in hand already
            with contextlib.suppress(ProcessLookupError, TypeError):
                os.kill(pid, signal.SIGKILL)
        else:
            stack.restart(self.settings, [name])
        self.applied.append((time.monotonic(), fault))


def fault_plan(rng: random.Random, n_faults: int, n_triggers: int) -> list[tuple[float, str]]:
    """(moment, fault) in replay order: every kind at least once, the rest drawn at random.
    A moment ``k + f`` is the fraction ``f`` of the pause after the ``k``-th trigger, while
    its request is being generated, evaluated and allocated; moments are uniform over the
    replay whatever its speed."""
    faults = list(FAULTS) * (n_faults // len(FAULTS)) + rng.sample(FAULTS, n_faults % len(FAULTS))
    rng.shuffle(faults)
    return sorted((rng.uniform(0, n_triggers), fault) for fault in faults)


def bad_events(rng: random.Random, count: int, now: datetime) -> list[tuple[str, bytes]]:
    """(key, value) of events the release handler must refuse: malformed, and dated in
    the future (a mistyped timestamp)."""
    made = []
    for k in range(count):
        token = f"bad-{rng.getrandbits(48):012x}"
        if k % 3 == 0:
            value = f'{{"event_id": "{token}", not json'.encode()
        elif k % 3 == 1:
            value = json.dumps({"event_id": token, "series_id": "M0000"}).encode()
        else:
            future = (now + timedelta(days=3650)).isoformat()
            release = {"event_id": token, "series_id": "M0000", "period": "2030-01-01"}
            release |= {"value": 1.0, "released_at": future, "schema_version": 1}
            value = json.dumps(release).encode()
        made.append(("M0000", value))
    return made


@dataclass
class Feed:
    """Publishes at least once: before each trigger it waits for what it sent to be
    stored (or dead-lettered), sending again what a broker restart lost."""

    settings: Settings
    resend_after_s: float = 15.0
    timeout_s: float = 300.0
    sent: list[tuple[str, bytes]] = field(default_factory=list)
    unsettled: list[tuple[str, bytes]] = field(default_factory=list)

    def publish(self, records: list[tuple[str, bytes]]) -> None:
        until_it_works(lambda: self._send(records))
        self.sent += records
        self.unsettled += records

    def settle(self) -> None:
        deadline, resend_at = time.monotonic() + self.timeout_s, time.monotonic()
        resend_at += self.resend_after_s
        while self.unsettled:
            missing = until_it_works(lambda: self._missing(self.unsettled))
            if not missing:
                break
            if time.monotonic() > deadline:
                raise AssertionError(f"{len(missing)} events neither stored nor dead-lettered")
            if time.monotonic() > resend_at:
                until_it_works(lambda m=missing: self._send(m))
                resend_at = time.monotonic() + self.resend_after_s
            time.sleep(0.3)
        self.unsettled = []

    def _send(self, records) -> None:
        from messaging.publisher import KafkaPublisher, OutgoingRecord

        with KafkaPublisher.open(self.settings.kafka, timeout_s=10) as publisher:
            publisher.publish_many(OutgoingRecord(MACRO_RELEASES, k, v) for k, v in records)

    def _missing(self, records) -> list[tuple[str, bytes]]:
        with psycopg.connect(self.settings.postgres.dsn("app"), connect_timeout=3) as conn:
            stored = {r[0] for r in conn.execute("SELECT event_id FROM core.macro_observations")}
            lettered = {bytes(r[0]) for r in conn.execute("SELECT payload FROM core.dead_letters")}
        return [
            (key, value)
            for key, value in records
            if value not in lettered and event_id_of(value) not in stored
        ]


def event_id_of(value: bytes) -> str | None:
    try:
        return json.loads(value)["event_id"]
    except (ValueError, KeyError, TypeError):
        return None


def until_it_works(call, timeout_s: float = 120.0):
    """``call()`` retried while the stack is restarting something."""
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            return call()
        except Exception:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.5)


@dataclass
class Run:
    injector: Injector
    bad: list[tuple[str, bytes]]
    seconds: float = 0.0


def run_with_faults(
    world: World, *, seed: int, n_faults: int, n_bad: int, pace_s: float = 2.0
) -> Run:
    """Replay ``world`` (a pause of ``pace_s`` after each trigger, so the work overlaps
    the faults) while a thread applies the seeded fault plan at its moments of the replay,
    some in the middle of a batch; returns what was injected."""
    rng = random.Random(seed)
    plan = fault_plan(rng, n_faults, len(world.triggers))
    bad = bad_events(rng, n_bad, datetime.now(UTC))
    bad_at = dict(zip(rng.sample(range(len(world.replay)), len(bad)), bad, strict=True))
    from app.wiring import release_settling

    decided = release_settling(world.settings).decided
    feed, injector, started = Feed(world.settings), Injector(world.settings), time.monotonic()
    progress, instant_triggers = Progress(), []
    faults = threading.Thread(target=_apply_in_time, args=(injector, plan, progress, pace_s))
    faults.start()
    try:
        for step, release in enumerate(world.replay):
            trigger = world.strategy.triggered_by(release.series_id)
            if trigger:
                feed.settle()  # every earlier release stored: the decision sees all of them
                # and the decisions on the triggers of its instant never see this one
                instant_triggers = [
                    t for t in instant_triggers if t.released_at == release.released_at
                ]
                if instant_triggers:
                    decided(instant_triggers)
                instant_triggers.append(release)
            feed.publish([(release.key(), release.to_json())])
            if step in bad_at:
                feed.publish([bad_at[step]])
            if trigger:
                progress.triggered()
                time.sleep(pace_s)
    finally:
        progress.finished()
        faults.join()
    feed.settle()
    return Run(injector, bad, time.monotonic() - started)


class Progress:
    """When each trigger of the replay was published, for the fault thread to follow."""

    def __init__(self) -> None:
        self.published: list[float] = []
        self.done = False
        self._changed = threading.Condition()

    def triggered(self) -> None:
        with self._changed:
            self.published.append(time.monotonic())
            self._changed.notify_all()

    def finished(self) -> None:
        with self._changed:
            self.done = True
            self._changed.notify_all()

    def published_at(self, k: int) -> float | None:
        """When the ``k``-th trigger went out (None: the replay ended before it)."""
        with self._changed:
            self._changed.wait_for(lambda: len(self.published) > k or self.done)
            return self.published[k] if len(self.published) > k else None


def _apply_in_time(injector: Injector, plan, progress: Progress, pace_s: float) -> None:
    for moment, fault in plan:
        published = progress.published_at(int(moment))
        if published is None:  # the replay stopped early (it failed): nothing left to hit
            return
        time.sleep(max(0.0, published + (moment % 1) * pace_s - time.monotonic()))
        injector.apply(fault)
