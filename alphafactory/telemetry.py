"""Every Prometheus metric of the pipeline, declared once.

The services count here what they do (records consumed, dead letters, tasks, evaluations,
Triton calls, allocations, reconciler actions); the reconciler, which already watches the
whole pipeline, samples its state from Postgres and Kafka on each pass (consumer lag,
requests not ended, the newest release of each series, stored dead letters). Metrics are
in-memory values: declaring and counting them is no I/O. The composition root
(``app.metrics_endpoint``) serves them over HTTP, one endpoint per service; the Celery
workers' forked children write theirs to files the endpoint merges (prometheus_client's
multiprocess mode), so only counters and histograms are counted inside a task.

Names follow Prometheus' conventions: ``_total`` counters, ``_seconds`` durations, base
units. tests/test_telemetry.py holds the dashboards in deploy/monitoring to these names.
"""

from __future__ import annotations

import time
from collections.abc import Iterator, Mapping

from prometheus_client import REGISTRY, Counter, Gauge, Histogram
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

PREFIX = "alphafactory_"

# -- counted by the services ------------------------------------------------------------
RECORDS_CONSUMED = Counter(
    "alphafactory_records_consumed",
    "Kafka records a consume loop handled and committed, by topic and consumer group",
    ["topic", "group"],
)
DEAD_LETTERS = Counter(
    "alphafactory_dead_letters",
    "Records and Celery chunks dead-lettered, by source topic and reason (the error's type)",
    ["topic", "reason"],
)
CELERY_TASKS = Counter(
    "alphafactory_celery_tasks",
    "Celery tasks ended, by task and outcome (success, retry, failure)",
    ["task", "outcome"],
)
EVALUATIONS = Counter(
    "alphafactory_evaluations",
    "Candidates evaluated point-in-time by the workers, by outcome (alpha, rejected, failed)",
    ["outcome"],
)
EVALUATION_CHUNK_SECONDS = Histogram(
    "alphafactory_evaluation_chunk_seconds",
    "Wall time of one evaluation chunk (load the panel, score, write the metrics)",
    buckets=(0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300),
)
TRITON_CALL_SECONDS = Histogram(
    "alphafactory_triton_call_seconds",
    "Latency of one batched next-action call to Triton (retries included)",
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 10),
)
TRITON_FALLBACKS = Counter(
    "alphafactory_triton_fallbacks",
    "Next-action calls answered by the in-process model because Triton was unavailable",
)
CANDIDATES_GENERATED = Counter(
    "alphafactory_candidates_generated",
    "Candidate formulas the generator sent to evaluation, by strategy",
    ["strategy"],
)
OUTBOX_RELAYED = Counter(
    "alphafactory_outbox_relayed",
    "Events the relay published from the Postgres outbox to Kafka, by topic",
    ["topic"],
)
ALLOCATIONS = Counter(
    "alphafactory_allocations",
    "Allocations (target positions) written, by strategy",
    ["strategy"],
)
RECONCILER_ACTIONS = Counter(
    "alphafactory_reconciler_actions",
    "Things the reconciler re-drove from Postgres, by action",
    ["action"],
)

# -- sampled by the reconciler on each pass ----------------------------------------------
CONSUMER_LAG = Gauge(
    "alphafactory_consumer_lag",
    "Records on a topic that a consumer group has not committed yet",
    ["group", "topic"],
)
REQUESTS_NOT_ENDED = Gauge(
    "alphafactory_requests_pending",
    "Generation requests not ended yet, by state",
    ["state"],
)
DEAD_LETTERS_STORED = Gauge(
    "alphafactory_dead_letters_stored",
    "Dead letters kept in Postgres (not retried or removed yet), by source topic",
    ["topic"],
)
LAST_RELEASE_TIMESTAMP = Gauge(
    "alphafactory_last_release_timestamp_seconds",
    "When the newest release of each series was released (Unix time)",
    ["series"],
)
PIPELINE_SAMPLED_TIMESTAMP = Gauge(
    "alphafactory_pipeline_sampled_timestamp_seconds",
    "When the reconciler last sampled the pipeline's state (Unix time)",
)


class ReleaseAgeCollector(Collector):
    """``alphafactory_seconds_since_last_release{series}``, computed at each scrape from
    the sampled release times: the age is always current, between two samples too."""

    def __init__(self, clock=time.time) -> None:
        self._released: dict[str, float] = {}
        self._clock = clock

    def set(self, released: Mapping[str, float]) -> None:
        self._released = dict(released)

    def collect(self) -> Iterator[GaugeMetricFamily]:
        family = GaugeMetricFamily(
            "alphafactory_seconds_since_last_release",
            "Seconds since the newest release of each series was released",
            labels=["series"],
        )
        now = self._clock()
        for series, released in sorted(self._released.items()):
            family.add_metric([series], max(0.0, now - released))
        yield family


RELEASE_AGE = ReleaseAgeCollector()
REGISTRY.register(RELEASE_AGE)


def replace_labelled(gauge: Gauge, values: Mapping[tuple[str, ...], float]) -> None:
    """Set a labelled gauge to exactly ``values``: label sets that are gone (a lag caught
    up to a group that no longer exists, a state with no request left) are removed, not
    left at their last value."""
    gauge.clear()
    for labels, value in values.items():
        gauge.labels(*labels).set(value)
