"""The dashboard's pages through FastAPI's TestClient, against the session stack's real
Postgres (read as the viewer role) and Kafka: what each page shows of a seeded database,
that a fresh database renders cleanly, that a down broker leaves the health page up,
that nothing but GET is served, that no secret and no outside resource appears, and the
static files' cache headers."""

from __future__ import annotations

import html
import re
import uuid

import markupsafe
import plotly
import psycopg
import pytest
from fastapi.testclient import TestClient

from app.dashboard.app import create_app
from app.dashboard.pages import NAV
from storage.admin import bootstrap_database, prepare_database
from tests.dashboard.conftest import HOSTILE
from tests.stack_support import free_ports

pytestmark = pytest.mark.stack
PAGES = [path for path, _ in NAV]
ROLES = ("admin", "owner", "app", "trading", "viewer")


@pytest.fixture(scope="module")
def client(dashboard_settings, seeded):
    with TestClient(create_app(dashboard_settings)) as started:
        yield started


def page(client, path: str) -> str:
    response = client.get(path)
    assert response.status_code == 200, (path, response.text[:2000])
    assert response.headers["content-type"].startswith("text/html")
    text = response.text
    assert all(f'href="{href}"' in text for href in PAGES), f"{path}: the nav bar is missing"
    return text


def test_the_health_page_shows_lag_states_allocations_releases_and_letters(client, seeded):
    text = page(client, "/")
    assert 'id="lag"' in text and "alphafactory-release-handler" in text
    states = re.search(r'id="requests-by-state">(.*?)</table>', text, re.S).group(1)
    counts = [int(n) for n in re.findall(r'<td class="n">(\d+)</td>', states)]
    # generating, evaluating, allocating, allocated, failed, skipped
    assert counts == [1, 0, 0, 1, 1, 0]
    assert seeded.allocation_id in text and "M0000" in text
    assert "macro.releases" in text and "republish_release" in text


def test_the_timeline_links_trigger_request_counts_and_allocation(client, seeded):
    text = page(client, "/timeline")
    row = text[text.index(seeded.trigger) :]
    row = row[: row.index("</tr>")]
    assert f'href="/requests/{seeded.request_id}"' in row and "allocated" in row
    assert seeded.allocation_id in row and row.count('class="latency"') >= 3
    assert seeded.waiting_id in text and "generating" in text

    detail = page(client, f"/requests/{seeded.request_id}")
    assert seeded.allocation_id in detail
    assert all(asset in detail for asset in seeded.weights)
    assert client.get("/requests/no-such-request").status_code == 404


def test_positions_alphas_and_failures(client, seeded):
    positions = page(client, "/positions")
    assert 'id="plot-positions" data-figure="' in positions
    assert seeded.allocation_id in positions and all(a in positions for a in seeded.weights)
    # the exposures per class of the market's stored group, for the trading desk
    assert 'class="exposures"' in positions and "<td>sector</td>" in positions

    alphas = html.unescape(page(client, "/alphas"))
    assert seeded.formulas and all(formula in alphas for formula in seeded.formulas)

    failures = page(client, "/failures")
    assert str(markupsafe.escape(HOSTILE)) in failures and HOSTILE not in failures
    assert seeded.failure in failures and seeded.failed_id in failures


def test_performance_and_the_walkforward_report_are_plotted(client, strategy):
    performance = page(client, "/performance")
    assert strategy.id in performance and 'id="plot-performance-1"' in performance
    assert "benchmark (risk parity)" in performance
    # each series again net of the strategy's costs (the default 10 bp a unit traded)
    assert "benchmark (risk parity) net" in performance and f"{strategy.id} net" in performance
    assert f'src="/static/plotly-{plotly.__version__}.min.js"' in performance

    walkforward = page(client, "/walkforward")
    assert 'id="variants"' in walkforward and "pool10" in walkforward
    assert 'id="plot-walkforward-growth"' in walkforward


def test_a_fresh_database_renders_every_page_empty(dashboard_settings):
    empty = dashboard_settings.postgres.model_copy(
        update={"database": f"d_{uuid.uuid4().hex[:12]}"}
    )
    bootstrap_database(empty)
    prepare_database(empty)
    settings = dashboard_settings.model_copy(update={"postgres": empty})
    with TestClient(create_app(settings)) as client:
        texts = {path: page(client, path) for path in PAGES}
    assert "No allocation yet" in texts["/"] and "No request yet" in texts["/timeline"]
    assert "No positions yet" in texts["/positions"] and "No alpha pool" in texts["/alphas"]
    assert "No dead letters" in texts["/failures"]
    assert "No walk-forward report" in texts["/walkforward"]
    assert "no allocation yet" in texts["/performance"]
    assert not any("data-figure" in text for text in texts.values())


def test_a_down_broker_shows_the_lag_as_unavailable(dashboard_settings, seeded):
    (closed,) = free_ports(1)
    kafka = dashboard_settings.kafka.model_copy(update={"bootstrap": f"127.0.0.1:{closed}"})
    with TestClient(create_app(dashboard_settings.model_copy(update={"kafka": kafka}))) as client:
        text = page(client, "/")
    assert 'id="lag-unavailable"' in text and f"127.0.0.1:{closed}" in text
    assert seeded.allocation_id in text  # the rest of the page is there


def test_postgres_unavailable_is_a_503_page(dashboard_settings):
    class DownPool:
        def connection(self):
            raise psycopg.OperationalError("connection refused (Postgres restarting)")

    with TestClient(create_app(dashboard_settings, pool=DownPool())) as client:
        response = client.get("/positions")
    assert response.status_code == 503 and "Postgres is unavailable" in response.text


@pytest.mark.parametrize("method", ["POST", "PUT", "PATCH", "DELETE"])
def test_nothing_but_get_is_served(client, method):
    for path in [*PAGES, "/requests/x", "/healthz", "/static/dashboard.js"]:
        assert client.request(method, path).status_code == 405, (method, path)
    routes = [r for r in client.app.routes if hasattr(r, "methods")]
    assert routes and all(r.methods <= {"GET", "HEAD"} for r in routes)


def test_no_page_shows_a_secret_or_loads_an_outside_resource(client, dashboard_settings, seeded):
    secrets = [dashboard_settings.postgres.password(role) for role in ROLES]
    paths = [*PAGES, f"/requests/{seeded.request_id}", "/requests/missing"]
    for path in paths:
        response = client.get(path)
        assert not [s for s in secrets if s in response.text], path
        assert "postgresql://" not in response.text, path
        for url in re.findall(r'(?:src|href)="([^"]*)"', response.text):
            assert url.startswith(("/", "data:")), (path, url)
        assert "script-src 'self'" in response.headers["content-security-policy"]


def test_static_files_are_cached_and_healthz_answers(client):
    script = client.get(f"/static/plotly-{plotly.__version__}.min.js")
    assert script.status_code == 200 and "javascript" in script.headers["content-type"]
    assert "immutable" in script.headers["cache-control"] and len(script.content) > 1_000_000
    again = client.get(script.request.url, headers={"If-None-Match": script.headers["etag"]})
    assert again.status_code == 304
    assert "max-age" in client.get("/static/dashboard.css").headers["cache-control"]
    assert client.get("/static/nothing.js").status_code == 404
    assert client.get("/healthz").text == "ok"
