"""Release-to-positions latency through the live pipeline (issue 5, section 7).

    .venv/bin/python benchmarks/pipeline_latency.py [--candidates 100 1000 10000]
        [--repeats 3] [--workers 1 2] [--series 500] [--quick]

Starts its own local stack on free ports with every service (release handler, generator,
allocator, relay, Celery workers) and the generator exported to its Triton (an untrained
network of the README's size: its formulas are valid, which is all latency needs), stores
a generated market (monthly, 20 assets, 360
months, ``--series`` macro series released point-in-time) and a small generator, then for
each candidate count publishes trigger releases one at a time and times each from the
publish to the positions committed for it. Prints p50/p95 latency and the evaluation rate
(candidates evaluated per second between the end of generation and the last evaluation).
Target: 10,000 candidates generated, evaluated and allocated after one release in under
5 minutes on 2 cores, for a strategy over 500 macro series.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import time
import uuid
from pathlib import Path

import numpy as np
import pandas as pd
import psycopg

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from alphafactory.data import synthetic_market  # noqa: E402
from app import stack  # noqa: E402
from storage.loading import load_panel, load_releases  # noqa: E402
from storage.progress import trigger_status  # noqa: E402
from tests.stack_support import (  # noqa: E402
    make_state_dir,
    months_ending_before_now,
    service_settings,
    untrained_generator,
)

STRATEGY = """id = "latency"
[formulas]
root_kinds = ["macro"]
max_tokens = 12
[alpha]
definition = "hac_tstat >= 2 or hac_tstat <= -2"
training_months = 120
[generation]
candidates = {candidates}
chunk_size = {chunk}
[portfolio]
kind = "long_short"
[triggers]
series = ["M0000"]
[rebalance]
min_days_between = 0
[universe]
data = "store"
"""


def start(state: Path, market, candidates: int, workers: int):
    strategies = state / "strategies"
    strategies.mkdir(parents=True, exist_ok=True)
    chunk = max(50, min(500, candidates // (4 * workers)))
    (strategies / "latency.toml").write_text(STRATEGY.format(candidates=candidates, chunk=chunk))
    settings = service_settings(
        state, strategies_dir=strategies, worker_concurrency=workers, poll_interval_s=0.1
    )
    untrained_generator(
        market.panel, context=12, d_model=64, path=settings.pipeline.generator_checkpoint
    )
    stack.up(settings)
    # the production path: the generator served by Triton, called by the generation service
    from inference.export import export_repository
    from inference.repository import ServingOptions
    from inference.training import load_checkpoint

    serving = ServingOptions(
        model_name=settings.triton.generator_model, instances="cpu", max_batch_size=4096
    )
    export_repository(
        load_checkpoint(settings.pipeline.generator_checkpoint), settings.triton.repository, serving
    )
    stack.restart(settings, ["triton", "generator"])
    with psycopg.connect(settings.postgres.dsn("app"), autocommit=True) as conn:
        load_panel(conn, market.panel)
        load_releases(
            conn, market.releases[market.releases["released_at"] < first_decision(market)]
        )
    return settings


def first_decision(market) -> pd.Timestamp:
    return (pd.Timestamp(market.panel.dates[-24]) + pd.Timedelta(days=12)).tz_localize("UTC")


def one_release(settings, publisher, when: pd.Timestamp, timeout_s: float = 900) -> dict:
    from alphafactory.events import MacroRelease
    from producers.releases import publish_release

    event = MacroRelease(
        event_id=f"latency-{uuid.uuid4().hex[:10]}",
        series_id="M0000",
        period=(when - pd.Timedelta(days=40)).date(),
        value=1.0,
        released_at=when.to_pydatetime(),
    )
    started = time.perf_counter()
    publish_release(publisher, event)
    with psycopg.connect(settings.postgres.dsn("app"), autocommit=True) as conn:
        while time.perf_counter() - started < timeout_s:
            status = trigger_status(conn, "latency", event.event_id)
            if status.allocation_id:
                break
            time.sleep(0.1)
        seconds = time.perf_counter() - started
        # phases from the rows' own timestamps (each a transaction's start, so approximate)
        phases = conn.execute(
            """
            SELECT r.n_candidates,
                   extract(epoch FROM r.generated_at - r.created_at),
                   extract(epoch FROM max(c.evaluated_at) - r.generated_at),
                   extract(epoch FROM a.created_at - max(c.evaluated_at))
            FROM core.generation_requests r JOIN core.request_candidates c USING (request_id)
            JOIN core.allocations a USING (strategy_id, trigger_event_id)
            WHERE r.trigger_event_id = %s
            GROUP BY r.n_candidates, r.generated_at, r.created_at, a.created_at
            """,
            (event.event_id,),
        ).fetchone()
    evaluated, generating, evaluating, allocating = phases or (0, None, None, None)
    return {
        "seconds": seconds,
        "allocated": bool(status.allocation_id),
        "candidates": evaluated,
        "qualified": status.qualified,
        "generation_s": float(generating or 0),
        "evaluation_s": float(evaluating or 0),
        "allocation_s": float(allocating or 0),
        "evaluations_per_s": evaluated / float(evaluating) if evaluating else None,
    }


def run(market, candidates: int, workers: int, repeats: int) -> list[dict]:
    from messaging.publisher import KafkaPublisher

    state, settings = make_state_dir("alphafactory-latency-"), None
    try:
        settings = start(state, market, candidates, workers)
        results = []
        with KafkaPublisher.open(settings.kafka) as publisher:
            for k in range(repeats):
                when = first_decision(market) + pd.DateOffset(months=k)
                results.append(one_release(settings, publisher, when))
        return results
    finally:
        if settings is not None:
            stack.down(settings)
        shutil.rmtree(state, ignore_errors=True)


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--candidates", type=int, nargs="+", default=[100, 1000, 10000])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--workers", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--series", type=int, default=500)
    parser.add_argument("--quick", action="store_true", help="tiny sizes, a smoke test")
    args = parser.parse_args(argv)
    if args.quick:
        args.candidates, args.repeats, args.workers, args.series = [20], 1, [1], 10
    market = synthetic_market(
        n_assets=20,
        n_dates=360,
        n_macro=args.series,
        seed=2,
        frequency="M",
        start=months_ending_before_now(360),
    )
    print(f"market: 20 assets x 360 months, {args.series} macro series; trigger M0000")
    print(
        "candidates  workers  releases  p50 s  p95 s  max s  evaluations/s  qualified"
        "  generate s  evaluate s  allocate s"
    )
    for workers in args.workers:
        for candidates in args.candidates:
            results = run(market, candidates, workers, args.repeats)
            seconds = [r["seconds"] for r in results]
            rates = [r["evaluations_per_s"] for r in results if r["evaluations_per_s"]]
            p50, p95 = np.percentile(seconds, [50, 95])
            rate = f"{np.median(rates):,.0f}" if rates else "-"
            qualified = np.median([r["qualified"] for r in results])
            phases = [
                np.median([r[k] for r in results])
                for k in ("generation_s", "evaluation_s", "allocation_s")
            ]
            print(
                f"{candidates:10,d} {workers:8d} {len(results):9d} {p50:6.1f} {p95:6.1f} "
                f"{max(seconds):6.1f} {rate:>14s} {qualified:10.0f} {phases[0]:11.1f} "
                f"{phases[1]:11.1f} {phases[2]:11.1f}"
            )
            if not all(r["allocated"] for r in results):
                print(json.dumps(results))
                raise SystemExit("a release was not allocated in time")


if __name__ == "__main__":
    main()
