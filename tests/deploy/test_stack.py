"""`alphafactory stack up | status | down` on the real components, via the console script."""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from alphafactory.topics import ALL_TOPICS
from deploy.local import process
from tests.stack_support import isolated_settings, make_state_dir, settings_env

pytestmark = pytest.mark.stack
COMPONENTS = ("kafka", "postgres", "redis", "triton")
# Debian 12's kcat 1.7.1 (librdkafka 2.0.2) cannot parse tansu 0.6.0's ApiVersions v3
# response ("Read underflow"); with the version request off it speaks the legacy protocol.
KCAT_TANSU_FLAGS = ("-X", "api.version.request=false", "-X", "broker.version.fallback=0.9.0")


def alphafactory(env, *args: str, timeout: float = 180) -> subprocess.CompletedProcess:
    script = Path(sys.executable).parent / "alphafactory"
    return subprocess.run(
        [str(script), *args], env=env, capture_output=True, text=True, timeout=timeout
    )


def status_json(env) -> tuple[int, dict]:
    result = alphafactory(env, "stack", "status", "--json")
    return result.returncode, json.loads(result.stdout)


@pytest.fixture(scope="module")
def cli_stack():
    state_dir = make_state_dir()
    settings = isolated_settings(state_dir)
    env = settings_env(settings)
    try:
        result = alphafactory(env, "stack", "up")
        assert result.returncode == 0, result.stdout + result.stderr
        yield settings, env
    finally:
        alphafactory(env, "stack", "down")
        shutil.rmtree(state_dir, ignore_errors=True)


def test_status_json_follows_the_contract(cli_stack):
    settings, env = cli_stack
    code, status = status_json(env)
    assert code == 0
    assert status["up"] is True
    assert status["kafka"]["bootstrap"] == settings.kafka.bootstrap
    assert status["postgres"]["dsn"] == settings.postgres.dsn("app")
    assert status["postgres"]["trading_dsn"] == settings.postgres.dsn("trading")
    assert status["redis"]["url"] == settings.redis.url
    assert status["triton"]["http"] == settings.triton.http
    assert status["triton"]["grpc"] == settings.triton.grpc
    for name in COMPONENTS:
        assert status[name]["up"] is True, status[name]
        assert isinstance(status[name]["pid"], int)


def test_up_twice_changes_nothing(cli_stack):
    _, env = cli_stack
    _, before = status_json(env)
    result = alphafactory(env, "stack", "up")
    assert result.returncode == 0, result.stderr
    assert "already running: kafka, postgres, redis, triton" in result.stdout
    assert "migrations applied: none" in result.stdout
    _, after = status_json(env)
    assert [after[c]["pid"] for c in COMPONENTS] == [before[c]["pid"] for c in COMPONENTS]


def run_client(*argv: str) -> str:
    result = subprocess.run(argv, capture_output=True, text=True, timeout=30)
    assert result.returncode == 0, f"{argv[0]} failed: {result.stdout}{result.stderr}"
    return result.stdout


@pytest.mark.skipif(
    not all(shutil.which(c) for c in ("kcat", "psql", "redis-cli", "curl")),
    reason="third-party clients kcat, psql, redis-cli and curl not installed",
)
def test_third_party_clients_reach_every_component(cli_stack):
    settings, env = cli_stack
    _, status = status_json(env)
    metadata = run_client(
        "kcat", *KCAT_TANSU_FLAGS, "-L", "-b", status["kafka"]["bootstrap"], "-m", "10"
    )
    assert settings.kafka.bootstrap in metadata
    assert all(f'topic "{topic}"' in metadata for topic in ALL_TOPICS), metadata
    assert (
        run_client("psql", status["postgres"]["dsn"], "-tAc", "select current_user").strip()
        == settings.postgres.app_user
    )
    rows = run_client(
        "psql",
        status["postgres"]["trading_dsn"],
        "-tAc",
        "select count(*) from trading.latest_target_positions",
    )
    assert rows.strip().isdigit()
    assert run_client("redis-cli", "-u", status["redis"]["url"], "PING").strip() == "PONG"
    ready = run_client(
        "curl",
        "-sf",
        "-o",
        "/dev/null",
        "-w",
        "%{http_code}",
        f"http://{status['triton']['http']}/v2/health/ready",
    )
    assert ready == "200"


def test_down_leaves_no_process(cli_stack):
    settings, env = cli_stack
    _, status = status_json(env)
    pids = [status[c]["pid"] for c in COMPONENTS]
    result = alphafactory(env, "stack", "down")
    assert result.returncode == 0
    assert "stopped: triton, redis, postgres, kafka" in result.stdout
    for pid in pids:
        assert not Path(f"/proc/{pid}").exists() or process.exited_early(pid)
        assert process.group_members(pid) == [], f"processes left in group {pid}"
    code, after = status_json(env)
    assert code == 1 and after["up"] is False
    assert not any(after[c]["up"] for c in COMPONENTS)
    assert alphafactory(env, "stack", "down").stdout.strip() == "stopped: nothing was running"


def only_embedded(component: str, state_dir: Path):
    """Settings where only ``component`` is embedded; the others are absent externals."""
    base = isolated_settings(state_dir)
    overrides = {
        name: {**getattr(base, name).model_dump(), "embedded": name == component}
        for name in COMPONENTS
    }
    return base.model_copy(
        update={
            "startup_timeout_s": 2.0,
            **{name: type(getattr(base, name))(**values) for name, values in overrides.items()},
        }
    )


def failure_of(component: str, settings):
    from app import stack

    with pytest.raises(stack.StackError) as raised:
        stack.up(settings)
    stack.down(settings)
    failures = {f.component: f for f in raised.value.failures}
    assert set(failures) == set(COMPONENTS), "every absent component is reported"
    return failures[component]


def test_busy_port_is_named_with_the_log(tmp_path):
    state_dir = make_state_dir()
    settings = only_embedded("kafka", state_dir)
    with socket.socket() as squatter:
        squatter.bind(("127.0.0.1", int(settings.kafka.bootstrap.rsplit(":", 1)[1])))
        squatter.listen()
        failure = failure_of("kafka", settings)
    assert "busy" in failure.reason and settings.kafka.bootstrap.rsplit(":", 1)[1] in failure.reason
    assert failure.log == state_dir / "logs" / "kafka.log"
    shutil.rmtree(state_dir, ignore_errors=True)


def test_corrupt_postgres_data_directory_is_reported():
    state_dir = make_state_dir()
    settings = only_embedded("postgres", state_dir)
    data = state_dir / "data" / "postgres"
    data.mkdir(parents=True)
    (data / "garbage").write_text("not a cluster")
    failure = failure_of("postgres", settings)
    assert "corrupt" in failure.reason and str(data) in failure.reason
    assert failure.log == state_dir / "logs" / "postgres.log"
    shutil.rmtree(state_dir, ignore_errors=True)


def test_missing_binary_says_what_to_install(monkeypatch):
    state_dir = make_state_dir()
    settings = only_embedded("redis", state_dir)
    monkeypatch.setattr("deploy.local.binaries.shutil.which", lambda *a, **k: None)
    failure = failure_of("redis", settings)
    assert "redis-server" in failure.reason and "Debian package" in failure.reason
    shutil.rmtree(state_dir, ignore_errors=True)


def test_invalid_settings_are_rejected_naming_the_variable():
    env = {**os.environ, "ALPHAFACTORY_KAFKA__BOOTSTRAP": "no-port-here"}
    result = alphafactory(env, "stack", "status")
    assert result.returncode == 2
    assert "ALPHAFACTORY_KAFKA__BOOTSTRAP" in result.stderr and "no-port-here" in result.stderr
