"""What a fault-injection run (tests/chaos.py) must leave behind: every trigger ended once,
nothing doubled or lost, bad events in the dead letters only, and positions bit-identical
to a fault-free run of the same releases through the same pipeline code."""

from __future__ import annotations

import threading
import time
from datetime import UTC, datetime

import psycopg

from alphafactory.settings import Settings
from tests.chaos import Run, World, event_id_of, until_it_works


def wait_until_finished(world: World, timeout_s: float = 300.0) -> dict[str, str]:
    """trigger event id -> "allocated" or "failed: reason", once every trigger ended."""
    ids = [t.event_id for t in world.triggers]
    deadline = time.monotonic() + timeout_s
    while True:
        outcome = until_it_works(lambda: _outcomes(world.settings, world.strategy.id, ids))
        if len(outcome) == len(ids) or time.monotonic() > deadline:
            return outcome
        time.sleep(1.0)


def _outcomes(settings: Settings, strategy_id: str, ids: list[str]) -> dict[str, str]:
    with psycopg.connect(settings.postgres.dsn("app"), connect_timeout=3) as conn:
        allocated = conn.execute(
            "SELECT trigger_event_id FROM core.allocations "
            "WHERE strategy_id = %s AND trigger_event_id = ANY(%s)",
            (strategy_id, ids),
        ).fetchall()
        failed = conn.execute(
            "SELECT trigger_event_id, failure FROM core.generation_requests "
            "WHERE strategy_id = %s AND trigger_event_id = ANY(%s) AND failed_at IS NOT NULL",
            (strategy_id, ids),
        ).fetchall()
    return {t: "allocated" for (t,) in allocated} | {t: f"failed: {why}" for t, why in failed}


def invariants(world: World, run: Run) -> list[str]:
    """What must hold after any faults (each broken one, in words)."""
    problems: list[str] = []
    ids = [t.event_id for t in world.triggers]
    with psycopg.connect(world.settings.postgres.dsn("app")) as conn:
        rows = conn.execute(
            "SELECT r.trigger_event_id, count(a.allocation_id), bool_or(r.failed_at IS NOT NULL) "
            "FROM core.generation_requests AS r LEFT JOIN core.allocations AS a "
            "ON a.strategy_id = r.strategy_id AND a.trigger_event_id = r.trigger_event_id "
            "WHERE r.strategy_id = %s GROUP BY r.trigger_event_id",
            (world.strategy.id,),
        ).fetchall()
        ended = {t: (n, failed) for t, n, failed in rows}
        for trigger in ids:
            allocations, failed = ended.get(trigger, (0, False))
            if (allocations == 1) == bool(failed):
                problems.append(f"trigger {trigger}: {allocations} allocation(s), failed={failed}")
        doubled = conn.execute(
            "SELECT request_id, formula_hash, count(*) FROM core.request_candidates "
            "GROUP BY 1, 2 HAVING count(*) > 1"
        ).fetchall()
        problems += [f"candidate {r[1][:12]} of {r[0]} recorded {r[2]} times" for r in doubled]
        unevaluated = conn.execute(
            "SELECT count(*) FROM core.request_candidates WHERE evaluated_at IS NULL"
        ).fetchone()[0]
        if unevaluated:
            problems.append(f"{unevaluated} candidate(s) never evaluated")
        stored = {r[0] for r in conn.execute("SELECT event_id FROM core.macro_observations")}
        lettered = {bytes(r[0]) for r in conn.execute("SELECT payload FROM core.dead_letters")}
    for _, value in run.bad:
        if value not in lettered:
            problems.append(f"bad event not dead-lettered: {value[:60]!r}")
        if event_id_of(value) in stored:
            problems.append(f"bad event stored: {value[:60]!r}")
    missing = [r.event_id for r in world.replay if r.event_id not in stored]
    problems += [f"release {event_id} not stored" for event_id in missing]
    return problems


def positions(settings: Settings, strategy_id: str) -> dict[str, dict[str, float]]:
    """trigger event id -> {asset: weight} of every allocation of the strategy."""
    with psycopg.connect(settings.postgres.dsn("app")) as conn:
        rows = conn.execute(
            "SELECT a.trigger_event_id, p.asset, p.weight FROM core.allocations AS a "
            "JOIN core.positions AS p USING (allocation_id) WHERE a.strategy_id = %s",
            (strategy_id,),
        ).fetchall()
    found: dict[str, dict[str, float]] = {}
    for trigger, asset, weight in rows:
        found.setdefault(trigger, {})[asset] = weight
    return found


def fault_free_positions(world: World, database: str) -> dict[str, dict[str, float]]:
    """The same releases through the same pipeline code, in process and in order (each
    trigger decided before the next release is stored), on a fresh database of the same
    server: what the faulty run must reproduce bit for bit."""
    from consumers.allocation import AllocationContext, allocate_request
    from consumers.evaluation import EvaluationContext, evaluate_chunk
    from consumers.generation import GenerationContext, handle_request
    from consumers.release_handler import handle_release, release_request
    from inference.sampling import InProcessPolicy
    from inference.training import load_checkpoint
    from storage.admin import bootstrap_database, prepare_database
    from storage.loading import load_panel, load_releases

    pg = world.settings.postgres.model_copy(update={"database": database})
    bootstrap_database(pg)
    prepare_database(pg)
    settings = world.settings.model_copy(update={"postgres": pg})
    strategies = {world.strategy.id: world.strategy}
    checkpoint = load_checkpoint(world.settings.pipeline.generator_checkpoint)
    evaluation = EvaluationContext(strategies)
    with psycopg.connect(pg.dsn("app"), autocommit=True) as conn:
        load_panel(conn, world.market.panel)
        load_releases(
            conn, world.market.releases[world.market.releases["released_at"] < world.start]
        )

        def dispatch(request_id, hashes, chunk_size) -> int:
            for k in range(0, len(hashes), chunk_size):
                evaluate_chunk(conn, evaluation, request_id, hashes[k : k + chunk_size])
            allocate_request(conn, generation.allocation, request_id)
            return 1

        generation = GenerationContext(
            strategies,
            InProcessPolicy(checkpoint.model),
            checkpoint.vocab,
            1.0,
            dispatch,
            AllocationContext(strategies),
            threading.Event(),
        )
        now = datetime.now(UTC)
        for release in world.replay:  # each decision sees the releases sent before it
            handle_release(conn, release.to_json(), [world.strategy], now=now)
            if world.strategy.triggered_by(release.series_id):
                request = release_request(world.strategy, release, now=now)
                handle_request(conn, generation, request)
    return positions(settings, world.strategy.id)
