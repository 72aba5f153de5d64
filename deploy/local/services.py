"""The pipeline services as local processes: the same commands docker-compose runs.

The composition root hands ``deploy.local.stack`` one :class:`ServiceProcess` per declared
service (``app.services.SERVICES``); ``stack up`` starts them after Kafka, Postgres, Redis
and Triton are ready and migrated, each detached in its own process group with a pid file
and a log under the state directory, its settings passed through ``ALPHAFACTORY_*``
variables. A service is ready while its process lives; ``stack down`` sends SIGTERM first,
so consumers finish the record in hand and commit.
"""

from __future__ import annotations

import os
from collections.abc import Sequence

from alphafactory.settings import Settings, settings_env
from deploy.local import process
from deploy.local.components import StackPaths


class ServiceProcess:
    def __init__(self, name: str, argv: Sequence[str]) -> None:
        self.name = name
        self._argv = list(argv)

    def argv(self) -> list[str]:
        return list(self._argv)

    def running_pid(self, settings: Settings, paths: StackPaths) -> int | None:
        return process.running_pid(paths.pid(self.name))

    def start(self, settings: Settings, paths: StackPaths) -> None:
        env = {k: v for k, v in os.environ.items() if not k.startswith("ALPHAFACTORY_")}
        env.update(settings_env(settings))
        env["PYTHONUNBUFFERED"] = "1"
        # the service name is in the command line: it tells our process from a stranger
        process.spawn(
            self._argv,
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
        return {"command": " ".join(self._argv)}
