"""Process settings: one validated class, built once in each process's ``main()``.

Every value comes from the environment (prefix ``ALPHAFACTORY_``, nested groups joined
with ``__``, e.g. ``ALPHAFACTORY_KAFKA__BOOTSTRAP=broker:9092``) or from the embedded
defaults below, which describe the local stack on loopback. Production points the
groups at external servers and sets ``embedded=false`` on each; no code changes.

Nothing here is built at import time: call :func:`load_settings` from ``main()`` and pass
the object down.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal
from urllib.parse import quote

from pydantic import BaseModel, Field, SecretStr, ValidationError, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

ENV_PREFIX = "ALPHAFACTORY_"
ENV_NESTED_DELIMITER = "__"


class SettingsError(ValueError):
    """The environment does not describe a valid configuration."""


def _host_port(value: str, field: str) -> str:
    host, sep, port = value.rpartition(":")
    if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise ValueError(f"{field} must be HOST:PORT with a port in 1..65535, got {value!r}")
    return value


def port_of(address: str) -> int:
    """The port of a ``HOST:PORT`` address (already validated)."""
    return int(address.rpartition(":")[2])


def host_of(address: str) -> str:
    return address.rpartition(":")[0]


class KafkaSettings(BaseModel):
    bootstrap: str = "127.0.0.1:19092"
    # embedded: `alphafactory stack up` runs a tansu broker on the bootstrap's port.
    embedded: bool = True
    client_id: str = "alphafactory"
    # tansu holds JoinGroup for session_timeout/2: 6 s keeps a rebalance at about 3 s.
    session_timeout_ms: int = Field(6000, ge=1000)
    heartbeat_interval_ms: int = Field(1000, ge=100)
    max_poll_interval_ms: int = Field(600_000, ge=10_000)
    request_timeout_ms: int = Field(30_000, ge=1000)

    @field_validator("bootstrap")
    @classmethod
    def _check_bootstrap(cls, value: str) -> str:
        for address in value.split(","):
            _host_port(address.strip(), "kafka.bootstrap")
        return value


# The local embedded stack's passwords: published here, so good for a loopback cluster
# only. With any component external they are refused, given or not (``Settings``).
LOCAL_DEFAULT_PASSWORDS = {
    "admin": "postgres-admin-local",
    "owner": "alphafactory-owner-local",
    "app": "alphafactory-app-local",
    "trading": "trading-reader-local",
    "viewer": "alphafactory-viewer-local",
}


class PostgresSettings(BaseModel):
    host: str = "127.0.0.1"
    port: int = Field(15432, gt=0, lt=65536)
    database: str = "alphafactory"
    # The superuser that creates the database and roles: the embedded cluster's
    # bootstrap superuser (initdb sets its password), or an external server's admin.
    admin_user: str = "postgres"
    owner_user: str = "alphafactory_owner"
    app_user: str = "alphafactory_app"
    trading_user: str = "trading_reader"
    # the web dashboard's login: SELECT on the app's tables and views, nothing else
    viewer_user: str = "alphafactory_viewer"
    # None: the local default (LOCAL_DEFAULT_PASSWORDS), for an all-embedded stack only
    admin_password: SecretStr | None = None
    owner_password: SecretStr | None = None
    app_password: SecretStr | None = None
    trading_password: SecretStr | None = None
    viewer_password: SecretStr | None = None
    embedded: bool = True
    pool_min_size: int = Field(1, ge=0)
    pool_max_size: int = Field(8, ge=1)

    def user(self, role: str) -> str:
        _check_role(role)
        return getattr(self, f"{role}_user")

    def password(self, role: str) -> str:
        """``role``'s password; the local default only while Postgres is embedded."""
        _check_role(role)
        given: SecretStr | None = getattr(self, f"{role}_password")
        if given is not None:
            return given.get_secret_value()
        if self.embedded:
            return LOCAL_DEFAULT_PASSWORDS[role]
        variable = f"{ENV_PREFIX}POSTGRES{ENV_NESTED_DELIMITER}{role.upper()}_PASSWORD"
        raise SettingsError(
            f"{variable} is not set: Postgres is external (postgres.embedded=false), so the "
            f"{self.user(role)!r} role has no default password; set it in the environment"
        )

    def dsn(self, role: str = "app", database: str | None = None, *, missing_ok=False) -> str:
        """A libpq URI for ``role``: one of admin, owner, app, trading. ``missing_ok``: a
        password that is not set is left out (to show where a role connects) instead of
        raising."""
        user = self.user(role)
        try:
            secret = self.password(role)
        except SettingsError:
            if not missing_ok:
                raise
            secret = ""
        auth = quote(user, safe="") + (f":{quote(secret, safe='')}" if secret else "")
        db = database or self.database
        return f"postgresql://{auth}@{self.host}:{self.port}/{quote(db, safe='')}"


def _check_role(role: str) -> None:
    if role not in LOCAL_DEFAULT_PASSWORDS:
        raise ValueError(
            f"unknown Postgres role {role!r}; expected one of {sorted(LOCAL_DEFAULT_PASSWORDS)}"
        )


class RedisSettings(BaseModel):
    url: str = "redis://127.0.0.1:16379/0"
    embedded: bool = True

    @field_validator("url")
    @classmethod
    def _check_url(cls, value: str) -> str:
        if not value.startswith(("redis://", "rediss://")):
            raise ValueError(f"redis.url must start with redis:// or rediss://, got {value!r}")
        return value

    @property
    def address(self) -> str:
        """``HOST:PORT`` of the url."""
        rest = self.url.split("://", 1)[1].rsplit("@", 1)[-1]
        host_port = rest.split("/", 1)[0]
        return host_port if ":" in host_port else f"{host_port}:6379"


class TritonSettings(BaseModel):
    http: str = "127.0.0.1:18000"
    grpc: str = "127.0.0.1:18001"
    metrics_port: int = Field(18002, gt=0, lt=65536)
    embedded: bool = True
    # The exported generator's model name in Triton's model repository.
    generator_model: str = "alphafactory_generator"
    # The embedded server also hosts this tiny model, proving the python backend works.
    health_model: str = "alphafactory_health"
    # Model repository `model export` writes and the embedded server serves (at start).
    repository: Path = Path("deploy/triton/models")
    request_timeout_s: float = Field(10.0, gt=0)
    # Client: attempts per call (with jittered exponential backoff), and what to do when
    # Triton stays unreachable: "fail" raises; "in_process" logs and runs the model locally.
    retries: int = Field(3, ge=1, le=20)
    fallback: str = "in_process"
    # How a generator version is addressed: "native" (tritonserver: the model's name and
    # the version's number) or "suffixed" (the embedded PyTriton server, which serves
    # each version as its own model <name>_v<N>).
    version_names: Literal["suffixed", "native"] = "suffixed"
    # Episodes the generation service samples together; each of their steps is one
    # next-action call (split at the served model's max_batch_size, 1024 as exported).
    # A call through Triton costs a few ms of CPU beyond the model on both ends, so fewer,
    # larger calls: 2,000 formulas are about 40 calls at 1024, 130 at 256.
    sample_batch: int = Field(1024, ge=1, le=65536)
    # Triton's model-control API key (production's restricted API): the trainer asks
    # Triton to load a new version with it. None: no key (the embedded server watches
    # its repository instead).
    admin_key: SecretStr | None = None

    @field_validator("fallback")
    @classmethod
    def _check_fallback(cls, value: str) -> str:
        if value not in ("fail", "in_process"):
            raise ValueError(f"triton.fallback must be 'fail' or 'in_process', got {value!r}")
        return value

    @field_validator("http", "grpc")
    @classmethod
    def _check_address(cls, value: str, info) -> str:
        return _host_port(value, f"triton.{info.field_name}")


class PipelineSettings(BaseModel):
    """The event pipeline's processes: strategies, the generator, the Celery workers."""

    # Strategy files (*.toml); None: the bundled ones (alphafactory/strategies).
    strategies_dir: Path | None = None
    # The generator checkpoint the generation service loads (model train writes it).
    generator_checkpoint: Path = Path(".alphafactory/generator.pt")
    # Redis hands an unacknowledged task to another worker after this long (a killed
    # worker's task comes back then): keep it above the longest evaluation chunk.
    visibility_timeout_s: int = Field(600, ge=5)
    # Retries of an evaluation chunk that fails with poison (bad data, a bug) before it is
    # dead-lettered and its formulas marked failed, so the request still completes. An
    # outage (Postgres, Redis) is retried for as long as it lasts, never counted here.
    task_retries: int = Field(3, ge=0, le=20)
    # Deliveries of a chunk that killed their worker (out of memory, a crash) before the
    # chunk is given up (its formulas recorded failed) instead of redelivered forever.
    task_max_deliveries: int = Field(3, ge=1, le=100)
    worker_concurrency: int = Field(1, ge=1, le=64)
    # compiled-kernel threads per evaluation process (1: the processes are the
    # parallelism; more only where a worker's processes leave cores idle)
    kernel_threads: int = Field(1, ge=1, le=256)
    # torch threads of the trainer's training (0: torch's default, every core). On cores
    # the pipeline shares (the walk-forward: 1) more threads only spin against it
    trainer_threads: int = Field(0, ge=0, le=256)
    # How long a relay or a consumer sleeps when it found nothing to do.
    poll_interval_s: float = Field(0.5, gt=0, le=60)
    # An event dated later than now plus this is refused (dead-lettered): a mistyped
    # timestamp must not become the latest allocation.
    max_clock_skew_s: float = Field(300.0, ge=0)
    # The reconciler: a pass every reconcile_every_s; a step is re-driven once it is older
    # than reconcile_grace_s (pending candidates: reconcile_stall_s without task activity),
    # one thing at most once per reconcile_stall_s; releases processed more than
    # reconcile_lookback_hours ago are left alone.
    reconcile_every_s: float = Field(30.0, gt=0)
    reconcile_grace_s: float = Field(120.0, gt=0)
    reconcile_stall_s: float = Field(600.0, gt=0)
    reconcile_lookback_hours: float = Field(72.0, gt=0)
    # The relay deletes outbox rows published longer ago than this; 0 keeps them all.
    outbox_retention_hours: float = Field(168.0, ge=0)
    # `stack up` also starts the pipeline services (release handler, generator,
    # allocator, relay, one Celery worker) as local processes.
    services: bool = True


class MetricsSettings(BaseModel):
    """Every service's Prometheus endpoint (``/metrics``): the i-th service of
    ``app.services.SERVICES`` serves on ``port + i``, so a machine's services never share
    a port and Prometheus finds each one at a fixed place."""

    enabled: bool = True
    # the address the endpoints listen on: 0.0.0.0 in a container, for Prometheus to reach
    host: str = "127.0.0.1"
    port: int = Field(19100, gt=0, lt=65500)


class DashboardSettings(BaseModel):
    """The read-only web dashboard (``alphafactory dashboard``)."""

    host: str = "127.0.0.1"
    port: int = Field(18080, gt=0, lt=65536)
    # Rows a table of the dashboard shows at most (newest first).
    page_rows: int = Field(200, ge=10, le=10_000)


def url_host(host: str) -> str:
    """The host a client uses for a server listening on ``host`` (every address: loopback)."""
    return "127.0.0.1" if host in ("0.0.0.0", "", "::") else host


class Settings(BaseSettings):
    """Every setting of an alphafactory process."""

    model_config = SettingsConfigDict(
        env_prefix=ENV_PREFIX,
        env_nested_delimiter=ENV_NESTED_DELIMITER,
        extra="forbid",
        frozen=True,
    )

    # Pid files, logs and data of the local embedded stack (git-ignored).
    state_dir: Path = Path(".alphafactory")
    log_level: str = "INFO"
    # "json": one JSON object per log line, with the event and request ids of the record
    # in hand (for a log pipeline such as Loki or Elasticsearch); "text": for people.
    log_format: Literal["text", "json"] = "text"
    # Seconds `stack up` waits for each component to become ready.
    startup_timeout_s: float = Field(60.0, gt=0)
    kafka: KafkaSettings = KafkaSettings()
    postgres: PostgresSettings = PostgresSettings()
    redis: RedisSettings = RedisSettings()
    triton: TritonSettings = TritonSettings()
    pipeline: PipelineSettings = PipelineSettings()
    metrics: MetricsSettings = MetricsSettings()
    dashboard: DashboardSettings = DashboardSettings()

    @field_validator("log_level")
    @classmethod
    def _check_log_level(cls, value: str) -> str:
        levels = {"DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"}
        if value.upper() not in levels:
            raise ValueError(f"log_level must be one of {sorted(levels)}, got {value!r}")
        return value.upper()

    @property
    def state_path(self) -> Path:
        return self.state_dir.expanduser().resolve()

    @model_validator(mode="after")
    def _no_published_passwords_beyond_loopback(self) -> Settings:
        """With any component external the deployment is not the loopback stack: the
        published local passwords are refused, given or defaulted."""
        external = [n for n in ("kafka", "postgres", "redis", "triton") if not _embedded(self, n)]
        if not external:
            return self
        for role, default in LOCAL_DEFAULT_PASSWORDS.items():
            given = getattr(self.postgres, f"{role}_password")
            variable = f"{ENV_PREFIX}POSTGRES{ENV_NESTED_DELIMITER}{role.upper()}_PASSWORD"
            if given is not None and given.get_secret_value() == default:
                raise ValueError(
                    f"{variable} is the local stack's published default, refused because "
                    f"{', '.join(external)} is external; set a secret"
                )
            if given is None and self.postgres.embedded:
                raise ValueError(
                    f"{variable} must be set: {', '.join(external)} is external, so the "
                    "embedded Postgres may not use the published local default"
                )
        return self


def _embedded(settings: Settings, component: str) -> bool:
    return getattr(settings, component).embedded


def load_settings(**overrides) -> Settings:
    """Build and validate the settings; raises SettingsError naming the bad variable."""
    try:
        return Settings(**overrides)
    except ValidationError as error:
        problems = "; ".join(
            f"{ENV_PREFIX}{ENV_NESTED_DELIMITER.join(str(p) for p in e['loc']).upper()}: {e['msg']}"
            for e in error.errors()
        )
        raise SettingsError(f"invalid settings: {problems}") from error


def settings_env(settings: Settings) -> dict[str, str]:
    """The ``ALPHAFACTORY_*`` variables that rebuild ``settings`` in a child process
    (every value, secrets included: pass it only to processes of this deployment)."""
    env: dict[str, str] = {}

    def add(prefix: str, value) -> None:
        if isinstance(value, BaseModel):
            for name in type(value).model_fields:
                add(f"{prefix}{name.upper()}{ENV_NESTED_DELIMITER}", getattr(value, name))
            return
        key = prefix.removesuffix(ENV_NESTED_DELIMITER)
        if value is None:
            return
        if isinstance(value, SecretStr):
            value = value.get_secret_value()
        env[key] = str(value).lower() if isinstance(value, bool) else str(value)

    add(ENV_PREFIX, settings)
    return env
