"""End to end on a real stack with every pipeline service running as `stack up` starts it:
a third-party client (kcat) publishes a release per the contract and the positions appear
for trading_reader; duplicates, out-of-order releases, a killed consumer, malformed events
and a stopped Triton each change nothing they should not."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path

import numpy as np
import pandas as pd
import psycopg
import pytest

from alphafactory.topics import CONSUMER_GROUPS, DEAD_LETTERS
from app import generator_setup, stack
from app.services import SERVICES
from storage.loading import load_panel, load_releases
from storage.macro import macro_as_of
from tests.browser import needs_selenium
from tests.stack_support import (
    as_trading_reader,
    kcat_publish,
    make_state_dir,
    positions_for,
    service_settings,
    settings_env,
    untrained_generator,
)

pytestmark = [pytest.mark.slow, pytest.mark.skipif(not shutil.which("kcat"), reason="needs kcat")]
HISTORY_END = pd.Timestamp("2018-06-01", tz="UTC")


# A second strategy, on another trigger series: a supervised alpha among its candidates
# and a variant allocating it alone (the other tests' releases of M0000 do not wake it).
ML_STRATEGY_TOML = """
id = "pipeline_ml"
[universe]
data = "store"
[formulas]
root_kinds = ["macro"]
max_tokens = 8
[alpha]
definition = "hac_tstat > -1000"
# plumbing, not statistics: every candidate that meets the definition is admitted
control = "none"
training_months = 48
[generation]
candidates = 4
chunk_size = 5
[ml]
models = ["ridge"]
features = ["operands"]
folds = 2
[pool]
probation = 0  # plumbing: traded from admission
max_correlation = 0.95
[portfolio]
kind = "long_only"
[triggers]
series = ["M0001"]
[rebalance]
min_days_between = 0
[variants]
names = ["ridge"]
"""


@pytest.fixture(scope="module")
def e2e_strategies(strategies_dir, tmp_path_factory):
    folder = tmp_path_factory.mktemp("e2e-strategies")
    for path in strategies_dir.glob("*.toml"):
        shutil.copy(path, folder / path.name)
    (folder / "pipeline_ml.toml").write_text(ML_STRATEGY_TOML)
    return folder


@pytest.fixture(scope="module")
def live(market, e2e_strategies):
    """A stack of its own with the services on, the market stored up to HISTORY_END."""
    state = make_state_dir("alphafactory-e2e-")
    # a reconciler pass (and its sample of the pipeline's gauges) every few seconds
    settings = service_settings(
        state, strategies_dir=e2e_strategies, visibility_timeout_s=10, reconcile_every_s=3
    )
    untrained_generator(
        market.panel, context=8, d_model=16, path=settings.pipeline.generator_checkpoint
    )
    # served by this stack's Triton, as `alphafactory init` serves it: the generator's
    # next-action calls go there (the in-process fallback only while Triton is stopped)
    generator_setup.export(settings)
    try:
        stack.up(settings)
        with psycopg.connect(settings.postgres.dsn("app"), autocommit=True) as conn:
            load_panel(conn, market.panel)
            load_releases(conn, market.releases[market.releases["released_at"] < HISTORY_END])
        yield settings
    finally:
        stack.down(settings)
        shutil.rmtree(state, ignore_errors=True)


def release(period: str, released_at: str, value: float = 1.5, series: str = "M0000") -> dict:
    return {
        "event_id": f"e2e-{uuid.uuid4().hex[:12]}",
        "series_id": series,
        "period": period,
        "value": value,
        "released_at": released_at,
        "schema_version": 1,
    }


def count(settings, query: str, *args) -> int:
    with psycopg.connect(settings.postgres.dsn("app"), autocommit=True) as conn:
        return int(conn.execute(query, args).fetchone()[0])


def allocations_for(settings, event_id: str) -> int:
    return count(
        settings, "SELECT count(*) FROM core.allocations WHERE trigger_event_id = %s", event_id
    )


def test_a_release_from_kcat_becomes_positions_for_trading_reader(live):
    message = release("2018-04-01", "2018-06-14T12:30:00+00:00")
    kcat_publish(live, [("M0000", json.dumps(message).encode())])
    rows = positions_for(live, message["event_id"])
    weights = np.array([float(r[1]) for r in rows])
    assert np.isclose(weights.sum(), 1.0) and (weights >= 0).all()  # long-only strategy
    assert {r[2] for r in rows} == {"2018-06-14"}
    with pytest.raises(subprocess.CalledProcessError):  # the reader cannot write
        as_trading_reader(live, "DELETE FROM trading.target_positions")


def test_an_ml_strategy_gets_positions_after_a_release(live):
    """The release wakes the [ml] strategy: its ridge model is a candidate of the request,
    a worker scores it (walked forward on the decision's panel), the allocator writes the
    strategy's positions and its ``ridge`` variant's, which hold the ML alpha alone."""
    message = release("2018-04-01", "2018-06-14T12:30:00+00:00", series="M0001")
    kcat_publish(live, [("M0001", json.dumps(message).encode())])
    rows = positions_for(live, message["event_id"], view="target_positions")
    assert rows
    with psycopg.connect(live.postgres.dsn("app"), autocommit=True) as conn:
        written = dict(
            conn.execute(
                "SELECT strategy_id, sum(weight) FROM trading.target_positions "
                "WHERE trigger_event_id = %s GROUP BY strategy_id",
                (message["event_id"],),
            ).fetchall()
        )
        ml = conn.execute(
            "SELECT f.formula, e.is_alpha, e.ic FROM core.evaluations AS e "
            "JOIN core.factors AS f USING (formula_hash) "
            "WHERE e.strategy_id = 'pipeline_ml' AND f.origin = 'ml'"
        ).fetchall()
        pool = conn.execute(
            "SELECT f.formula FROM core.alpha_pools AS p JOIN core.factors AS f "
            "USING (formula_hash) WHERE p.strategy_id = 'pipeline_ml@ridge'"
        ).fetchall()
    assert set(written) == {"pipeline_ml", "pipeline_ml@ridge"}
    assert all(np.isclose(float(w), 1.0) for w in written.values())
    ((formula, qualified, ic),) = ml
    assert formula.startswith("ml:ridge(features=[operands]") and qualified
    assert np.isfinite(ic)
    assert pool == [(formula,)]


def test_status_shows_the_lag_the_last_allocation_and_the_release(live):
    message = release("2018-04-01", "2018-06-15T12:30:00+00:00", value=1.7)
    kcat_publish(live, [("M0000", json.dumps(message).encode())])
    positions_for(live, message["event_id"], view="target_positions")
    env = settings_env(live)
    deadline = time.monotonic() + 60
    while True:  # the allocator commits its offsets after the allocation is written
        result = subprocess.run(
            [sys.executable, "-m", "app.cli.main", "status", "--json"],
            env=env, capture_output=True, text=True, timeout=120,
        )  # fmt: skip
        assert result.returncode == 0, result.stderr
        status = json.loads(result.stdout)
        # a group that never committed (market data: no market events here) has no lag
        lags = [v for v in status["consumer_lag"].values() if v is not None]
        if all(v == 0 for v in lags) or time.monotonic() > deadline:
            break
        time.sleep(1)
    assert set(status["consumer_lag"]) == set(CONSUMER_GROUPS)
    assert lags and all(v == 0 for v in lags), status["consumer_lag"]  # never negative
    assert status["consumer_lag"]["alphafactory-release-handler"] == 0
    with psycopg.connect(live.postgres.dsn("app"), autocommit=True) as conn:
        (allocation_id,) = conn.execute(
            "SELECT allocation_id FROM core.allocations WHERE strategy_id = 'pipeline_test' "
            "ORDER BY as_of DESC, created_at DESC LIMIT 1"
        ).fetchone()
    assert status["last_allocations"]["pipeline_test"]["allocation_id"] == allocation_id
    assert status["last_releases"]["M0000"]["released_at"].startswith("2018-06-15T12:30:00")
    assert status["pending_requests"] == {}


def scrape(url: str, *, wait_s: float = 60.0) -> dict[tuple[str, tuple], float]:
    """(sample name, sorted labels) -> value, as Prometheus reads the endpoint (waiting
    for a service that is still starting)."""
    from urllib.error import URLError
    from urllib.request import urlopen

    from prometheus_client.parser import text_string_to_metric_families

    deadline = time.monotonic() + wait_s
    while True:
        try:
            with urlopen(url, timeout=10) as response:
                text = response.read().decode()
            break
        except URLError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.5)
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


def value(samples: dict, name: str, **labels) -> float:
    return samples.get((name, tuple(sorted(labels.items()))), 0.0)


# what each service counts, looked up after a release (sample name, labels)
MOVED_BY_A_RELEASE = {
    "release-handler": [
        ("alphafactory_records_consumed_total", {"topic": "macro.releases",
                                                 "group": "alphafactory-release-handler"}),
    ],
    "generator": [
        ("alphafactory_records_consumed_total", {"topic": "alpha.generation.requests",
                                                 "group": "alphafactory-generator"}),
        ("alphafactory_candidates_generated_total", {"strategy": "pipeline_test"}),
        ("alphafactory_triton_call_seconds_count", {}),
    ],
    "worker": [
        ("alphafactory_celery_tasks_total", {"task": "alphafactory.evaluate",
                                             "outcome": "success"}),
        ("alphafactory_evaluation_chunk_seconds_count", {}),
    ],
    "allocator": [("alphafactory_allocations_total", {"strategy": "pipeline_test"})],
    "relay": [("alphafactory_outbox_relayed_total", {"topic": "alpha.generation.requests"})],
}  # fmt: skip


def test_every_service_serves_its_metrics_and_they_move_after_a_release(live):
    """Every service's endpoint (listed by `stack status --json`, contract 9) serves the
    pipeline's series; a release moves what each service counts, and the reconciler's
    sample shows the release as the series' newest."""
    result = subprocess.run(
        [sys.executable, "-m", "app.cli.main", "stack", "status", "--json"],
        env=settings_env(live), capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    status = json.loads(result.stdout)
    urls = status["metrics"]
    assert set(urls) == {s.name for s in SERVICES}
    assert status["dashboard"]["url"].startswith("http://127.0.0.1:")
    before = {name: scrape(url) for name, url in urls.items()}
    for name, samples in before.items():  # every metric is declared in every service
        assert ("alphafactory_triton_fallbacks_total", ()) in samples, name
    message = release("2018-04-01", "2018-06-20T12:30:00+00:00", value=1.9)
    kcat_publish(live, [("M0000", json.dumps(message).encode())])
    positions_for(live, message["event_id"])
    released = pd.Timestamp("2018-06-20T12:30:00+00:00").timestamp()
    newest = "alphafactory_last_release_timestamp_seconds"
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:  # the reconciler samples every few seconds
        sampled = scrape(urls["reconciler"])
        if value(sampled, newest, series="M0000") == released:
            break
        time.sleep(1)
    assert value(sampled, newest, series="M0000") == released
    age = value(sampled, "alphafactory_seconds_since_last_release", series="M0000")
    assert abs(age - (time.time() - released)) < 120
    assert value(sampled, "alphafactory_requests_pending", state="evaluating") >= 0
    assert ("alphafactory_consumer_lag", (("group", "alphafactory-release-handler"),
            ("topic", "macro.releases"))) in sampled  # fmt: skip
    after = {name: scrape(urls[name]) for name in MOVED_BY_A_RELEASE}
    for name, series in MOVED_BY_A_RELEASE.items():
        for sample, labels in series:
            moved = value(after[name], sample, **labels) - value(before[name], sample, **labels)
            assert moved > 0, f"{name}: {sample}{labels} did not move after a release"


def api(base: str, path: str) -> dict:
    from urllib.request import urlopen

    with urlopen(base + path, timeout=10) as response:
        return json.loads(response.read())["data"]


def until(check, what: str, timeout_s: float = 90.0):
    """``check()``'s first truthy answer, polled each second."""
    deadline = time.monotonic() + timeout_s
    while not (answer := check()):
        assert time.monotonic() < deadline, f"gave up waiting for {what}"
        time.sleep(1)
    return answer


@pytest.mark.skipif(not shutil.which("prometheus"), reason="needs Debian's prometheus (setup.sh)")
def test_a_real_prometheus_scrapes_every_service_and_evaluates_the_alerts(live, tmp_path):
    """Debian's Prometheus scrapes each endpoint `stack status` lists and evaluates
    deploy/monitoring/alerts.yml against them: every rule evaluates without error and no
    service is down."""
    from urllib.parse import urlsplit

    import yaml

    from tests.stack_support import free_ports

    urls = stack.status(live)["metrics"]
    config = {
        "global": {"scrape_interval": "1s", "evaluation_interval": "1s"},
        "rule_files": [str(Path(__file__).parents[2] / "deploy" / "monitoring" / "alerts.yml")],
        "scrape_configs": [
            {"job_name": name, "static_configs": [{"targets": [urlsplit(url).netloc]}]}
            for name, url in urls.items()
        ],
    }
    (tmp_path / "prometheus.yml").write_text(yaml.safe_dump(config))
    [port] = free_ports(1)
    server = subprocess.Popen(
        [
            shutil.which("prometheus"),
            f"--config.file={tmp_path / 'prometheus.yml'}",
            f"--storage.tsdb.path={tmp_path / 'data'}",
            f"--web.listen-address=127.0.0.1:{port}",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    base = f"http://127.0.0.1:{port}/api/v1"
    try:

        def targets_up():
            try:
                active = api(base, "/targets")["activeTargets"]
            except OSError:  # still starting
                return None
            up = {t["labels"]["job"] for t in active if t["health"] == "up"}
            return up if up == set(urls) else None

        assert until(targets_up, "every service scraped") == set(urls)

        def rules_evaluated():
            rules = [r for g in api(base, "/rules")["groups"] for r in g["rules"]]
            return rules if rules and all(r["health"] != "unknown" for r in rules) else None

        rules = until(rules_evaluated, "every alert rule evaluated")
        assert {r["name"]: r.get("lastError", "") for r in rules if r["health"] != "ok"} == {}
        consumed = api(base, "/query?query=sum(alphafactory_records_consumed_total)")["result"]
        assert consumed and float(consumed[0]["value"][1]) > 0
        firing = api(base, "/query?query=ALERTS%7Balertname%3D%22ServiceDown%22%7D")["result"]
        assert firing == []
    finally:
        server.terminate()
        server.wait(timeout=30)


def test_duplicates_and_out_of_order_releases_have_one_effect_each(live):
    newer = release("2018-07-01", "2018-08-14T12:30:00+00:00", value=2.0)
    older = release("2018-05-01", "2018-07-13T12:30:00+00:00", value=1.0)
    payload = json.dumps(newer).encode()
    kcat_publish(
        live, [("M0000", payload), ("M0000", payload), ("M0000", json.dumps(older).encode())]
    )
    positions_for(live, newer["event_id"])
    positions_for(live, older["event_id"], view="target_positions")  # allocated, not latest
    time.sleep(2)  # let any duplicate effect land before counting
    assert allocations_for(live, newer["event_id"]) == allocations_for(live, older["event_id"]) == 1
    stored = count(
        live,
        "SELECT count(*) FROM core.macro_observations WHERE event_id = ANY(%s)",
        [newer["event_id"], older["event_id"]],
    )
    assert stored == 2
    with psycopg.connect(live.postgres.dsn("app")) as conn:
        now = macro_as_of(conn, series_ids=["M0000"], as_of=pd.Timestamp("2018-09-01", tz="UTC"))
    assert now[now["period"] == "2018-07-01"]["value"].tolist() == [2.0]  # newest vintage kept
    latest = as_trading_reader(
        live,
        "SELECT DISTINCT trigger_event_id FROM trading.latest_target_positions "
        "WHERE strategy_id = 'pipeline_test'",
    )
    assert latest == [[newer["event_id"]]]  # the older release did not take over


def test_a_killed_consumer_is_restarted_and_resumes_after_its_last_commit(live):
    paths = stack.stack_paths(live)
    handler = stack.service_process("release-handler")
    pid = handler.supervision(paths)["child_pid"]
    os.kill(pid, signal.SIGKILL)
    messages = [
        release(f"2018-{m:02d}-01", f"2018-{m + 2:02d}-1{m % 9}T12:30:00+00:00", series="M0001")
        for m in (8, 9, 10)
    ]
    kcat_publish(live, [("M0001", json.dumps(m).encode()) for m in messages])
    # no `stack up`: the supervisor restarts the handler, from its committed offsets
    ids = [m["event_id"] for m in messages]
    deadline = time.monotonic() + 120
    query = "SELECT count(*) FROM core.macro_observations WHERE event_id = ANY(%s)"
    while count(live, query, ids) < 3 and time.monotonic() < deadline:
        time.sleep(0.5)
    assert count(live, query, ids) == 3
    assert (
        count(live, "SELECT count(*) FROM core.processed_events WHERE event_id = ANY(%s)", ids) == 3
    )
    supervision = handler.supervision(paths)
    assert supervision["child_pid"] != pid and supervision["last_exit"] == "killed by SIGKILL"


def test_malformed_events_go_to_dead_letters_and_valid_ones_apply(live):
    from kafka import KafkaConsumer

    valid = [
        release("2018-01-01", f"2018-09-{10 + k}T12:00:00+00:00", series="M0002") for k in range(5)
    ]
    bad = []
    for k in range(100):
        broken = dict(valid[0], event_id=f"bad-{uuid.uuid4().hex[:8]}")
        kind = k % 4
        if kind == 0:
            bad.append(b"{not json " + str(k).encode())
        elif kind == 1:
            bad.append(json.dumps({key: v for key, v in broken.items() if key != "value"}).encode())
        elif kind == 2:
            bad.append(json.dumps(broken).replace("1.5", "NaN").encode())
        else:
            bad.append(json.dumps(dict(broken, schema_version=9)).encode())
    mixed = [("M0002", b) for b in bad[:50]] + [("M0002", json.dumps(v).encode()) for v in valid]
    kcat_publish(live, mixed + [("M0002", b) for b in bad[50:]])
    consumer = KafkaConsumer(
        DEAD_LETTERS,
        bootstrap_servers=live.kafka.bootstrap,
        auto_offset_reset="earliest",
        consumer_timeout_ms=2000,
        group_id=f"e2e-{uuid.uuid4().hex[:6]}",
    )
    letters, deadline = [], time.monotonic() + 120
    while len(letters) < 100 and time.monotonic() < deadline:
        letters += [r for r in consumer if r.value in set(bad)]
    consumer.close()
    assert len(letters) == 100
    reasons = {dict(r.headers)["dead_letter.error"].decode()[:60] for r in letters}
    assert any("not UTF-8 JSON" in r for r in reasons) and any(
        "schema_version" in r for r in reasons
    )
    ids = [v["event_id"] for v in valid]
    assert (
        count(live, "SELECT count(*) FROM core.macro_observations WHERE event_id = ANY(%s)", ids)
        == 5
    )


def test_with_triton_stopped_the_request_is_answered_by_the_fallback(live):
    paths = stack.stack_paths(live)
    triton = next(c for c in stack.COMPONENTS if c.name == "triton")
    generator = stack.status(live)["metrics"]["generator"]
    fallbacks = value(scrape(generator), "alphafactory_triton_fallbacks_total")
    triton.stop(live, paths)
    try:
        message = release("2018-10-01", "2018-11-14T12:30:00+00:00")
        kcat_publish(live, [("M0000", json.dumps(message).encode())])
        assert positions_for(live, message["event_id"])
        assert allocations_for(live, message["event_id"]) == 1
        # answered in process: the generator served from Triton until it stopped
        assert value(scrape(generator), "alphafactory_triton_fallbacks_total") > fallbacks
    finally:
        stack.restart(live, ["triton"])


@needs_selenium
def test_the_dashboard_shows_a_new_allocation_after_a_release(live):
    """The dashboard `stack up` started, seen in a browser: a release's allocation
    appears on the timeline (trigger -> request -> allocation) and the positions page,
    and no page logs a console error."""
    from app.services import dashboard_url
    from tests.browser import chrome, open_drawn, severe_console_entries, wait_for_http

    url = dashboard_url(live)
    wait_for_http(url + "healthz")
    message = release("2018-11-01", "2018-12-14T12:30:00+00:00", value=1.3)
    with chrome() as driver:
        open_drawn(driver, url + "timeline")
        assert message["event_id"] not in driver.page_source
        kcat_publish(live, [("M0000", json.dumps(message).encode())])
        positions_for(live, message["event_id"])
        with psycopg.connect(live.postgres.dsn("app"), autocommit=True) as conn:
            (allocation_id,) = conn.execute(
                "SELECT allocation_id FROM core.allocations "
                "WHERE strategy_id = 'pipeline_test' AND trigger_event_id = %s",
                (message["event_id"],),
            ).fetchone()
        open_drawn(driver, url + "timeline")
        row = driver.find_element("xpath", f"//tr[td//text()[contains(., '{allocation_id}')]]")
        assert message["event_id"] in driver.page_source and "allocated" in row.text
        open_drawn(driver, url + "positions")
        assert allocation_id in driver.page_source
        assert severe_console_entries(driver) == []
