"""The first run from a fresh state directory, as the README gives it: `alphafactory stack
up`, then `alphafactory init` (bundled data stored, a generator trained on the stored data
before today, exported and served by Triton); then a core CPI release published with kcat
becomes positions of the bundled macro strategy for trading_reader, and a day of closes
for the 20 bundled stocks on market.data rebalances the daily equity example, which
samples from a generator of its own."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import uuid
from datetime import UTC, datetime, time, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import numpy as np
import pytest

from app import stack
from app.generator_setup import checkpoint_path, served_name
from inference.training import load_checkpoint
from tests.stack_support import (
    kcat_publish,
    make_state_dir,
    positions_for,
    service_settings,
    settings_env,
)

pytestmark = [pytest.mark.slow, pytest.mark.skipif(not shutil.which("kcat"), reason="needs kcat")]
ALPHAFACTORY = str(Path(sys.executable).parent / "alphafactory")
STOCKS = [
    "AAPL", "AMD", "BAC", "BBY", "CVX", "GE", "HD", "JNJ", "JPM", "KO",
    "LLY", "MRK", "MSFT", "PEP", "PFE", "PG", "RRC", "UNH", "WMT", "XOM",
]  # fmt: skip


@pytest.fixture(scope="module")
def fresh():
    """Settings of a new state directory with the pipeline services on (as by default)."""
    state = make_state_dir("alphafactory-first-run-")
    settings = service_settings(state)
    try:
        yield settings
    finally:
        stack.down(settings)
        shutil.rmtree(state, ignore_errors=True)


def alphafactory(settings, *args: str, timeout: float = 600) -> subprocess.CompletedProcess:
    return subprocess.run(
        [ALPHAFACTORY, *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        env=settings_env(settings),
    )


def test_stack_up_then_init_then_a_release_gives_positions(fresh):
    up = alphafactory(fresh, "stack", "up")
    assert up.returncode == 0, up.stderr
    listed = json.loads(alphafactory(fresh, "strategy", "list", "--json").stdout)
    assert [s["strategy_id"] for s in listed["strategies"]] == ["macro_allocation", "sp500_daily"]
    for strategy in listed["strategies"]:
        assert strategy["missing"][0].startswith("market data: nothing is stored")

    init = alphafactory(fresh, "init", "--formulas", "150", "--train-steps", "20")
    assert init.returncode == 0, init.stdout + init.stderr
    assert "ready:" in init.stdout and "restarted triton, generator" in init.stdout
    for name in ("", "sp500_daily"):
        checkpoint = load_checkpoint(checkpoint_path(fresh, name))
        assert checkpoint.trained_until < datetime.now(UTC)  # the stored data before today
        assert (Path(fresh.triton.repository) / served_name(fresh, name)).is_dir()
    stocks = load_checkpoint(checkpoint_path(fresh, "sp500_daily"))
    assert "close" in stocks.vocab.operands and "us_core_cpi" not in stocks.vocab.operands
    listed = json.loads(alphafactory(fresh, "strategy", "list", "--json").stdout)
    assert [s["missing"] for s in listed["strategies"]] == [[], []]

    again = alphafactory(fresh, "init")  # a second run stores and trains nothing
    assert again.returncode == 0, again.stderr
    assert "0 new observation(s)" in again.stdout and "reusing" in again.stdout

    released = datetime.now(UTC) - timedelta(minutes=5)
    message = {
        "event_id": f"first-run-{uuid.uuid4().hex[:10]}",
        "series_id": "us_core_cpi",
        "period": f"{(released.replace(day=1) - timedelta(days=1)):%Y-%m}-01",
        "value": 330.5,
        "released_at": released.isoformat(),
        "schema_version": 1,
    }
    kcat_publish(fresh, [("us_core_cpi", json.dumps(message).encode())])
    rows = positions_for(fresh, message["event_id"], timeout_s=300)
    weights = {asset: float(weight) for asset, weight, _ in rows}
    assert np.isclose(sum(weights.values()), 1.0) and min(weights.values()) >= 0
    assert {"US_EQUITY", "US_BAA_BOND", "OIL_WTI"} <= set(weights)  # the multi-asset universe
    new_york_day = released.astimezone(ZoneInfo("America/New_York")).date()
    assert {r[2] for r in rows} == {new_york_day.isoformat()}

    # the last weekday before today, as the stocks' closes would arrive after 16:00
    day = new_york_day - timedelta(days=1)
    while day.weekday() >= 5:
        day -= timedelta(days=1)
    close_at = datetime.combine(day, time(16, 30), ZoneInfo("America/New_York"))
    closes = [
        (
            ticker,
            json.dumps(
                {
                    "event_id": f"first-run-{ticker}-{day}",
                    "asset": ticker,
                    "date": day.isoformat(),
                    "fields": {"close": 100.0 + k, "returns": 0.001 * (k - 10)},
                    "available_at": close_at.isoformat(),
                    "schema_version": 1,
                }
            ).encode(),
        )
        for k, ticker in enumerate(STOCKS)
    ]
    kcat_publish(fresh, closes, topic="market.data")
    rows = positions_for(fresh, f"market:{day.isoformat()}", timeout_s=300)
    weights = {asset: float(weight) for asset, weight, _ in rows}
    assert set(weights) <= set(STOCKS) and len(weights) >= 10
    # the decision's admission is recorded under the default control; a long-short book
    # is at gross 1 when an alpha was admitted into its pool, flat (cash) when none was
    listed = json.loads(
        alphafactory(fresh, "requests", "list", "--strategy", "sp500_daily", "--json").stdout
    )
    (decided,) = [r for r in listed["requests"] if r["trigger_event_id"] == f"market:{day}"]
    assert decided["control"] == "by 0.1" and decided["trials"] == decided["evaluated"] > 0
    gross = sum(abs(w) for w in weights.values())
    assert np.isclose(gross, 1.0) if decided["admitted"] else gross == 0.0
