"""Static checks of the monitoring stack: deploy/monitoring and its compose services.

They hold the files to the code: Prometheus scrapes every service of
``app.services.SERVICES`` at the port the service's own settings (built from its compose
environment) give it, the Grafana dashboard queries only metrics that
``alphafactory.telemetry`` declares, through the datasource that is provisioned, and the
web dashboard listens where compose publishes it. No Docker engine runs here.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from urllib.parse import urlsplit

import pytest
import yaml

from app.services import SERVICES, metrics_port
from tests.test_compose import (
    COMPOSE_FILE,
    DUMMY_SECRETS,
    ROOT,
    environment,
    interpolate,
    settings_from,
)

MONITORING = ROOT / "deploy" / "monitoring"
PROMETHEUS_CONFIG = MONITORING / "prometheus.yml"
ALERTS = MONITORING / "alerts.yml"
PROMTOOL = shutil.which("promtool")  # Debian's prometheus package (scripts/setup.sh)
PROVISIONING = MONITORING / "grafana" / "provisioning"
DASHBOARDS = MONITORING / "grafana" / "dashboards"
# Series names each metric type exposes (the text exposition format): a Counter named
# NAME is scraped as NAME_total, a Histogram as NAME_bucket, NAME_sum and NAME_count.
EXPOSED_SUFFIXES = {
    "counter": ("_total", "_created"),
    "gauge": ("",),
    "histogram": ("_bucket", "_sum", "_count", "_created"),
    "summary": ("", "_sum", "_count", "_created"),
    "info": ("_info",),
}
# An exact release: a moving tag (latest, 3, v3.7) changes what runs without a commit.
EXACT_TAG = re.compile(r":v?\d+\.\d+\.\d+(-[\w.]+)?$")


@pytest.fixture(scope="module")
def services() -> dict:
    return yaml.safe_load(COMPOSE_FILE.read_text())["services"]


@pytest.fixture(scope="module")
def resolved(services) -> dict:
    return interpolate(services, DUMMY_SECRETS)


@pytest.fixture(scope="module")
def jobs() -> dict[str, dict]:
    config = yaml.safe_load(PROMETHEUS_CONFIG.read_text())
    names = [job["job_name"] for job in config["scrape_configs"]]
    assert len(names) == len(set(names)), f"{PROMETHEUS_CONFIG.name} repeats a job: {names}"
    return {job["job_name"]: job for job in config["scrape_configs"]}


@pytest.fixture(scope="module")
def datasource() -> dict:
    config = yaml.safe_load((PROVISIONING / "datasources" / "prometheus.yml").read_text())
    [prometheus] = [d for d in config["datasources"] if d["type"] == "prometheus"]
    return prometheus


@pytest.fixture(scope="module")
def dashboard() -> dict:
    return json.loads((DASHBOARDS / "alphafactory.json").read_text())


def mounts(service: dict) -> dict[str, tuple[str, str]]:
    """{target: (source, mode)} of a service's short-syntax volumes."""
    found = {}
    for volume in service.get("volumes", []):
        source, target, *mode = volume.split(":")
        found[target] = (source, mode[0] if mode else "rw")
    return found


def container_ports(service: dict) -> set[int]:
    return {int(port.rsplit(":", 1)[1]) for port in service.get("ports", [])}


def flag(command: list[str], name: str) -> str | None:
    values = [arg.split("=", 1)[1] for arg in command if arg.startswith(f"{name}=")]
    return values[-1] if values else None


def exposed_series() -> set[str]:
    """Every ``alphafactory_*`` series a scrape can return, from the declared metrics."""
    from prometheus_client import REGISTRY

    from alphafactory import telemetry  # declares every metric on the default registry

    return {
        family.name + suffix
        for family in REGISTRY.collect()
        if family.name.startswith(telemetry.PREFIX)
        for suffix in EXPOSED_SUFFIXES[family.type]
    }


def expressions(dashboard: dict) -> list[str]:
    return [target["expr"] for panel in dashboard["panels"] for target in panel["targets"]]


# -------------------------------------------------------------------------- prometheus
@pytest.mark.parametrize("declared", SERVICES, ids=lambda s: s.name)
def test_prometheus_scrapes_each_service_at_its_metrics_port(declared, jobs, resolved, monkeypatch):
    settings = settings_from(environment(resolved[declared.name]), monkeypatch)
    assert settings.metrics.enabled, f"{declared.name} serves no metrics"
    assert settings.metrics.host == "0.0.0.0", (
        f"{declared.name}'s endpoint listens on {settings.metrics.host}: Prometheus, in "
        "another container, cannot reach it"
    )
    assert declared.name in jobs, f"{PROMETHEUS_CONFIG.name} has no job {declared.name!r}"
    # DNS, not a fixed target: the service name resolves to every replica
    assert jobs[declared.name].get("dns_sd_configs") == [
        {"names": [declared.name], "type": "A", "port": metrics_port(settings, declared.name)}
    ], f"job {declared.name} must find every replica of {declared.name} at its metrics port"


def test_prometheus_scrapes_nothing_unknown_and_triton_at_its_metrics_port(jobs, resolved):
    extra = set(jobs) - {s.name for s in SERVICES} - {"triton", "prometheus"}
    assert not extra, f"jobs for services that do not exist: {extra}"
    triton_port = flag(resolved["triton"]["command"], "--metrics-port")
    assert jobs["triton"]["static_configs"] == [{"targets": [f"triton:{triton_port}"]}]


def test_prometheus_reads_the_mounted_config_and_keeps_its_data(resolved):
    prometheus = resolved["prometheus"]
    command, volumes = prometheus["command"], mounts(prometheus)
    config = flag(command, "--config.file")
    assert volumes.get(config) == ("./deploy/monitoring/prometheus.yml", "ro")
    # rule files are read relative to the config file: the alerts are mounted beside it
    rules = yaml.safe_load(PROMETHEUS_CONFIG.read_text())["rule_files"]
    assert rules == ["alerts.yml"]
    assert volumes.get(config.rsplit("/", 1)[0] + "/alerts.yml") == (
        "./deploy/monitoring/alerts.yml",
        "ro",
    )
    data = flag(command, "--storage.tsdb.path")
    assert data in volumes and not volumes[data][0].startswith("."), "keep data in a volume"
    assert flag(command, "--storage.tsdb.retention.time"), "bound how long samples are kept"
    assert 9090 in container_ports(prometheus)


def alert_rules() -> list[dict]:
    return [
        rule for group in yaml.safe_load(ALERTS.read_text())["groups"] for rule in group["rules"]
    ]


def test_the_alerts_query_only_declared_metrics_and_say_where_to_look():
    declared, rules = exposed_series(), alert_rules()
    assert {rule["alert"] for rule in rules} >= {"ServiceDown", "ConsumerFallingBehind"}
    for rule in rules:
        names = {n for n in re.findall(r"\w+", rule["expr"]) if n.startswith("alphafactory_")}
        assert names <= declared, f"{rule['alert']}: not metrics of telemetry: {names - declared}"
        assert rule["labels"]["severity"] in ("page", "ticket"), rule["alert"]
        assert rule["annotations"]["summary"] and rule["annotations"]["look_at"], rule["alert"]


@pytest.mark.skipif(PROMTOOL is None, reason="needs promtool (Debian prometheus, scripts/setup.sh)")
def test_promtool_accepts_the_config_and_the_alerts():
    for check in (["check", "config", str(PROMETHEUS_CONFIG)], ["check", "rules", str(ALERTS)]):
        result = subprocess.run([PROMTOOL, *check], capture_output=True, text=True, timeout=60)
        assert result.returncode == 0, result.stdout + result.stderr


# ----------------------------------------------------------------------------- grafana
def test_monitoring_images_are_pinned_to_exact_tags(services):
    for name in ("prometheus", "grafana"):
        assert EXACT_TAG.search(services[name]["image"]), f"pin {name}'s image to a release"


def test_grafana_requires_an_admin_password_and_lets_no_one_in_without_one(services):
    without = {k: v for k, v in DUMMY_SECRETS.items() if k != "GRAFANA_ADMIN_PASSWORD"}
    with pytest.raises(KeyError, match="GRAFANA_ADMIN_PASSWORD"):
        interpolate(services["grafana"]["environment"], without)
    env = environment(interpolate(services["grafana"], DUMMY_SECRETS))
    assert env["GF_SECURITY_ADMIN_PASSWORD"] == DUMMY_SECRETS["GRAFANA_ADMIN_PASSWORD"]
    assert env["GF_AUTH_ANONYMOUS_ENABLED"] == "false"
    assert env.get("GF_USERS_ALLOW_SIGN_UP") == "false"


def test_grafana_provisioning_is_mounted_read_only(resolved):
    grafana = resolved["grafana"]
    volumes = mounts(grafana)
    for source, mode in volumes.values():
        if source.startswith("."):  # a file of this repository, not Grafana's state
            assert mode == "ro", f"grafana may write to {source}"
            assert (ROOT / source).exists(), f"grafana mounts {source}, which does not exist"
    assert volumes["/etc/grafana/provisioning"][0] == "./deploy/monitoring/grafana/provisioning"
    provider_file = PROVISIONING / "dashboards" / "alphafactory.yml"
    [provider] = yaml.safe_load(provider_file.read_text())["providers"]
    path = provider["options"]["path"]
    assert volumes.get(path, ("",))[0] == "./deploy/monitoring/grafana/dashboards", (
        f"the dashboard provider reads {path}, where the dashboards are not mounted"
    )
    home = environment(grafana).get("GF_DASHBOARDS_DEFAULT_HOME_DASHBOARD_PATH", "")
    assert home.startswith(f"{path}/") and (DASHBOARDS / home.rsplit("/", 1)[1]).is_file()
    assert grafana["depends_on"]["prometheus"]["condition"] == "service_healthy"


def test_the_datasource_is_the_compose_prometheus(datasource, resolved):
    url = urlsplit(datasource["url"])
    assert url.hostname == "prometheus" and url.port in container_ports(resolved["prometheus"])
    assert datasource["uid"], "a fixed uid: the dashboard's panels name it"


# --------------------------------------------------------------------------- dashboard
def test_every_panel_queries_the_provisioned_datasource(dashboard, datasource):
    ids = [panel["id"] for panel in dashboard["panels"]]
    assert len(ids) == len(set(ids)), "panel ids must be unique"
    for panel in dashboard["panels"]:
        assert panel["targets"], f"panel {panel['title']!r} has no query"
        for source in (panel, *panel["targets"]):
            uid = source.get("datasource", panel["datasource"])["uid"]
            assert uid == datasource["uid"], f"{panel['title']!r} queries datasource {uid!r}"


def test_the_dashboard_queries_only_declared_metrics(dashboard):
    declared = exposed_series()
    assert "alphafactory_records_consumed_total" in declared  # the suffixes are derived
    queried = {name for expr in expressions(dashboard) for name in re.findall(r"\w+", expr)}
    unknown = {name for name in queried if name.startswith("alphafactory_")} - declared
    assert not unknown, f"not metrics of alphafactory.telemetry: {sorted(unknown)}"


def test_latency_quantiles_keep_the_bucket_label(dashboard):
    for expr in expressions(dashboard):
        if "histogram_quantile" in expr:
            assert "_bucket[" in expr and re.search(r"by \([^)]*\ble\b", expr), (
                f"histogram_quantile needs the rate of _bucket series summed by le: {expr}"
            )


def test_the_web_dashboard_listens_where_compose_publishes_it(resolved, monkeypatch):
    settings = settings_from(environment(resolved["dashboard"]), monkeypatch)
    assert settings.dashboard.host == "0.0.0.0", "a published port needs every address"
    assert container_ports(resolved["dashboard"]) == {settings.dashboard.port}
