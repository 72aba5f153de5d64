"""kafka-python client options shared by the producer, the admin client and the consumers."""

from __future__ import annotations

from typing import Any

from alphafactory.settings import KafkaSettings


def bootstrap_servers(settings: KafkaSettings) -> list[str]:
    """The bootstrap addresses as kafka-python wants them (a list of ``HOST:PORT``)."""
    return [address.strip() for address in settings.bootstrap.split(",") if address.strip()]


def client_options(settings: KafkaSettings, *, role: str) -> dict[str, Any]:
    """Options every client takes; ``role`` suffixes the client id (seen in broker logs)."""
    return {
        "bootstrap_servers": bootstrap_servers(settings),
        "client_id": f"{settings.client_id}-{role}",
        "request_timeout_ms": settings.request_timeout_ms,
        # Bounded so a missing broker fails a constructor instead of hanging it.
        "bootstrap_timeout_ms": settings.request_timeout_ms,
    }
