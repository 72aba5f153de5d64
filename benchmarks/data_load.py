"""Bulk market-data load through `alphafactory data load --panel` (issue 13, performance).

    .venv/bin/python benchmarks/data_load.py [--assets 3000] [--days 2520] [--reference 150]

Starts its own local stack on free ports, writes a generated Parquet panel (``--assets`` x
``--days`` x six fields: open, high, low, close, volume, returns), then times, as a user
would, the whole `alphafactory data load --panel FILE` process: a first load into the
empty store and a second load of the same file (which must store nothing). The reference,
measured in the same run on the same server, is the row-per-observation path
(``storage.market.record_market_observations``: one indexed row each, as market.data events
land) on the first ``--reference`` assets, as observations per second. Target: the full
size in under 60 s on 2 cores.

Then the market-data handler: ``--events`` market.data events (one asset-day each, six
fields) published to a fresh topic and consumed by the handler's own loop
(``consumers.market_data_handler.market_data_loop``, batches of 500, one strategy
triggered per period) from the first poll to the last commit. Target: 20,000
observations/s or more.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import psycopg

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from app import stack  # noqa: E402
from benchmarks.factor_eval_cli import cpu_model  # noqa: E402
from storage.market import panel_to_observations, record_market_observations  # noqa: E402
from tests.stack_support import isolated_settings, make_state_dir, settings_env  # noqa: E402

FIELDS = ("open", "high", "low", "close", "volume", "returns")


def write_panel(path: Path, n_assets: int, n_days: int) -> pd.DataFrame:
    """A long Parquet panel of business days ending before today, prices a random walk."""
    rng = np.random.default_rng(13)
    end = pd.Timestamp.now().normalize() - pd.offsets.BDay(5)
    days = pd.bdate_range(end=end, periods=n_days)
    returns = rng.normal(0.0003, 0.02, (n_days, n_assets))
    close = 50 * np.cumprod(1 + returns, axis=0)
    spread = np.abs(rng.normal(0, 0.01, (n_days, n_assets)))
    columns = {
        "open": close * (1 + rng.normal(0, 0.005, close.shape)),
        "high": close * (1 + spread),
        "low": close * (1 - spread),
        "close": close,
        "volume": rng.lognormal(13, 1, close.shape).round(),
        "returns": returns,
    }
    frame = pd.DataFrame(
        {
            "date": np.repeat(days.to_numpy(), n_assets),
            "asset": np.tile([f"S{k:05d}" for k in range(n_assets)], n_days),
            **{name: columns[name].reshape(-1) for name in FIELDS},
        }
    )
    frame.to_parquet(path, index=False)
    return frame


def timed_load(path: Path, env: dict) -> tuple[float, str]:
    started = time.perf_counter()
    done = subprocess.run(
        [str(ROOT / ".venv" / "bin" / "alphafactory"), "data", "load", "--panel", str(path)],
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    seconds = time.perf_counter() - started
    if done.returncode != 0:
        raise SystemExit(f"data load failed ({done.returncode}): {done.stderr.strip()}")
    return seconds, done.stdout.strip()


def reference_rate(dsn: str, frame: pd.DataFrame, n_assets: int) -> tuple[float, int]:
    """Observations/s of the row-per-observation insert on the first ``n_assets`` assets."""
    names = sorted(frame["asset"].unique())[:n_assets]
    part = frame[frame["asset"].isin(names)].copy()
    part["asset"] = "ref_" + part["asset"]
    part["date"] = part["date"].dt.date
    rows = panel_to_observations(part, available_at=pd.Timestamp("2000-01-01", tz="UTC"))
    with psycopg.connect(dsn, autocommit=True) as conn:
        started = time.perf_counter()
        with conn.transaction():
            stored = record_market_observations(conn, observations=rows)
        seconds = time.perf_counter() - started
    return stored / seconds, stored


def handler_rate(settings, n_events: int) -> tuple[float, float, int]:
    """Observations/s of the market-data handler consuming ``n_events`` events: from the
    first batch to the last commit (steady state: the consumer group's join, seconds
    on this broker, happens once per process), and of the batch handler's own time."""
    import json
    import uuid

    from alphafactory.strategy import Strategy
    from consumers import market_data_handler
    from consumers.market_data_handler import market_data_loop
    from messaging.admin import ensure_topics
    from messaging.publisher import KafkaPublisher, OutgoingRecord
    from storage.db import open_pool

    tag = uuid.uuid4().hex[:6]
    topic, dead = f"bench-market-{tag}", f"bench-dead-{tag}"
    ensure_topics(settings.kafka, [topic, dead], partitions=1)
    assets = [f"E{k:04d}" for k in range(500)]
    days = pd.bdate_range(
        end=pd.Timestamp.now().normalize() - pd.offsets.BDay(2), periods=-(-n_events // len(assets))
    )
    rng = np.random.default_rng(7)
    records = []
    for day in days:
        at = (day + pd.Timedelta(hours=16, minutes=15)).tz_localize("America/New_York")
        for asset in assets[: n_events - len(records)]:
            fields = dict(zip(FIELDS, rng.normal(1, 0.1, len(FIELDS)).tolist(), strict=True))
            value = {
                "event_id": f"{tag}:{asset}:{day.date()}",
                "asset": asset,
                "date": str(day.date()),
                "fields": fields,
                "available_at": at.isoformat(),
                "schema_version": 1,
            }
            records.append(OutgoingRecord(topic, asset, json.dumps(value).encode()))
    strategy = Strategy.model_validate(
        {
            "id": "bench-daily",
            "universe": {"data": "store", "assets": assets},
            "triggers": {"market": "period_close"},
        }
    )
    with KafkaPublisher.open(settings.kafka) as publisher:
        publisher.publish_many(records)
        pool = open_pool(settings.postgres.dsn("app"), min_size=1, max_size=2, name="bench")
        try:
            loop = market_data_loop(
                settings.kafka,
                pool=pool,
                publisher=publisher,
                strategies=[strategy],
                topic=topic,
                group_id=f"bench-{tag}",
                dead_letter_topic=dead,
                max_records=len(records),
            )
            calls: list[tuple[float, float]] = []
            handle = market_data_handler.handle_market_data

            def timed(*args, **kwargs):
                started = time.perf_counter()
                try:
                    return handle(*args, **kwargs)
                finally:
                    calls.append((started, time.perf_counter()))

            market_data_handler.handle_market_data = timed
            try:
                stats = loop.run()
            finally:
                market_data_handler.handle_market_data = handle
            ended = time.perf_counter()
        finally:
            pool.close()
    if stats.handled != len(records):
        raise SystemExit(f"the handler applied {stats.handled} of {len(records)} events")
    observations = len(records) * len(FIELDS)
    in_handler = sum(end - start for start, end in calls)
    return observations / (ended - calls[0][0]), observations / in_handler, len(records)


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--assets", type=int, default=3000)
    parser.add_argument("--days", type=int, default=2520)
    parser.add_argument("--reference", type=int, default=150, help="assets of the reference")
    parser.add_argument("--events", type=int, default=20_000, help="market.data events")
    args = parser.parse_args(argv)
    state_dir = make_state_dir("alphafactory-bench-load-")
    settings = isolated_settings(state_dir)
    try:
        stack.up(settings)
        path = state_dir / "panel.parquet"
        frame = write_panel(path, args.assets, args.days)
        env = settings_env(settings)
        load_before = os.getloadavg()
        first, first_out = timed_load(path, env)
        second, second_out = timed_load(path, env)
        rate, reference_rows = reference_rate(settings.postgres.dsn("app"), frame, args.reference)
        observations = args.assets * args.days * len(FIELDS)
        print(
            f"CPU {cpu_model()}, {os.cpu_count()} cores; load average {load_before[0]:.2f} "
            f"before; {args.assets:,} assets x {args.days:,} days x {len(FIELDS)} fields = "
            f"{observations:,} observations, Parquet {path.stat().st_size / 2**20:,.0f} MiB"
        )
        print(f"  first load   {first:7.1f} s  {observations / first:12,.0f} obs/s  ({first_out})")
        print(f"  reload       {second:7.1f} s  ({second_out})")
        print(
            f"  reference: row inserts {rate:12,.0f} obs/s ({reference_rows:,} rows); "
            f"the bulk load is {observations / first / rate:.1f}x faster"
        )
        print(f"  target: first load under 60 s: {'met' if first < 60 else 'NOT met'}")
        steady, in_handler, events = handler_rate(settings, args.events)
        print(
            f"  market-data handler: {events:,} events x {len(FIELDS)} fields, "
            f"{steady:,.0f} obs/s first batch to last commit, {in_handler:,.0f} obs/s in "
            f"the batch handler (target 20,000: {'met' if steady >= 20_000 else 'NOT met'})"
        )
    finally:
        stack.down(settings)
        shutil.rmtree(state_dir, ignore_errors=True)


if __name__ == "__main__":
    main()
