"""`alphafactory deadletters list | retry ID` on the session's real Postgres and broker."""

from __future__ import annotations

import json
import subprocess
import sys

import psycopg

from messaging.admin import ensure_topics
from storage.dead_letters import list_dead_letters, record_dead_letter
from tests.stack_support import settings_env


def command(settings, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "app.cli.main", "deadletters", *args],
        env=settings_env(settings),
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_a_dead_letter_is_listed_then_published_again_and_removed(
    stack_settings, kafka_settings, private_database, read_topic, unique
):
    topic = unique("letters")
    ensure_topics(kafka_settings, [topic], partitions=1)
    settings = stack_settings.model_copy(update={"postgres": private_database()})
    payload = b'{"event_id": "e-1", "value": 1.5}'
    with psycopg.connect(settings.postgres.dsn("app"), autocommit=True) as conn:
        letter = record_dead_letter(
            conn, topic=topic, partition=0, offset=7, key="us_infl", payload=payload,
            error="NoMarketData: nothing stored by 2024-01-01",
        )  # fmt: skip
        chunk = record_dead_letter(
            conn, topic="celery:alphafactory.evaluate", partition=None, offset=None,
            key="request-1", payload=b"{}", error="ValueError: poison",
        )  # fmt: skip

    listed = command(settings, "list", "--json")
    assert listed.returncode == 0, listed.stderr
    rows = {row["id"]: row for row in json.loads(listed.stdout)["dead_letters"]}
    assert list(rows) == [chunk, letter]  # newest first
    assert rows[letter]["topic"] == topic and rows[letter]["key"] == "us_infl"
    assert rows[letter]["error"].startswith("NoMarketData")
    assert rows[letter]["payload_bytes"] == len(payload)
    only = json.loads(command(settings, "list", "--topic", topic, "--json").stdout)
    assert [row["id"] for row in only["dead_letters"]] == [letter]

    retried = command(settings, "retry", str(letter))
    assert retried.returncode == 0, retried.stderr
    assert json.loads(retried.stdout)["retried"] == letter
    (record,) = read_topic(topic, expect=1)
    assert (record.key, record.value) == (b"us_infl", payload)

    refused = command(settings, "retry", str(chunk))
    assert refused.returncode == 2 and "failed evaluation chunk" in refused.stderr
    missing = command(settings, "retry", "999999")
    assert missing.returncode == 1 and "no dead letter 999999" in missing.stderr
    with psycopg.connect(settings.postgres.dsn("app"), autocommit=True) as conn:
        assert [d.id for d in list_dead_letters(conn)] == [chunk]  # the retried one is gone
