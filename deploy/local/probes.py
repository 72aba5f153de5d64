"""Real health probes, shared by `stack up` (readiness) and `stack status` (health).

Each probe talks the component's own protocol: Kafka metadata, a Postgres query, Redis
PING, Triton's readiness endpoint. A probe returns ``None`` when healthy, else a short
reason; it never raises.
"""

from __future__ import annotations

import contextlib
import logging
import socket
import urllib.error
import urllib.request

from alphafactory.settings import KafkaSettings, host_of, port_of

# kafka-python logs every refused connection at ERROR while we poll a starting broker.
logging.getLogger("kafka").setLevel(logging.CRITICAL)


def port_in_use(address: str) -> bool:
    """True when something accepts TCP connections on ``HOST:PORT``."""
    with contextlib.closing(socket.socket(socket.AF_INET, socket.SOCK_STREAM)) as sock:
        sock.settimeout(0.5)
        return sock.connect_ex((host_of(address), port_of(address))) == 0


def kafka(settings: KafkaSettings, timeout_s: float = 3.0) -> str | None:
    from messaging.admin import wait_for_broker
    from messaging.errors import BrokerUnavailableError

    try:
        wait_for_broker(settings, timeout_s=timeout_s)
        return None
    except BrokerUnavailableError as error:
        return f"no Kafka metadata from {settings.bootstrap}: {error.__cause__ or error}"


def postgres(dsn: str, timeout_s: float = 3.0) -> str | None:
    import psycopg

    from storage.db import ping

    try:
        ping(dsn, timeout_s=timeout_s)
        return None
    except psycopg.Error as error:
        first_line = str(error).strip().splitlines()[0] if str(error).strip() else ""
        return f"Postgres query failed: {type(error).__name__}: {first_line}"


def redis(url: str, timeout_s: float = 3.0) -> str | None:
    import redis as redis_client

    client = redis_client.Redis.from_url(
        url, socket_timeout=timeout_s, socket_connect_timeout=timeout_s
    )
    try:
        return None if client.ping() else "Redis PING got no PONG"
    except redis_client.RedisError as error:
        return f"Redis PING failed: {type(error).__name__}: {error}"
    finally:
        client.close()


def triton(http: str, model: str | None = None, timeout_s: float = 3.0) -> str | None:
    """Server readiness, and the model's readiness when ``model`` is given."""
    paths = ["/v2/health/ready"] + ([f"/v2/models/{model}/ready"] if model else [])
    for path in paths:
        url = f"http://{http}{path}"
        try:
            with urllib.request.urlopen(url, timeout=timeout_s) as response:
                if response.status != 200:
                    return f"GET {url} answered {response.status}"
        except urllib.error.HTTPError as error:
            return f"GET {url} answered {error.code}"
        except (urllib.error.URLError, OSError) as error:
            return f"GET {url} failed: {error}"
    return None
