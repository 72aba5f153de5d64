"""The pipeline's state as Prometheus gauges, sampled by the reconciler after each pass.

What no single service can count (a lag is the broker's and the group's, a pending
request belongs to no process once its service died) is read from where it is recorded:
Postgres (``storage.operations.pipeline_state``, what ``alphafactory status`` prints) and
the Kafka group offsets. One sampler for the deployment: the reconciler is one instance.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Mapping

from psycopg_pool import ConnectionPool

from alphafactory import telemetry
from alphafactory.topics import CONSUMER_GROUPS
from storage.operations import REQUEST_STATES, pipeline_state

log = logging.getLogger(__name__)
LagReader = Callable[[], Mapping[str, int | None]]  # consumer group -> records not committed


class PipelineSampler:
    """Callable: read the state once and set the gauges. A broker that does not answer
    leaves the lag gauges out (not at a stale value); the rest is still sampled."""

    def __init__(self, pool: ConnectionPool, read_lag: LagReader) -> None:
        self._pool, self._read_lag = pool, read_lag

    def __call__(self) -> None:
        with self._pool.connection() as conn:
            state = pipeline_state(conn)
        pending = state["pending_requests"]
        telemetry.replace_labelled(
            telemetry.REQUESTS_NOT_ENDED, {(s,): pending.get(s, 0) for s in REQUEST_STATES}
        )
        telemetry.replace_labelled(
            telemetry.DEAD_LETTERS_STORED,
            {(topic,): count for topic, count in state["dead_letters"].items()},
        )
        released = {s: at.timestamp() for s, at in state["last_releases"].items()}
        telemetry.replace_labelled(
            telemetry.LAST_RELEASE_TIMESTAMP, {(s,): at for s, at in released.items()}
        )
        telemetry.RELEASE_AGE.set(released)
        try:
            lag = self._read_lag()
        except Exception as error:  # the broker is down: its lag is unknown, not zero
            log.info("consumer lag not sampled: %s", error)
            telemetry.CONSUMER_LAG.clear()
        else:
            telemetry.replace_labelled(
                telemetry.CONSUMER_LAG,
                {
                    (group, CONSUMER_GROUPS[group]): behind
                    for group, behind in lag.items()
                    if behind is not None and group in CONSUMER_GROUPS
                },
            )
        telemetry.PIPELINE_SAMPLED_TIMESTAMP.set(time.time())
