"""Each service's Prometheus endpoint: ``http://HOST:PORT/metrics`` (``metrics.host``,
``app.services.metrics_port``), served from a daemon thread of the service's process.

A Celery worker runs its tasks in forked children, whose counters a thread of the parent
cannot see: there prometheus_client's multiprocess mode is used (every process writes its
values to files in one directory, the endpoint merges them). The mode is chosen by an
environment variable read when prometheus_client is imported, so
:func:`prepare_multiprocess` runs before anything imports ``alphafactory.telemetry``.

A port already taken (a second instance of a service on one machine) is logged and the
service runs on without an endpoint: metrics must never stop the pipeline.
"""

from __future__ import annotations

import atexit
import logging
import os
import shutil
import sys
import tempfile
from typing import TYPE_CHECKING

from app.services import metrics_port, metrics_url

if TYPE_CHECKING:
    from alphafactory.settings import Settings

log = logging.getLogger("alphafactory.metrics")
MULTIPROC_VARIABLE = "PROMETHEUS_MULTIPROC_DIR"


def prepare_multiprocess(service: str) -> str:
    """Put this process (and the children it forks) in multiprocess mode, with a fresh
    directory removed at exit; returns the directory."""
    if "prometheus_client" in sys.modules and not os.environ.get(MULTIPROC_VARIABLE):
        raise RuntimeError(
            "prometheus_client was imported before multiprocess mode was set: "
            f"{service}'s task counters would be lost; call prepare_multiprocess first"
        )
    directory = tempfile.mkdtemp(prefix=f"alphafactory-{service}-metrics-")
    os.environ[MULTIPROC_VARIABLE] = directory
    parent = os.getpid()

    def remove() -> None:
        if os.getpid() == parent:  # a forked child exiting must not remove the parent's
            shutil.rmtree(directory, ignore_errors=True)

    atexit.register(remove)
    return directory


def serve(settings: Settings, service: str) -> str | None:
    """Start ``service``'s endpoint; its URL, or None when metrics are off or the port is
    taken."""
    if not settings.metrics.enabled:
        return None
    import prometheus_client

    import alphafactory.telemetry  # noqa: F401  every metric declared before the first scrape

    registry = prometheus_client.REGISTRY
    if os.environ.get(MULTIPROC_VARIABLE):
        from prometheus_client import multiprocess

        registry = prometheus_client.CollectorRegistry()
        multiprocess.MultiProcessCollector(registry)
    port = metrics_port(settings, service)
    try:
        prometheus_client.start_http_server(port, addr=settings.metrics.host, registry=registry)
    except OSError as error:
        log.warning("%s: no metrics endpoint, port %d: %s", service, port, error)
        return None
    url = metrics_url(settings, service)
    log.info("%s: metrics at %s", service, url)
    return url
