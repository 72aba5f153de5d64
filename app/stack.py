"""The local stack of this deployment: the infrastructure of ``deploy.local`` prepared
(topics, roles, schema) and the declared services (``app.services.SERVICES``) started as
local processes running the same commands docker-compose runs."""

from __future__ import annotations

import sys

from alphafactory.settings import Settings
from app.services import SERVICES
from deploy.local import stack
from deploy.local.services import ServiceProcess

StackError = stack.StackError
UpReport = stack.UpReport
COMPONENTS = stack.COMPONENTS
stack_paths = stack.stack_paths


def service_processes() -> list[ServiceProcess]:
    """Every declared service as a local process (``python -m app.cli.main COMMAND``)."""
    entry = [sys.executable, "-m", "app.cli.main"]
    return [ServiceProcess(s.name, [*entry, *s.command]) for s in SERVICES]


def service_process(name: str) -> ServiceProcess:
    return next(p for p in service_processes() if p.name == name)


def _enabled(settings: Settings) -> list[ServiceProcess]:
    return service_processes() if settings.pipeline.services else []


def prepare(settings: Settings) -> list[str]:
    """Create every topic and migrate the database; returns the migrations applied."""
    from alphafactory.topics import ALL_TOPICS
    from messaging.admin import ensure_topics
    from storage.admin import prepare_database

    ensure_topics(settings.kafka, ALL_TOPICS)
    return prepare_database(settings.postgres)


def up(settings: Settings) -> UpReport:
    return stack.up(settings, prepare=prepare, services=_enabled(settings))


def down(settings: Settings) -> list[str]:
    # every declared service: one started while `pipeline.services` was on is stopped too
    return stack.down(settings, service_processes())


def restart(settings: Settings, names: list[str]) -> list[str]:
    restarted = stack.restart(settings, names, _enabled(settings))
    if "kafka" in restarted:  # the local broker's log is in memory: its topics are gone
        from alphafactory.topics import ALL_TOPICS
        from messaging.admin import ensure_topics

        ensure_topics(settings.kafka, ALL_TOPICS)
    return restarted


def status(settings: Settings) -> dict:
    """The components' and services' health (DESIGN.md contract 2), each service's
    Prometheus endpoint under ``metrics`` and the dashboard's address under
    ``dashboard.url`` (contract 9)."""
    from app.services import dashboard_url, metrics_url

    enabled = _enabled(settings)
    result = stack.status(settings, enabled)
    if settings.metrics.enabled:
        result["metrics"] = {s.name: metrics_url(settings, s.name) for s in enabled}
    else:
        result["metrics"] = {}
    result.setdefault("dashboard", {})["url"] = dashboard_url(settings)
    return result
