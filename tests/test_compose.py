"""Static checks of docker-compose.yml and the image files (no Docker engine runs here).

They hold the compose file to the code: every ``ALPHAFACTORY_*`` variable is a real field
of :class:`alphafactory.settings.Settings`, the settings built from each service's
environment validate and point at the compose servers on the ports those listen on,
secrets are required rather than defaulted, and services wait on health, not on start.
"""

from __future__ import annotations

import importlib.util
import os
import re
import tomllib
from pathlib import Path

import pytest
import yaml
from pydantic import BaseModel

from alphafactory import topics
from alphafactory.settings import (
    ENV_NESTED_DELIMITER,
    ENV_PREFIX,
    LOCAL_DEFAULT_PASSWORDS,
    Settings,
    host_of,
    load_settings,
    port_of,
)
from app.services import INFRASTRUCTURE, SERVICES

ROOT = Path(__file__).resolve().parents[1]
COMPOSE_FILE = ROOT / "docker-compose.yml"
DOCKERFILE = ROOT / "deploy" / "docker" / "Dockerfile"
HEALTHCHECK_SCRIPT = ROOT / "deploy" / "docker" / "healthcheck.py"
ENV_EXAMPLE = ROOT / "deploy" / "docker" / "production.env.example"

ONE_SHOT = ("migrate", "kafka-topics")
TOOLS = ("replayer",)
MONITORING = ("prometheus", "grafana")  # tests/deploy/test_monitoring.py checks them
# The `alphafactory` command of each application service: the declared long-running
# services (app.services.SERVICES, the names are a contract), the migration and the tools.
APP_COMMANDS = {
    "migrate": ["db", "migrate"],
    **{declared.name: list(declared.command) for declared in SERVICES},
    "replayer": ["release", "replay"],
}
REQUIRED_SERVICES = (
    *INFRASTRUCTURE,
    *MONITORING,
    *(name for name in APP_COMMANDS if name != "replayer"),
)
SECRETS = (
    "POSTGRES_ADMIN_PASSWORD",
    "POSTGRES_OWNER_PASSWORD",
    "POSTGRES_APP_PASSWORD",
    "POSTGRES_TRADING_PASSWORD",
    "POSTGRES_VIEWER_PASSWORD",
    "TRITON_ADMIN_KEY",
    "GRAFANA_ADMIN_PASSWORD",
)
GENERATOR_MODEL = "alphafactory_generator"
# What a service needs to use the compose servers instead of the embedded defaults
# (every *__EMBEDDED must be "false").
CONNECTION_VARIABLES = (
    "ALPHAFACTORY_KAFKA__BOOTSTRAP",
    "ALPHAFACTORY_KAFKA__EMBEDDED",
    "ALPHAFACTORY_POSTGRES__HOST",
    "ALPHAFACTORY_POSTGRES__PORT",
    "ALPHAFACTORY_POSTGRES__EMBEDDED",
    "ALPHAFACTORY_REDIS__URL",
    "ALPHAFACTORY_REDIS__EMBEDDED",
    "ALPHAFACTORY_TRITON__HTTP",
    "ALPHAFACTORY_TRITON__GRPC",
    "ALPHAFACTORY_TRITON__EMBEDDED",
)
# The Postgres role each application service logs in as (the app role unless named here);
# it gets that role's password and no other.
LOGIN_ROLES = {"dashboard": "viewer"}
ROLES = tuple(LOCAL_DEFAULT_PASSWORDS)  # every Postgres role that logs in with a password
# Only `migrate` creates roles, so only it gets every role's password.
MIGRATE_VARIABLES = tuple(f"ALPHAFACTORY_POSTGRES__{role.upper()}_PASSWORD" for role in ROLES)
EXPECTED_CONDITIONS = {
    **dict.fromkeys(INFRASTRUCTURE, "service_healthy"),
    "prometheus": "service_healthy",
    **dict.fromkeys(ONE_SHOT, "service_completed_successfully"),
}
DUMMY_SECRETS = {name: f"dummy-{name.lower()}" for name in SECRETS}

# ${NAME}, ${NAME:-default}, ${NAME-default}, ${NAME:?message}, ${NAME?message}
_REFERENCE = re.compile(r"\$\{(?P<name>\w+)(?:(?P<op>:?[-?])(?P<arg>[^}]*))?\}")


def interpolate(value, env: dict[str, str]):
    """What compose makes of the file's values given ``env`` (as .env would provide it)."""
    if isinstance(value, dict):
        return {key: interpolate(item, env) for key, item in value.items()}
    if isinstance(value, list):
        return [interpolate(item, env) for item in value]
    if not isinstance(value, str):
        return value

    def substitute(match: re.Match) -> str:
        name, op, arg = match["name"], match["op"] or "", match["arg"] or ""
        current = env.get(name)
        if current is not None and (current or not op.startswith(":")):
            return current
        if op.endswith("?"):
            raise KeyError(f"${{{name}}} is required and unset: {arg}")
        return arg

    escaped = value.replace("$$", "\0")
    return _REFERENCE.sub(substitute, escaped).replace("\0", "$")


@pytest.fixture(scope="module")
def raw() -> str:
    return COMPOSE_FILE.read_text()


@pytest.fixture(scope="module")
def services(raw) -> dict:
    return yaml.safe_load(raw)["services"]


@pytest.fixture(scope="module")
def resolved(services) -> dict:
    return interpolate(services, DUMMY_SECRETS)


def environment(service: dict) -> dict[str, str]:
    env = service.get("environment", {})
    assert isinstance(env, dict), "use the mapping form of environment (the anchors merge it)"
    return {
        key: str(value).lower() if isinstance(value, bool) else str(value)
        for key, value in env.items()
    }


def settings_from(env: dict[str, str], monkeypatch) -> Settings:
    """load_settings() with exactly ``env`` as the process's ALPHAFACTORY_* variables."""
    for name in [name for name in os.environ if name.startswith(ENV_PREFIX)]:
        monkeypatch.delenv(name)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    return load_settings()


def is_setting(name: str) -> bool:
    """Whether ``ALPHAFACTORY_A__B`` names a leaf field of Settings (case-insensitive)."""
    if not name.upper().startswith(ENV_PREFIX):
        return False
    model: type[BaseModel] = Settings
    parts = name[len(ENV_PREFIX) :].lower().split(ENV_NESTED_DELIMITER)
    for position, part in enumerate(parts):
        field = model.model_fields.get(part)
        if field is None:
            return False
        annotation = field.annotation
        if not (isinstance(annotation, type) and issubclass(annotation, BaseModel)):
            return position == len(parts) - 1
        model = annotation
    return False  # a whole group, not a field


def test_compose_file_has_every_required_service(services):
    missing = [name for name in REQUIRED_SERVICES if name not in services]
    assert not missing, f"docker-compose.yml lacks services {missing}"
    assert services["replayer"].get("profiles") == ["tools"], (
        "the replayer must not start by default"
    )


def test_the_long_running_services_are_exactly_the_declared_ones(services):
    running = set(services) - set(INFRASTRUCTURE) - set(ONE_SHOT) - set(TOOLS) - set(MONITORING)
    assert running == {declared.name for declared in SERVICES}, (
        "docker-compose.yml and app.services.SERVICES list different services"
    )


@pytest.mark.parametrize("declared", SERVICES, ids=lambda s: s.name)
def test_each_service_waits_for_the_infrastructure_it_is_declared_to_need(services, declared):
    depends_on = services[declared.name]["depends_on"]
    for needed in declared.needs:
        assert depends_on.get(needed, {}).get("condition") == "service_healthy", (
            f"{declared.name} needs {needed} (app.services) but does not wait for it"
        )
    unneeded = set(depends_on) & set(INFRASTRUCTURE) - set(declared.needs)
    assert not unneeded, f"{declared.name} waits for {unneeded}, which it is not declared to need"


@pytest.mark.parametrize("declared", SERVICES, ids=lambda s: s.name)
def test_only_services_that_scale_out_are_replicated(services, declared):
    replicas = services[declared.name].get("deploy", {}).get("replicas")
    if declared.scales_out:
        assert replicas != 1, f"{declared.name} scales out: do not pin it to one replica"
    else:
        assert replicas == 1, f"{declared.name} does not scale out: pin deploy.replicas to 1"


def test_dependencies_wait_for_health_or_completion(services):
    for name, service in services.items():
        depends_on = service.get("depends_on", {})
        assert isinstance(depends_on, dict), f"{name}: depends_on must use the long form"
        for dependency, spec in depends_on.items():
            assert dependency in services, f"{name} depends on unknown service {dependency!r}"
            condition = (spec or {}).get("condition")
            assert condition, f"{name} -> {dependency}: no condition (waits for start only)"
            expected = EXPECTED_CONDITIONS.get(dependency, condition)
            assert condition == expected, f"{name} -> {dependency}: {condition}, not {expected}"


def test_application_services_wait_for_migrations_and_topics(services):
    for name in APP_COMMANDS.keys() - {"migrate"}:
        depends_on = services[name]["depends_on"]
        assert "migrate" in depends_on, f"{name} must start after `alphafactory db migrate`"
        if "kafka" in depends_on:
            assert "kafka-topics" in depends_on, f"{name} must start after the topics exist"


def test_services_have_healthchecks_and_restart_policies(services):
    for name, service in services.items():
        one_shot = name in ONE_SHOT or "profiles" in service
        if one_shot:
            assert service.get("restart") == "no", f"{name} runs once: restart must be 'no'"
            continue
        assert service.get("restart") == "unless-stopped", f"{name}: restart unless-stopped"
        assert service.get("healthcheck", {}).get("test"), f"{name} has no healthcheck"


def test_application_services_run_their_commands_from_one_image(services):
    images = set()
    for name, command in APP_COMMANDS.items():
        assert services[name]["command"] == command, f"{name} must run `alphafactory {command}`"
        images.add(services[name]["image"])
        assert "container_name" not in services[name], f"{name} must stay scalable"
    assert len(images) == 1, f"the application services use several images: {images}"
    assert services["worker"]["deploy"]["replicas"], "the worker is meant to be replicated"


def test_process_healthchecks_look_for_their_own_command(services):
    for name, service in services.items():
        test = service.get("healthcheck", {}).get("test", [])
        if "process" in test:
            words = test[test.index("process") + 1 :]
            assert words == service["command"], f"{name}'s healthcheck looks for {words}"


def test_triton_reserves_a_gpu_and_serves_only_the_generator(services):
    triton = services["triton"]
    devices = triton["deploy"]["resources"]["reservations"]["devices"]
    assert any(d.get("driver") == "nvidia" and "gpu" in d.get("capabilities", []) for d in devices)
    assert "./deploy/triton/models:/models:ro" in triton["volumes"]
    assert (ROOT / "deploy" / "triton" / "models" / "README.md").is_file()
    command = triton["command"]
    for flag in (
        "--model-repository=/models",
        "--model-control-mode=explicit",
        f"--load-model={GENERATOR_MODEL}",
    ):
        assert flag in command, f"triton must start with {flag}"
    for option in ("--http-restricted-api=", "--grpc-restricted-protocol="):
        restricted = [arg for arg in command if arg.startswith(option)]
        assert restricted and "model-repository" in restricted[0].split(":")[0], (
            f"{option} must close the model-control API to callers without the admin key"
        )
    assert "/v2/health/ready" in " ".join(triton["healthcheck"]["test"])


def test_secrets_are_required_never_defaulted(raw):
    references = list(_REFERENCE.finditer(raw))
    for secret in SECRETS:
        uses = [m for m in references if m["name"] == secret]
        assert uses, f"{secret} is never used"
        for use in uses:
            assert use["op"] == ":?" and use["arg"].strip(), (
                f"write {secret} as ${{{secret}:?message}}"
            )
    unlisted = {m["name"] for m in references if re.search("PASSWORD|SECRET|KEY$", m["name"])}
    assert unlisted <= set(SECRETS), f"secrets not required as ${{NAME:?...}}: {unlisted}"


def test_the_env_example_names_every_compose_input(raw):
    """An operator learns the inputs from production.env.example: a secret missing there
    is only discovered when compose refuses to start."""
    code = "\n".join(line for line in raw.splitlines() if not line.lstrip().startswith("#"))
    inputs = {match["name"] for match in _REFERENCE.finditer(code)}
    listed = set(re.findall(r"^#?(\w+)=", ENV_EXAMPLE.read_text(), re.M))
    assert inputs <= listed, f"{ENV_EXAMPLE.name} does not list {sorted(inputs - listed)}"
    required = set(re.findall(r"^(\w+)=", ENV_EXAMPLE.read_text(), re.M))
    assert required == set(SECRETS), "the example's uncommented lines are the required secrets"


def test_every_alphafactory_variable_is_a_setting(raw):
    names = set(re.findall(r"\bALPHAFACTORY_\w+", raw))
    assert names, "the compose file sets no ALPHAFACTORY_* variable"
    unknown = sorted(name for name in names if not is_setting(name))
    assert not unknown, f"not fields of alphafactory.settings.Settings: {unknown}"


def test_services_point_every_client_at_the_compose_servers(resolved):
    for name in APP_COMMANDS:
        env = environment(resolved[name])
        missing = [variable for variable in CONNECTION_VARIABLES if variable not in env]
        assert not missing, f"{name} does not set {missing}"
        embedded = {k: v for k, v in env.items() if k.endswith("__EMBEDDED") and v != "false"}
        assert not embedded, f"{name} would start embedded servers: {embedded}"
    migrate = environment(resolved["migrate"])
    missing = [variable for variable in MIGRATE_VARIABLES if variable not in migrate]
    assert not missing, f"migrate creates the roles but lacks {missing}"
    postgres = environment(resolved["postgres"])
    assert migrate["ALPHAFACTORY_POSTGRES__ADMIN_PASSWORD"] == postgres["POSTGRES_PASSWORD"]
    assert migrate.get("ALPHAFACTORY_POSTGRES__ADMIN_USER", "postgres") == postgres.get(
        "POSTGRES_USER", "postgres"
    )


def login_role(name: str) -> str:
    return LOGIN_ROLES.get(name, "app")


@pytest.mark.parametrize("name", sorted(APP_COMMANDS.keys() - {"migrate"}))
def test_each_service_holds_only_its_login_password(name, resolved):
    passwords = {
        variable
        for variable in environment(resolved[name])
        if re.fullmatch(r"ALPHAFACTORY_POSTGRES__\w+_PASSWORD", variable)
    }
    expected = {f"ALPHAFACTORY_POSTGRES__{login_role(name).upper()}_PASSWORD"}
    assert passwords == expected, f"{name} logs in as {login_role(name)} but holds {passwords}"


def _listeners(value: str) -> dict[str, tuple[str, int]]:
    """``NAME://host:port,...`` -> {NAME: (host, port)}."""
    pairs = (item.split("://", 1) for item in value.split(","))
    return {name: (host_of(address), port_of(address)) for name, address in pairs}


def _flag(command: list[str], flag: str, default: int) -> int:
    values = [arg.split("=", 1)[1] for arg in command if arg.startswith(f"{flag}=")]
    return int(values[-1]) if values else default


def test_client_ports_agree_with_the_server_ports(resolved, monkeypatch):
    settings = settings_from(environment(resolved["generator"]), monkeypatch)

    kafka = environment(resolved["kafka"])
    advertised = _listeners(kafka["KAFKA_ADVERTISED_LISTENERS"])
    listening = _listeners(kafka["KAFKA_LISTENERS"])
    bootstrap = (host_of(settings.kafka.bootstrap), port_of(settings.kafka.bootstrap))
    assert bootstrap == ("kafka", 9092)
    names = [name for name, address in advertised.items() if address == bootstrap]
    assert names and listening[names[0]][1] == 9092, "kafka does not advertise kafka:9092"

    postgres = environment(resolved["postgres"])
    assert (settings.postgres.host, settings.postgres.port) == ("postgres", 5432)
    assert postgres.get("PGPORT", "5432") == "5432"
    assert "-p 5432" in " ".join(resolved["postgres"]["healthcheck"]["test"])

    assert settings.redis.address == "redis:6379"
    assert "--port" not in resolved["redis"]["command"], "redis must listen on its default 6379"

    triton = resolved["triton"]["command"]
    published = {int(port.rsplit(":", 1)[1]) for port in resolved["triton"]["ports"]}
    assert (settings.triton.http, settings.triton.grpc) == ("triton:8000", "triton:8001")
    assert _flag(triton, "--http-port", 8000) == 8000
    assert _flag(triton, "--grpc-port", 8001) == 8001
    assert _flag(triton, "--metrics-port", 8002) == settings.triton.metrics_port == 8002
    assert {8000, 8001, 8002} <= published


@pytest.mark.parametrize("name", sorted(APP_COMMANDS))
def test_settings_validate_from_the_service_environment(name, resolved, monkeypatch):
    settings = settings_from(environment(resolved[name]), monkeypatch)
    groups = (settings.kafka, settings.postgres, settings.redis, settings.triton)
    assert not any(group.embedded for group in groups), f"{name} would start embedded servers"
    for role in ROLES if name == "migrate" else (login_role(name),):
        password = DUMMY_SECRETS[f"POSTGRES_{role.upper()}_PASSWORD"]
        assert settings.postgres.dsn(role).endswith(f":{password}@postgres:5432/alphafactory")
    assert settings.triton.generator_model == GENERATOR_MODEL


def test_topics_service_creates_every_topic(resolved):
    script = " ".join(resolved["kafka-topics"]["command"])
    created = set(re.split(r"[\s;]+", script))
    missing = [topic for topic in topics.ALL_TOPICS if topic not in created]
    assert not missing, f"kafka-topics does not create {missing} (alphafactory/topics.py)"
    assert environment(resolved["kafka"])["KAFKA_AUTO_CREATE_TOPICS_ENABLE"] == "false"


def _packages() -> list[str]:
    pyproject = tomllib.loads((ROOT / "pyproject.toml").read_text())
    return pyproject["tool"]["setuptools"]["packages"]


def test_image_installs_the_project_as_a_non_root_cpu_image():
    dockerfile = DOCKERFILE.read_text()
    assert re.search(r"^ARG PYTHON_IMAGE=python:3\.11[.\d]*-slim", dockerfile, re.M)
    assert "-c requirements.lock ." in dockerfile
    assert "--extra-index-url" in dockerfile and "download.pytorch.org/whl/cpu" in dockerfile
    users = re.findall(r"^USER (\S+)", dockerfile, re.M)
    assert users and users[-1].split(":")[0] not in {"root", "0"}, "the image must not run as root"
    assert re.search(r'^ENTRYPOINT \["alphafactory"\]$', dockerfile, re.M)
    for top in sorted({package.split(".")[0] for package in _packages()}):
        assert f"COPY {top} ./{top}" in dockerfile, f"the image does not copy package {top}"


def test_dockerignore_sends_every_package_and_no_secrets():
    lines = (ROOT / ".dockerignore").read_text().splitlines()
    patterns = [line.strip() for line in lines if line.strip() and not line.startswith("#")]
    assert patterns[0] == "*", ".dockerignore must exclude everything first (an allow-list)"
    allowed = [p[1:].rstrip("/") for p in patterns if p.startswith("!")]
    for package in _packages():
        path = package.replace(".", "/")
        covered = any(path == a or path.startswith(f"{a}/") for a in allowed)
        covered = covered or f"{path}/__init__.py" in allowed
        assert covered, f".dockerignore leaves out package {package}"
    assert not any(a.startswith((".env", ".venv", ".git")) for a in allowed)


def _healthcheck_module():
    spec = importlib.util.spec_from_file_location("compose_healthcheck", HEALTHCHECK_SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_process_healthcheck_finds_only_a_live_service_process(tmp_path):
    healthcheck = _healthcheck_module()
    service = ["/opt/alphafactory/bin/python", "/opt/alphafactory/bin/alphafactory"]
    itself = ["python3", "/usr/local/bin/alphafactory-healthcheck", "process", "run", "relay"]
    assert healthcheck.runs_command([*service, "run", "relay"], ["run", "relay"])
    assert not healthcheck.runs_command([*service, "run", "allocator"], ["run", "relay"])
    assert not healthcheck.runs_command(itself, ["run", "relay"])

    def fake_process(pid: int, argv: list[str], state: str) -> None:
        directory = tmp_path / str(pid)
        directory.mkdir()
        directory.joinpath("cmdline").write_bytes("\0".join(argv).encode() + b"\0")
        directory.joinpath("stat").write_text(f"{pid} (alpha factory) {state} 1 1 1")

    fake_process(7, [*service, "run", "relay"], "Z")
    fake_process(8, itself, "R")
    assert healthcheck.check_process(["run", "relay"], proc=tmp_path), "a zombie is not alive"
    fake_process(9, [*service, "run", "relay"], "S")
    assert healthcheck.check_process(["run", "relay"], proc=tmp_path) is None
