"""`alphafactory walkforward` on the real stack (its own, started by the command), a short
window of a store strategy on a user's files, with a retraining inside it:

- run A in two steps (`--to` one period, then two): the second run continues where the
  first stopped, re-deciding nothing;
- run B on the same files with every value released on or after D (the second period's
  start) perturbed: every allocation before D is bit-identical to run A's, and some after
  it differ; no generator version served a request before its training cutoff;
- the report: report.json's contract keys, every variant's positions readable by the
  trading role under ``<strategy>@<variant>``, and report.html's plots rendered by
  headless Chromium."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import psycopg
import pytest

from alphafactory.data import synthetic_market
from app import stack
from app.walkforward_run import run_settings
from tests.browser import CHROMIUM, rendered_images
from tests.stack_support import as_trading_reader, make_state_dir, service_settings, settings_env

pytestmark = pytest.mark.slow
ALPHAFACTORY = str(Path(sys.executable).parent / "alphafactory")
STRATEGY_ID = "wf_test"
FIRST, MIDDLE, LAST = "2006-07", "2006-08", "2006-10"
D = pd.Timestamp("2006-09-01", tz="UTC")  # the second period's start: a retraining cutoff
VARIANTS = "pool10,pool100,random,library,equal_weight"
CONTRACT = {
    "n_rebalances",
    "cagr",
    "volatility",
    "sharpe",
    "max_drawdown",
    "turnover",
    "excess_return",
    "information_ratio",
    "excess_hac_tstat",
    "in_sample_sharpe",
}


def _strategy(trigger: str) -> str:
    return f"""
id = "{STRATEGY_ID}"
[universe]
data = "store"
caveats = ["synthetic: a market made for this test"]
[alpha]
definition = "hac_tstat > -100"
# plumbing, not statistics: every candidate that meets the definition is admitted
control = "none"
training_months = 24
[generation]
candidates = 10
chunk_size = 5
[pool]
probation = 0  # plumbing: traded from admission
[portfolio]
kind = "long_only"
[triggers]
series = ["{trigger}"]
[rebalance]
min_days_between = 0
"""


def _write_files(folder: Path, market, *, perturb_from=None) -> None:
    """The panel and release files; with ``perturb_from``, every value released on or
    after it changed (closes and volumes scaled, release values shifted)."""
    panel = market.panel
    dates = pd.DatetimeIndex(panel.dates)
    close, volume = panel.fields["close"].copy(), panel.fields["volume"].copy()
    releases = market.releases.copy()
    if perturb_from is not None:
        late = np.asarray(dates.tz_localize("UTC") >= perturb_from)
        close[late] *= 1.0 + 0.2 * np.sin(np.arange(close.shape[1]))[None, :]
        volume[late] *= 3.0
        released = pd.to_datetime(releases["released_at"], utc=True)
        releases.loc[released >= perturb_from, "value"] += 5.0
    pd.DataFrame(
        {
            "date": np.repeat(dates.strftime("%Y-%m-%d"), panel.shape[1]),
            "asset": np.tile(panel.assets, panel.shape[0]),
            "close": close.reshape(-1),
            "volume": volume.reshape(-1),
        }
    ).to_csv(folder / "universe.csv", index=False)
    releases = releases.assign(
        released_at=releases["released_at"].map(lambda t: pd.Timestamp(t).isoformat())
    )
    releases[["series_id", "period", "value", "released_at"]].to_csv(
        folder / "series.csv", index=False
    )


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    market = synthetic_market(
        # five years before the first decision: macro forecasts need 60 periods
        n_assets=6,
        n_dates=108,
        n_macro=3,
        seed=5,
        frequency="M",
        start="1998-01-01",
    )
    monthly = market.series.loc[market.series["frequency"] == "M", "series_id"]
    assert len(monthly), "the synthetic market needs a monthly series to trigger on"
    home = make_state_dir("alphafactory-walkforward-")
    (home / "strategies").mkdir()
    (home / "strategies" / f"{STRATEGY_ID}.toml").write_text(_strategy(monthly.iloc[0]))
    for name, perturb in (("a", None), ("b", D)):
        (home / name).mkdir()
        _write_files(home / name, market, perturb_from=perturb)
    settings = service_settings(home / "unused-state", strategies_dir=home / "strategies")
    try:
        yield settings, home
    finally:
        for name in ("a", "b"):
            stack.down(run_settings(settings, home / name / "out", 0))
        shutil.rmtree(home, ignore_errors=True)


def _walkforward(settings, home: Path, name: str, last: str, *extra: str):
    folder = home / name
    result = subprocess.run(
        [
            ALPHAFACTORY,
            "walkforward",
            "--strategy",
            STRATEGY_ID,
            "--from",
            FIRST,
            "--to",
            last,
            "--out",
            str(folder / "out"),
            "--variants",
            VARIANTS,
            "--panel",
            str(folder / "universe.csv"),
            "--releases",
            str(folder / "series.csv"),
            "--retrain-every",
            "2",
            "--train-steps",
            "5",
            "--train-formulas",
            "40",
            "--warm-steps",
            "3",
            "--port-offset",
            "0",
            *extra,
        ],
        capture_output=True,
        text=True,
        timeout=900,
        env=settings_env(settings),
    )
    assert result.returncode == 0, f"{name} --to {last}: {result.stdout}{result.stderr[-5000:]}"
    return run_settings(settings, folder / "out", 0), result


def _allocations(run) -> dict[tuple[str, str], tuple]:
    """(strategy id, trigger) -> (allocation id, decision time, ((asset, weight), ...))."""
    with psycopg.connect(run.postgres.dsn("app"), autocommit=True) as conn:
        rows = conn.execute(
            """
            SELECT a.strategy_id, a.trigger_event_id, a.allocation_id, a.decision_time,
                   p.asset, p.weight
            FROM core.allocations AS a JOIN core.positions AS p USING (allocation_id)
            ORDER BY a.strategy_id, a.trigger_event_id, p.asset
            """
        ).fetchall()
    out: dict[tuple[str, str], tuple] = {}
    for strategy_id, trigger, allocation_id, decided, asset, weight in rows:
        held = out.setdefault((strategy_id, trigger), (allocation_id, decided, []))
        assert held[0] == allocation_id, f"two allocations for {strategy_id} on {trigger}"
        held[2].append((asset, str(weight)))
    return {key: (a, d, tuple(w)) for key, (a, d, w) in out.items()}


def _requests_before_their_model(run) -> list:
    with psycopg.connect(run.postgres.dsn("app"), autocommit=True) as conn:
        return conn.execute(
            """
            SELECT r.request_id, r.decision_time, v.cutoff
            FROM core.generation_requests AS r
            JOIN core.model_versions AS v
              ON v.generator = r.model_generator AND v.version = r.model_version
            WHERE v.cutoff > r.decision_time OR v.trained_until >= r.decision_time
            """
        ).fetchall()


@pytest.fixture(scope="module")
def runs(world):
    settings, home = world
    first, _ = _walkforward(settings, home, "a", MIDDLE, "--keep-running")
    before_resume = _allocations(first)
    stack.down(first)
    run_a, resumed = _walkforward(settings, home, "a", LAST, "--keep-running")
    after_resume = _allocations(run_a)
    stack.down(run_a)
    run_b, _ = _walkforward(settings, home, "b", LAST, "--keep-running")
    return {
        "before_resume": before_resume,
        "a": after_resume,
        "b": _allocations(run_b),
        "resumed_output": resumed.stdout + resumed.stderr,
        "run_b": run_b,
        "home": home,
    }


def test_a_resumed_run_continues_where_it_stopped_and_decides_nothing_twice(runs):
    before, after = runs["before_resume"], runs["a"]
    assert before, "the first run decided nothing"
    for key, (allocation_id, _decided, weights) in before.items():
        assert after[key][0] == allocation_id and after[key][2] == weights, key
    later = set(after) - set(before)
    assert later and all(after[k][1] >= D for k in later)
    assert all(decided < D for _, decided, _ in before.values())
    # every variant decided on every trigger the base strategy decided on
    triggers = {t for s, t in after if s == STRATEGY_ID}
    for variant in VARIANTS.split(","):
        assert {t for s, t in after if s == f"{STRATEGY_ID}@{variant}"} == triggers
    assert "rebalance" in runs["resumed_output"] and "pools" in runs["resumed_output"]


def test_perturbing_what_was_released_after_d_changes_nothing_decided_before_it(runs):
    a, b = runs["a"], runs["b"]
    early = {k: v for k, v in a.items() if v[1] < D}
    assert early and set(early) <= set(b)
    for key, (_id, decided, weights) in early.items():
        assert b[key][1] == decided and b[key][2] == weights, f"{key} differs before D"
    late = [k for k, v in a.items() if v[1] >= D and k in b]
    assert late, "run B decided nothing after D"
    assert any(a[k][2] != b[k][2] for k in late), "the perturbation changed no later decision"
    assert _requests_before_their_model(runs["run_b"]) == []


def test_the_report_holds_the_contract_and_every_variant_reads_as_a_strategy(runs):
    out = runs["home"] / "b" / "out"
    report = json.loads((out / "report.json").read_text())
    assert (report["strategy"], report["from"], report["to"]) == (STRATEGY_ID, FIRST, LAST)
    assert set(report["variants"]) == set(VARIANTS.split(","))
    decided = len([k for k in runs["b"] if k[0] == STRATEGY_ID])
    assert decided >= 4  # a monthly trigger series over four months (revisions trigger too)
    for name, record in report["variants"].items():
        assert set(record) >= CONTRACT, name
        assert record["n_rebalances"] == decided, name
        # every figure net of the default 10 bp a unit traded too: the first decision
        # trades into its whole book, so the net cumulative return is lower
        assert set(record["net"]) >= CONTRACT, name
        assert record["net"]["cumulative_return"] < record["cumulative_return"], name
        if record["kind"] == "benchmark":
            assert record["trials"] is None and record["accepted"] is None, name
            assert record["oos_ic"] is None and record["oos_ic_t"] is None, name
        else:  # every decision scored its candidates; this strategy admits without control
            assert record["trials"] >= decided * 10 and record["accepted"] > 0, name
            assert record["accepted"] == record["qualified"] <= record["trials"], name
            # the traded signal's rank IC against what was held (the last decision's
            # month may not have ended within the data)
            assert decided - 1 <= record["oos_ic_decisions"] <= decided, name
            assert -1 <= record["oos_ic"] <= 1, name
            # the pool persists: what entered stays unless it retired
            assert record["pool_entered"] >= 1 and record["pool_retired"] >= 0, name
    assert report["settings"]["admission_control"].startswith("none: ")
    assert report["settings"]["periods_per_year"] == 12
    assert report["settings"]["costs"] == "10 bp a unit of weight traded"
    assert report["settings"]["data_caveats"] == ["synthetic: a market made for this test"]
    versions = report["models"]
    assert [m["version"] for m in versions] == [1, 2]
    for model in versions:
        assert pd.Timestamp(model["trained_until"]) < pd.Timestamp(model["first_decision"])
    assert pd.Timestamp(versions[1]["first_decision"]) >= D
    # the retraining fine-tuned the version before it (the vocabulary did not change)
    assert (versions[0]["warm_start_from"], versions[1]["warm_start_from"]) == (None, 1)
    rows = as_trading_reader(
        runs["run_b"],
        "SELECT strategy_id, count(*), sum(weight) FROM trading.latest_target_positions "
        "GROUP BY strategy_id ORDER BY strategy_id",
    )
    held = {strategy_id: float(total) for strategy_id, _n, total in rows}
    for variant in VARIANTS.split(","):
        assert np.isclose(held[f"{STRATEGY_ID}@{variant}"], 1.0), variant


@pytest.mark.skipif(CHROMIUM is None, reason="needs Debian's chromium (scripts/setup.sh)")
def test_the_report_page_renders_its_plots_in_chromium(runs):
    page = runs["home"] / "b" / "out" / "report.html"
    text = page.read_text()
    assert "http://" not in text and "https://" not in text  # self-contained
    assert "<li>synthetic: a market made for this test</li>" in text  # the data's caveats
    assert "net HAC t" in text  # every figure after costs too
    images = rendered_images(page)
    assert set(images) == {"growth", "drawdown", "decay"}
    for name, (complete, width, height, shown) in images.items():
        assert complete and width >= 300 and height >= 150 and shown > 0, name
