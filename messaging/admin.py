"""Broker readiness and topic creation, called by ``alphafactory stack up`` and by tests;
consumer groups' lag, for ``alphafactory status``."""

from __future__ import annotations

import logging
import time
from collections.abc import Iterable, Mapping

from kafka import KafkaAdminClient, KafkaConsumer, TopicPartition
from kafka.errors import KafkaError, TopicAlreadyExistsError

from alphafactory.retry import Backoff, RetriesExhausted, retry
from alphafactory.settings import KafkaSettings
from messaging.client import client_options
from messaging.errors import BrokerUnavailableError, TopicSetupError

logger = logging.getLogger(__name__)

# a readiness probe polls at a steady pace: the broker is expected within seconds
_READINESS_POLL = Backoff(first_s=0.2, max_s=0.2, jitter=False)


def _open_admin(settings: KafkaSettings, *, timeout_s: float) -> KafkaAdminClient:
    """An admin client whose bootstrap and requests give up after ``timeout_s``."""
    options = client_options(settings, role="admin")
    timeout_ms = max(1, int(timeout_s * 1000))
    options["bootstrap_timeout_ms"] = timeout_ms
    options["request_timeout_ms"] = min(options["request_timeout_ms"], timeout_ms)
    return KafkaAdminClient(**options)


def wait_for_broker(settings: KafkaSettings, timeout_s: float = 30.0) -> None:
    """Return once a broker at ``settings.bootstrap`` answers a metadata request.

    A metadata round trip (``list_topics``), not just an open port, is the readiness test.
    Raises BrokerUnavailableError naming the address and the last cause after ``timeout_s``.
    """
    deadline = time.monotonic() + timeout_s

    def list_topics() -> list:
        remaining = max(0.001, deadline - time.monotonic())
        with _open_admin(settings, timeout_s=remaining) as admin:
            return admin.list_topics()

    try:
        topics = retry(
            list_topics,
            retry_on=(KafkaError, OSError),
            backoff=_READINESS_POLL,
            timeout_s=timeout_s,
            on_retry=lambda error, *_: logger.debug(
                "Kafka broker at %s not ready yet: %s", settings.bootstrap, error
            ),
        )
    except RetriesExhausted as exhausted:
        raise BrokerUnavailableError(
            f"no Kafka broker answered metadata at {settings.bootstrap} within {timeout_s:g} s "
            f"(last error: {exhausted.__cause__}); start the local stack with `alphafactory "
            "stack up` or point ALPHAFACTORY_KAFKA__BOOTSTRAP at a running broker"
        ) from exhausted.__cause__
    logger.info("Kafka broker at %s is up (%d topics)", settings.bootstrap, len(topics))


def ensure_topics(
    settings: KafkaSettings,
    topics: Iterable[str],
    *,
    partitions: int = 3,
    replication: int = 1,
    timeout_s: float = 30.0,
) -> list[str]:
    """Create the topics that do not exist yet and wait until they are usable.

    Idempotent: existing topics are left as they are (their partition count is not
    changed). Returns the names this call created. Raises TopicSetupError when the broker
    refuses a topic for any other reason, and BrokerUnavailableError when it cannot be reached.
    """
    if partitions < 1 or replication < 1:
        raise ValueError(
            f"partitions and replication must be >= 1, got {partitions} and {replication}"
        )
    names = list(dict.fromkeys(topics))
    if not names:
        return []
    spec = {
        name: {"num_partitions": partitions, "replication_factor": replication} for name in names
    }
    try:
        admin = _open_admin(settings, timeout_s=timeout_s)
    except (KafkaError, OSError) as error:
        raise BrokerUnavailableError(
            f"could not reach Kafka at {settings.bootstrap} to create topics {names}: {error}"
        ) from error
    with admin:
        try:
            created = _created_topics(admin.create_topics(spec, raise_errors=False))
            admin.wait_for_topics(names, timeout_ms=int(timeout_s * 1000))
        except KafkaError as error:
            raise TopicSetupError(
                f"creating topics {names} on {settings.bootstrap} failed: {error}"
            ) from error
    logger.info("Kafka topics ready: %s (created %s)", names, created or "none")
    return created


def _created_topics(response: dict) -> list[str]:
    """Names created by a CreateTopics response; raises on errors other than 'exists'."""
    created = []
    for result in response["topics"]:
        code = result["error_code"]
        if code == 0:
            created.append(result["name"])
        elif code != TopicAlreadyExistsError.errno:
            raise TopicSetupError(
                f"broker refused to create topic {result['name']!r}: error code {code} "
                f"({result.get('error_message')})"
            )
    return created


def consumer_lag(
    settings: KafkaSettings, groups: Mapping[str, str], *, timeout_s: float = 10.0
) -> dict[str, int | None]:
    """Per consumer group, the records of its topic it has not committed yet (summed over
    the partitions: end offset minus committed offset, a partition never committed
    counting from its start); None for a group that has committed nothing. Raises
    BrokerUnavailableError when the broker does not answer."""
    try:
        with _open_admin(settings, timeout_s=timeout_s) as admin:
            # one group a call: a broker before OffsetFetch v8 (tansu) takes one at a time
            committed = {g: admin.list_group_offsets({g: None})[g] for g in groups}
        consumer = KafkaConsumer(**client_options(settings, role="lag"), group_id=None)
    except KafkaError as error:
        raise BrokerUnavailableError(
            f"the Kafka broker at {settings.bootstrap} did not answer: {error}"
        ) from error
    try:
        lag: dict[str, int | None] = {}
        for group, topic in groups.items():
            offsets = committed[group]
            if not offsets:
                lag[group] = None
                continue
            partitions = [
                TopicPartition(topic, p) for p in consumer.partitions_for_topic(topic) or ()
            ]
            ends = consumer.end_offsets(partitions)
            starts = consumer.beginning_offsets(partitions)
            # a partition the group never committed (absent, or offset -1) counts from its start
            done = {
                tp: max(offsets[tp].offset, starts[tp]) if tp in offsets else starts[tp]
                for tp in partitions
            }
            # a commit past the reported end offset means the broker's end is behind (the
            # local tansu's end offsets are unreliable): no record is waiting there
            lag[group] = sum(max(0, ends[tp] - done[tp]) for tp in partitions)
        return lag
    finally:
        consumer.close()
