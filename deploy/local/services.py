"""The pipeline services as local processes: the same commands docker-compose runs.

The composition root hands ``deploy.local.stack`` one :class:`ServiceProcess` per declared
service (``app.services.SERVICES``); ``stack up`` starts them after Kafka, Postgres, Redis
and Triton are ready and migrated, each detached in its own process group with a pid file
and a log under the state directory, its settings passed through ``ALPHAFACTORY_*``
variables. Each runs under ``deploy.local.supervise``, which restarts it when it dies, as
compose's restart policy does. A service is up while its supervisor lives; ``stack down``
sends SIGTERM first, so consumers finish the record in hand and commit.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Sequence
from pathlib import Path

from alphafactory.settings import Settings, settings_env
from deploy.local import process
from deploy.local.components import StackPaths
from deploy.local.supervise import read_status


class ServiceProcess:
    def __init__(self, name: str, argv: Sequence[str]) -> None:
        self.name = name
        self._argv = list(argv)

    def argv(self) -> list[str]:
        return list(self._argv)

    def running_pid(self, settings: Settings, paths: StackPaths) -> int | None:
        return process.running_pid(paths.pid(self.name))

    def status_file(self, paths: StackPaths) -> Path:
        return paths.pid(self.name).with_suffix(".supervisor.json")

    def supervision(self, paths: StackPaths) -> dict:
        """The supervisor's status: ``child_pid``, ``restarts``, ``last_exit``."""
        return read_status(self.status_file(paths))

    def start(self, settings: Settings, paths: StackPaths) -> None:
        env = {k: v for k, v in os.environ.items() if not k.startswith("ALPHAFACTORY_")}
        env.update(settings_env(settings))
        env["PYTHONUNBUFFERED"] = "1"
        status = self.status_file(paths)
        status.unlink(missing_ok=True)
        supervised = [
            sys.executable,
            "-m",
            "deploy.local.supervise",
            "--name",
            self.name,
            "--status",
            str(status),
            "--",
            *self._argv,
        ]
        # the service's command is in the command line: it tells our process from a stranger
        process.spawn(
            supervised,
            pid_file=paths.pid(self.name),
            log_file=paths.log(self.name),
            marker=self._argv[-1],
            env=env,
        )

    def exited(self, settings: Settings, paths: StackPaths) -> bool:
        return process.gone(paths.pid(self.name))

    def stop(self, settings: Settings, paths: StackPaths) -> bool:
        return process.stop_pid_file(paths.pid(self.name))

    def ready(self, settings: Settings) -> str | None:
        alive = self.running_pid(settings, StackPaths(settings.state_path)) is not None
        return None if alive else "not running"

    health = ready

    def describe(self, settings: Settings) -> dict:
        supervision = self.supervision(StackPaths(settings.state_path))
        return {
            "command": " ".join(self._argv),
            "restarts": supervision.get("restarts", 0),
            "last_exit": supervision.get("last_exit"),
        }
