"""A user's own data through the whole live pipeline, every service running as `stack up`
starts them: a panel file (with a group column) and a release file loaded with `data
load`, two strategies on them (one on a group of the universe, triggered by a release;
one triggered by market data), the generator trained from the store with `model train
--strategy` and served; then a release and a period of market data, published with kcat,
each become positions for their strategy's universe."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import numpy as np
import pandas as pd
import pytest

from alphafactory.data import synthetic_market
from app import stack
from tests.stack_support import (
    kcat_publish,
    make_state_dir,
    months_ending_before_now,
    positions_for,
    service_settings,
    settings_env,
)

pytestmark = [pytest.mark.slow, pytest.mark.skipif(not shutil.which("kcat"), reason="needs kcat")]
ALPHAFACTORY = str(Path(sys.executable).parent / "alphafactory")
NEW_YORK = ZoneInfo("America/New_York")
STRATEGIES = {
    "on_release.toml": """
id = "on_release"
[universe]
data = "store"
group = "region"
group_codes = [1]
[alpha]
definition = "hac_tstat > -100"
# plumbing, not statistics: every candidate that meets the definition is admitted
control = "none"
training_months = 36
[generation]
candidates = 12
chunk_size = 6
[pool]
probation = 0  # plumbing: traded from admission
[portfolio]
kind = "long_only"
[triggers]
series = ["M0000"]
[rebalance]
min_days_between = 0
""",
    "on_market.toml": """
id = "on_market"
[universe]
data = "store"
[alpha]
definition = "hac_tstat > -100"
# plumbing, not statistics: every candidate that meets the definition is admitted
control = "none"
training_months = 36
[generation]
candidates = 12
chunk_size = 6
[pool]
probation = 0  # plumbing: traded from admission
[portfolio]
kind = "long_only"
[triggers]
market = "period_close"
[rebalance]
min_days_between = 0
""",
}


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    """A fresh stack with the services on, the user's files written, strategies in place."""
    files = tmp_path_factory.mktemp("own-data")
    market = synthetic_market(
        n_assets=6, n_dates=60, n_macro=2, seed=8, frequency="M", start=months_ending_before_now(60)
    )
    panel = market.panel
    frame = pd.DataFrame(
        {
            "date": np.repeat(pd.DatetimeIndex(panel.dates).strftime("%Y-%m-%d"), panel.shape[1]),
            "asset": np.tile(panel.assets, panel.shape[0]),
            "close": panel.fields["close"].reshape(-1),
            "volume": panel.fields["volume"].reshape(-1),
            "group:region": np.tile(np.arange(panel.shape[1]) % 2, panel.shape[0]),
        }
    )
    frame.to_csv(files / "universe.csv", index=False)
    releases = market.releases.assign(released_at=market.releases["released_at"].map(_iso))
    releases[["series_id", "period", "value", "released_at"]].to_csv(
        files / "series.csv", index=False
    )
    (files / "strategies").mkdir()
    for name, text in STRATEGIES.items():
        (files / "strategies" / name).write_text(text)
    state = make_state_dir("alphafactory-own-data-")
    settings = service_settings(state, strategies_dir=files / "strategies")
    try:
        yield settings, files, market
    finally:
        stack.down(settings)
        shutil.rmtree(state, ignore_errors=True)


def _iso(moment) -> str:
    return pd.Timestamp(moment).isoformat()


def alphafactory(settings, *args: str) -> subprocess.CompletedProcess:
    result = subprocess.run(
        [ALPHAFACTORY, *args],
        capture_output=True,
        text=True,
        timeout=600,
        env=settings_env(settings),
    )
    assert result.returncode == 0, f"{args}: {result.stdout}{result.stderr}"
    return result


def test_own_files_and_strategies_rebalance_on_a_release_and_on_market_data(world):
    settings, files, market = world
    alphafactory(settings, "stack", "up")
    alphafactory(settings, "data", "load", "--panel", str(files / "universe.csv"))
    alphafactory(settings, "data", "load", "--releases", str(files / "series.csv"))
    listed = json.loads(alphafactory(settings, "strategy", "list", "--json").stdout)
    assert {s["strategy_id"]: s["missing"] for s in listed["strategies"]} == {
        "on_market": ["a generator (alphafactory init, or model train --strategy on_market)"],
        "on_release": ["a generator (alphafactory init, or model train --strategy on_release)"],
    }
    trained = alphafactory(
        settings, "model", "train", "--strategy", "on_release", "--formulas", "100", "--steps", "10"
    )
    assert "restarted triton, generator" in trained.stdout

    # a release of the trigger series: positions for the group's assets only
    now = datetime.now(UTC)
    release = {
        "event_id": f"own-{uuid.uuid4().hex[:10]}",
        "series_id": "M0000",
        "period": f"{(now.replace(day=1) - timedelta(days=1)):%Y-%m}-01",
        "value": 0.7,
        "released_at": (now - timedelta(minutes=10)).isoformat(),
        "schema_version": 1,
    }
    kcat_publish(settings, [("M0000", json.dumps(release).encode())])
    rows = positions_for(settings, release["event_id"], timeout_s=300)
    region_one = {str(a) for k, a in enumerate(market.panel.assets) if k % 2 == 1}
    assert {r[0] for r in rows} == region_one
    assert np.isclose(sum(float(r[1]) for r in rows), 1.0)

    # a new month of market data for every asset: the period closes and is decided
    day = (now.astimezone(NEW_YORK).replace(day=1) - timedelta(days=1)).date()
    available = datetime.combine(day, datetime.min.time(), NEW_YORK) + timedelta(hours=17)
    events = [
        (
            str(asset),
            json.dumps(
                {
                    "event_id": f"own-md-{asset}-{day}",
                    "asset": str(asset),
                    "date": day.isoformat(),
                    "fields": {"close": 100.0 + k, "volume": 1000.0},
                    "available_at": available.isoformat(),
                    "schema_version": 1,
                }
            ).encode(),
        )
        for k, asset in enumerate(market.panel.assets)
    ]
    kcat_publish(settings, events, topic="market.data")
    rows = positions_for(settings, f"market:{day.isoformat()}", timeout_s=300)
    assert {r[0] for r in rows} == {str(a) for a in market.panel.assets}
    assert {r[2] for r in rows} == {available.date().isoformat()}
