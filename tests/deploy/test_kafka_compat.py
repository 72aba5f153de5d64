"""The local broker's compatibility proxy: librdkafka's kcat can publish and consume."""

from __future__ import annotations

import shutil
import struct
import subprocess
import uuid

import pytest

from deploy.local.kafka_compat import strip_api_versions_tags


def api_versions_response(tagged: bytes) -> bytes:
    keys = [(0, 0, 9), (18, 0, 3)]
    body = struct.pack(">ih", 7, 0) + bytes([len(keys) + 1])
    body += b"".join(struct.pack(">hhh", *k) + b"\x00" for k in keys)
    return body + struct.pack(">i", 0) + tagged


def test_the_optional_tagged_fields_are_dropped_and_the_rest_kept():
    features = b"\x04\x00\x01\x01\x01\x08" + b"\xff" * 8 + b"\x02\x01\x01\x03\x01\x00"
    stripped = strip_api_versions_tags(api_versions_response(features))
    assert stripped == api_versions_response(b"\x00")
    assert strip_api_versions_tags(stripped) == stripped  # nothing left to drop


@pytest.mark.skipif(not shutil.which("kcat"), reason="needs kcat (Debian package)")
def test_kcat_publishes_and_consumes_through_the_local_broker(stack_settings):
    from kafka import KafkaConsumer

    topic = f"test.kcat.{uuid.uuid4().hex[:8]}"
    bootstrap = stack_settings.kafka.bootstrap
    subprocess.run(
        ["kcat", "-P", "-b", bootstrap, "-t", topic, "-K", "\t"],
        input=b'series\t{"v": 1}\n',
        check=True,
        timeout=60,
    )
    consumer = KafkaConsumer(
        topic, bootstrap_servers=bootstrap, auto_offset_reset="earliest", consumer_timeout_ms=5000
    )
    assert [(r.key, r.value) for r in consumer] == [(b"series", b'{"v": 1}')]
    consumer.close()
    command = ["kcat", "-C", "-b", bootstrap, "-t", topic, "-e", "-o", "beginning"]
    command += ["-f", "%k=%s\\n"]
    out = subprocess.run(command, capture_output=True, check=True, timeout=60)
    assert out.stdout.decode().strip() == 'series={"v": 1}'
