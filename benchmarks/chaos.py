"""The long fault-injection run (issue 12): at least 120 trigger releases through the live
local stack while a seeded schedule applies at least 60 faults (kill -9 of each service,
restarts of Postgres, Kafka with its log lost, Redis and Triton) with malformed and
future-dated events mixed in; then the invariants over Postgres and the positions against
a fault-free run (tests/chaos_checks.py), then a burst of 1,000 releases with each
service's resident memory measured before and after.

    .venv/bin/python benchmarks/chaos.py [--triggers 120] [--faults 60] [--seed 1]

Prints the figures; the recorded run is in benchmarks/CHAOS.md. The short version of the
same run is tests/pipeline/test_faults.py, in the test command.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
import uuid
from collections import Counter
from datetime import timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from alphafactory.data import synthetic_market  # noqa: E402
from app import stack  # noqa: E402
from app.services import SERVICES  # noqa: E402
from tests.chaos import Feed, run_with_faults, running_world  # noqa: E402
from tests.chaos_checks import (  # noqa: E402
    fault_free_positions,
    invariants,
    positions,
    wait_until_finished,
)
from tests.stack_support import months_ending_before_now  # noqa: E402


def resident_mib(world) -> dict[str, float]:
    """Each service's resident memory (its own process, not its supervisor), MiB."""
    paths = stack.stack_paths(world.settings)
    found = {}
    for declared in SERVICES:
        pid = stack.service_process(declared.name).supervision(paths).get("child_pid")
        try:
            status = Path(f"/proc/{pid}/status").read_text()
        except (OSError, TypeError):
            continue
        kib = next(int(line.split()[1]) for line in status.splitlines() if line[:6] == "VmRSS:")
        found[declared.name] = round(kib / 1024, 1)
    return found


def differing(actual: dict, expected: dict) -> dict[str, str]:
    """trigger -> how its weights differ from the fault-free run's (empty when identical)."""
    found = {}
    for trigger in sorted(set(actual) | set(expected)):
        got, want = actual.get(trigger, {}), expected.get(trigger, {})
        if got == want:
            continue
        if set(got) != set(want):
            found[trigger] = f"assets {sorted(got)} vs {sorted(want)}"
        else:
            gap = max(abs(got[a] - want[a]) for a in want)
            found[trigger] = f"max |weight difference| {gap:.3g}"
    return found


def burst(world, count: int) -> float:
    """``count`` releases of the series no strategy triggers on (new vintages, one feed
    burst); returns the seconds until all are stored."""
    last = world.replay[-1]
    quiet = [s for s in ("M0002", "M0003") if not world.strategy.triggered_by(s)]
    feed, started = Feed(world.settings, timeout_s=900), time.monotonic()
    records = []
    for k in range(count):
        release = last.model_copy(
            update={
                "event_id": f"burst-{uuid.uuid4().hex[:12]}",
                "series_id": quiet[k % len(quiet)],
                "released_at": last.released_at + timedelta(seconds=k + 1),
                "value": float(k),
            }
        )
        records.append((release.key(), release.to_json()))
    feed.publish(records)
    feed.settle()
    return time.monotonic() - started


def measure(world, args) -> dict:
    """The run with faults, its checks, then the burst: the figures of CHAOS.md."""
    report: dict = {"triggers": len(world.triggers), "releases": len(world.replay)}
    report["rss_mib_at_start"] = resident_mib(world)
    run = run_with_faults(world, seed=args.seed, n_faults=args.faults, n_bad=args.bad)
    outcomes = wait_until_finished(world, timeout_s=1800)
    report["replay_s"] = round(run.seconds, 1)
    report["faults"] = dict(Counter(fault for _, fault in run.injector.applied))
    report["outcomes"] = dict(Counter(v.split(":")[0] for v in outcomes.values()))
    report["violations"] = invariants(world, run)
    expected = fault_free_positions(world, database=f"chaos_ref_{uuid.uuid4().hex[:8]}")
    actual = positions(world.settings, world.strategy.id)
    report["positions_identical"] = actual == expected
    report["positions_differing"] = differing(actual, expected)
    report["positions_compared"] = len(expected)
    report["rss_mib_before_burst"] = resident_mib(world)
    report["burst_releases"] = args.burst
    report["burst_stored_s"] = round(burst(world, args.burst), 1)
    report["rss_mib_after_burst"] = resident_mib(world)
    report["all_up"] = stack.status(world.settings)["up"]
    return report


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--triggers", type=int, default=120)
    parser.add_argument("--faults", type=int, default=60)
    parser.add_argument("--bad", type=int, default=20)
    parser.add_argument("--burst", type=int, default=1000)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--months", type=int, default=240, help="synthetic market length")
    parser.add_argument("--keep", action="store_true", help="leave the stack up to inspect")
    args = parser.parse_args()
    start = months_ending_before_now(args.months)
    market = synthetic_market(
        n_assets=6, n_dates=args.months, n_macro=4, seed=21, frequency="M", start=start
    )
    prefix, options = "alphafactory-chaos-bench-", {"n_triggers": args.triggers}
    with running_world(prefix, market, keep=args.keep, **options) as world:
        report = measure(world, args)
        if args.keep:
            report["state_dir"] = str(world.settings.state_path)
    print(json.dumps(report, indent=1))
    good = not report.get("violations") and report.get("positions_identical")
    return 0 if good and report.get("all_up") else 1


if __name__ == "__main__":
    sys.exit(main())
