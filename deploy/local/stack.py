"""The local embedded stack as one unit: infrastructure processes, then the services.

``up`` starts every embedded component that is not already running (so a second ``up``
changes nothing), waits until each answers its own protocol, then runs the caller's
``prepare`` (the composition root creates the Kafka topics and migrates the database) and
starts the services it is given. Components configured as external (``embedded=false``)
are not started, only waited for, so the same command prepares a production database and
broker.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from alphafactory.settings import Settings
from deploy.local import process
from deploy.local.components import COMPONENTS, ComponentError, StackPaths, embedded
from deploy.local.services import ServiceProcess

Services = Sequence[ServiceProcess]
STARTUP_CHECK_S = 2.0

log = logging.getLogger(__name__)


class StackError(RuntimeError):
    """One or more components failed; ``failures`` holds each one's ComponentError."""

    def __init__(self, failures: list[ComponentError]):
        self.failures = failures
        super().__init__("stack up failed:\n" + "\n".join(f"  - {f}" for f in failures))


@dataclass
class UpReport:
    started: list[str] = field(default_factory=list)
    already_running: list[str] = field(default_factory=list)
    external: list[str] = field(default_factory=list)
    migrations_applied: list[str] = field(default_factory=list)


def stack_paths(settings: Settings) -> StackPaths:
    return StackPaths(settings.state_path)


def up(
    settings: Settings, *, prepare: Callable[[Settings], list[str]], services: Services
) -> UpReport:
    """Start the stack; ``prepare`` runs once the infrastructure is ready and returns the
    migrations it applied; ``services`` start after it."""
    paths = stack_paths(settings)
    paths.root.mkdir(parents=True, exist_ok=True)
    report = UpReport()
    failures: list[ComponentError] = []
    for component in COMPONENTS:
        if not embedded(component, settings):
            report.external.append(component.name)
        elif component.running_pid(settings, paths) is not None:
            report.already_running.append(component.name)
        else:
            try:
                component.start(settings, paths)
                report.started.append(component.name)
            except ComponentError as error:
                failures.append(error)
            except RuntimeError as error:  # binary missing and similar, raised before spawn
                failures.append(
                    ComponentError(component.name, str(error), paths.log(component.name))
                )
    failed = {f.component for f in failures}
    failures += _wait_until_ready(settings, paths, [c for c in COMPONENTS if c.name not in failed])
    if failures:
        raise StackError(failures)
    report.migrations_applied = prepare(settings)
    _start_services(settings, paths, services, report)
    return report


def _start_services(
    settings: Settings, paths: StackPaths, services: Services, report: UpReport
) -> None:
    """The pipeline services, once the infrastructure is ready and migrated."""
    for service in services:
        if service.running_pid(settings, paths) is not None:
            report.already_running.append(service.name)
        else:
            service.start(settings, paths)
            report.started.append(service.name)
    time.sleep(STARTUP_CHECK_S if services else 0.0)  # a service that cannot start dies at once
    failures = [
        ComponentError(s.name, f"exited during start-up ({reason})", paths.log(s.name))
        for s in services
        if (reason := _startup_failure(s, settings, paths))
    ]
    if failures:
        raise StackError(failures)


def _startup_failure(service: ServiceProcess, settings: Settings, paths: StackPaths) -> str:
    """Why a service just started is not running ("" if it is): its supervisor died, or
    the service already exited and is being restarted."""
    if service.exited(settings, paths):
        return process.exit_status(paths.pid(service.name))
    supervision = service.supervision(paths)
    if supervision.get("restarts"):
        return f"{supervision.get('last_exit')}; its supervisor keeps restarting it"
    return ""


COMPONENT_NAMES = {component.name for component in COMPONENTS}


def restart(settings: Settings, names: list[str], services: Services) -> list[str]:
    """Stop and start the named embedded components or services (e.g. triton, to serve a
    newly exported model) and wait until they are ready; returns the names restarted."""
    paths = stack_paths(settings)
    known = {component.name: component for component in (*COMPONENTS, *services)}
    unknown = sorted(set(names) - set(known))
    if unknown:
        raise StackError(
            [
                ComponentError(n, f"no such component; expected one of {sorted(known)}", paths.root)
                for n in unknown
            ]
        )
    chosen = [known[n] for n in names if n not in COMPONENT_NAMES or embedded(known[n], settings)]
    for component in chosen:
        component.stop(settings, paths)
        component.start(settings, paths)
    failures = _wait_until_ready(settings, paths, chosen)
    if failures:
        raise StackError(failures)
    return [component.name for component in chosen]


def _wait_until_ready(settings: Settings, paths: StackPaths, components) -> list[ComponentError]:
    deadline = time.monotonic() + settings.startup_timeout_s
    pending = {c.name: c for c in components}
    reasons: dict[str, str] = {}
    failures: list[ComponentError] = []
    while pending:
        for name, component in list(pending.items()):
            reason = component.ready(settings)
            if reason is None:
                del pending[name]
                continue
            reasons[name] = reason
            if embedded(component, settings) and component.exited(settings, paths):
                ended = process.exit_status(paths.pid(name))
                failures.append(
                    ComponentError(
                        name, f"exited during start-up ({reason}; {ended})", paths.log(name)
                    )
                )
                del pending[name]
        if pending and time.monotonic() > deadline:
            failures += [
                ComponentError(
                    name,
                    f"not ready after {settings.startup_timeout_s:.0f} s: {reasons.get(name)}",
                    paths.log(name),
                )
                for name in pending
            ]
            break
        if pending:
            time.sleep(0.2)
    return failures


def down(settings: Settings, services: Services) -> list[str]:
    """Stop the services and every embedded component this state directory started;
    returns their names."""
    paths = stack_paths(settings)
    stopped = [s.name for s in services if s.stop(settings, paths)]
    for component in reversed(COMPONENTS):
        if embedded(component, settings) and component.stop(settings, paths):
            stopped.append(component.name)
    return stopped


def status(settings: Settings, services: Services) -> dict:
    """Live health of every component, in the shape DESIGN.md's contract fixes."""
    paths = stack_paths(settings)
    result: dict = {"state_dir": str(paths.root)}
    for component in COMPONENTS:
        reason = component.health(settings)
        is_embedded = embedded(component, settings)
        entry = {
            **component.describe(settings),
            "up": reason is None,
            "embedded": is_embedded,
        }
        if is_embedded:
            entry["pid"] = component.running_pid(settings, paths)
            entry["log"] = str(paths.log(component.name))
        if reason is not None:
            entry["error"] = reason
        result[component.name] = entry
    for service in services:
        reason = service.health(settings)
        entry = {
            **service.describe(settings),
            "up": reason is None,
            "embedded": True,
            "pid": service.running_pid(settings, paths),
            "log": str(paths.log(service.name)),
        }
        result[service.name] = entry if reason is None else {**entry, "error": reason}
    names = [c.name for c in COMPONENTS] + [s.name for s in services]
    result["up"] = all(result[name]["up"] for name in names)
    return result
