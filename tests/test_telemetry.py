"""The metrics the services count and the endpoint that serves them (no broker: a scripted
consumer; the real stack's endpoints are checked in tests/pipeline/test_end_to_end.py)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
from datetime import UTC, datetime
from urllib.request import urlopen

import pytest
from prometheus_client import REGISTRY

from alphafactory import telemetry
from alphafactory.retry import Backoff
from alphafactory.settings import KafkaSettings, load_settings
from consumers.dead_letters import DeadLetterPolicy
from consumers.failures import Resilience
from consumers.loop import ConsumerLoop
from consumers.pipeline_sampler import PipelineSampler
from consumers.reconciler import run_reconciler
from tests.stack_support import free_port_range
from tests.test_failures import OneBatchConsumer, _record

TOPIC = "fake.topic"  # tests.test_failures' scripted consumer's


def sample(name: str, **labels) -> float:
    return REGISTRY.get_sample_value(name, labels) or 0.0


def test_the_loop_counts_every_record_it_handled_and_dead_letters_by_reason():
    def handler(record):
        if record.offset == 1:
            raise ValueError("poison")

    consumed = ("alphafactory_records_consumed_total", {"topic": TOPIC, "group": "tg"})
    lettered = ("alphafactory_dead_letters_total", {"topic": TOPIC, "reason": "ValueError"})
    before = sample(consumed[0], **consumed[1]), sample(lettered[0], **lettered[1])
    loop = ConsumerLoop(
        KafkaSettings(),
        group_id="tg",
        topics=[TOPIC],
        handler=handler,
        on_error=DeadLetterPolicy(),  # no sink: only the count and the log
        resilience=Resilience("t", poison_attempts=1, backoff=Backoff(0.001, 0.002)),
        consumer_factory=OneBatchConsumer([_record(0), _record(1), _record(2)]),
        max_records=3,
    )
    loop.run()
    assert sample(consumed[0], **consumed[1]) - before[0] == 3
    assert sample(lettered[0], **lettered[1]) - before[1] == 1


class FakePool:
    def connection(self):
        from contextlib import nullcontext

        return nullcontext(None)


def test_the_sampler_sets_the_gauges_and_removes_what_is_gone(monkeypatch):
    released = datetime(2024, 3, 1, 12, 30, tzinfo=UTC)
    state = {
        "pending_requests": {"evaluating": 2},
        "dead_letters": {"macro.releases": 3},
        "last_releases": {"S1": released},
    }
    monkeypatch.setattr("consumers.pipeline_sampler.pipeline_state", lambda conn: state)
    lag = {"alphafactory-allocator": 5, "alphafactory-generator": None}
    PipelineSampler(FakePool(), lambda: lag)()
    assert sample("alphafactory_requests_pending", state="evaluating") == 2
    assert REGISTRY.get_sample_value("alphafactory_requests_pending", {"state": "generating"}) == 0
    assert sample("alphafactory_dead_letters_stored", topic="macro.releases") == 3
    assert (
        sample("alphafactory_last_release_timestamp_seconds", series="S1") == released.timestamp()
    )
    age = sample("alphafactory_seconds_since_last_release", series="S1")
    assert age == pytest.approx(datetime.now(UTC).timestamp() - released.timestamp(), abs=60)
    allocator = {"group": "alphafactory-allocator", "topic": "alpha.backtest.results"}
    assert sample("alphafactory_consumer_lag", **allocator) == 5
    # a group that never committed has no lag sample (unknown is not zero)
    assert REGISTRY.get_sample_value(
        "alphafactory_consumer_lag",
        {"group": "alphafactory-generator", "topic": "alpha.generation.requests"},
    ) is None  # fmt: skip

    def broker_down():
        raise OSError("no broker")

    state["dead_letters"] = {}
    PipelineSampler(FakePool(), broker_down)()
    assert REGISTRY.get_sample_value("alphafactory_consumer_lag", allocator) is None
    assert (
        REGISTRY.get_sample_value("alphafactory_dead_letters_stored", {"topic": "macro.releases"})
        is None
    )


def test_the_reconciler_counts_its_actions_and_samples_after_each_pass():
    stop = threading.Event()
    passes = []

    class OnePass:
        def reconcile(self):
            return {"stalled": 2, "unsent": 0}

    def sampler():
        passes.append(1)
        stop.set()
        raise RuntimeError("a failed sample is logged, not fatal")

    before = sample("alphafactory_reconciler_actions_total", action="stalled")
    assert run_reconciler(OnePass(), stop_event=stop, every_s=0.01, sample=sampler) == 2
    assert sample("alphafactory_reconciler_actions_total", action="stalled") - before == 2
    assert passes == [1]


def test_the_release_age_is_computed_at_each_scrape():
    clock = iter([1_000.0, 1_060.0])
    collector = telemetry.ReleaseAgeCollector(clock=lambda: next(clock))
    collector.set({"S": 900.0})
    first, second = (next(iter(collector.collect())).samples[0].value for _ in range(2))
    assert (first, second) == (100.0, 160.0)


def test_a_service_endpoint_serves_its_metrics_and_a_taken_port_is_not_fatal():
    from app import metrics_endpoint

    settings = load_settings(metrics={"port": free_port_range(12)})
    url = metrics_endpoint.serve(settings, "allocator")
    assert url == f"http://127.0.0.1:{settings.metrics.port + 3}/metrics"
    with urlopen(url, timeout=5) as response:
        body = response.read().decode()
    assert "alphafactory_triton_fallbacks_total" in body
    assert metrics_endpoint.serve(settings, "allocator") is None  # the port is taken now
    off = load_settings(metrics={"enabled": False})
    assert metrics_endpoint.serve(off, "allocator") is None


FORKED_WORKER = """
import json, os, sys
from app import metrics_endpoint
from alphafactory.settings import load_settings
metrics_endpoint.prepare_multiprocess("worker")
settings = load_settings(metrics={"port": int(sys.argv[1])})
url = metrics_endpoint.serve(settings, "worker")
from alphafactory import telemetry
child = os.fork()
if child == 0:  # a Celery prefork child: counts in its own process
    telemetry.EVALUATIONS.labels("alpha").inc(7)
    os._exit(0)
os.waitpid(child, 0)
from urllib.request import urlopen
print(json.dumps({"url": url, "body": urlopen(url, timeout=5).read().decode()}))
"""


def test_a_forked_childs_counts_reach_the_parents_endpoint():
    """Celery runs tasks in forked children: multiprocess mode merges their counts."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("ALPHAFACTORY_")}
    env.pop("PROMETHEUS_MULTIPROC_DIR", None)
    result = subprocess.run(
        [sys.executable, "-c", FORKED_WORKER, str(free_port_range(12))],
        capture_output=True, text=True, timeout=120, env=env,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    body = json.loads(result.stdout)["body"]
    assert 'alphafactory_evaluations_total{outcome="alpha"} 7.0' in body


def test_multiprocess_mode_refuses_to_start_after_the_metrics_were_imported(monkeypatch):
    from app import metrics_endpoint

    monkeypatch.delenv(metrics_endpoint.MULTIPROC_VARIABLE, raising=False)
    with pytest.raises(RuntimeError, match="imported before multiprocess mode"):
        metrics_endpoint.prepare_multiprocess("worker")
