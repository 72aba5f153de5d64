"""The dashboard's pages: GET routes only, each reading Postgres through the viewer
role's pool (the on-call commands' queries, ``storage.operations``, wherever they fit)
and rendering one autoescaped template. A fresh stack has no data: every page says so
instead of failing, and the health page shows Kafka's lag as unavailable while the
broker is down."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, PlainTextResponse

from app.dashboard import figures

log = logging.getLogger("alphafactory.dashboard")
router = APIRouter()
NAV = (
    ("/", "Health"),
    ("/timeline", "Timeline"),
    ("/positions", "Positions"),
    ("/alphas", "Alphas"),
    ("/performance", "Performance"),
    ("/failures", "Failures"),
    ("/walkforward", "Walk-forward"),
)
LAG_TIMEOUT_S = 3.0  # the health page waits this long for a broker that does not answer
RECENT_ACTIONS = 20
ACTIONS_HOURS = 24.0


@contextmanager
def _connection(request: Request) -> Iterator:
    with request.app.state.pool.connection() as conn:
        yield conn


def render(request: Request, template: str, status_code: int = 200, **context) -> HTMLResponse:
    """``template`` with what every page has: the nav bar, the page's path, the time."""
    context = {"nav": NAV, "page": request.url.path, "now": datetime.now(UTC)} | context
    context.setdefault("plots", False)
    return request.app.state.templates.TemplateResponse(
        request, template, context, status_code=status_code
    )


def _rows(request: Request) -> int:
    return request.app.state.settings.dashboard.page_rows


@router.get("/healthz", response_class=PlainTextResponse)
def healthz() -> str:
    """Liveness for probes: the process serves (Postgres is checked by the pages)."""
    return "ok"


@router.get("/", response_class=HTMLResponse)
def health(request: Request) -> HTMLResponse:
    from storage.dashboard_reads import ended_requests
    from storage.operations import REQUEST_STATES, pipeline_state
    from storage.reconcile import reconciler_actions

    now = datetime.now(UTC)
    with _connection(request) as conn:
        state = pipeline_state(conn, hours=ACTIONS_HOURS)
        ended = ended_requests(conn)
        since = now - timedelta(hours=ACTIONS_HOURS)
        keys = ("action", "subject", "detail", "created_at")
        actions = [
            dict(zip(keys, row, strict=True)) for row in reconciler_actions(conn, since=since)
        ]
    releases = [
        {"series_id": series, "released_at": at, "age_s": (now - at).total_seconds()}
        for series, at in state["last_releases"].items()
    ]
    lag, lag_error = _consumer_lag(request.app.state.settings)
    return render(
        request,
        "health.html",
        title="Health",
        lag=lag,
        lag_error=lag_error,
        states=[(name, state["pending_requests"].get(name, 0)) for name in REQUEST_STATES]
        + list(ended.items()),
        state=state,
        releases=releases,
        actions=actions[::-1][:RECENT_ACTIONS],  # newest first
    )


def _consumer_lag(settings) -> tuple[list[dict], str | None]:
    """(group, topic, lag) rows, or the reason they are unavailable."""
    from alphafactory.topics import CONSUMER_GROUPS
    from messaging.admin import consumer_lag
    from messaging.errors import BrokerUnavailableError

    try:
        lag = consumer_lag(settings.kafka, CONSUMER_GROUPS, timeout_s=LAG_TIMEOUT_S)
    except BrokerUnavailableError as error:
        return [], str(error)
    except Exception as error:  # noqa: BLE001  a broker failing mid-answer; the page lives on
        log.warning("consumer lag unavailable: %r", error)
        return [], f"the broker at {settings.kafka.bootstrap} failed to answer: {error!r}"
    return [{"group": g, "topic": t, "lag": lag.get(g)} for g, t in CONSUMER_GROUPS.items()], None


@router.get("/timeline", response_class=HTMLResponse)
def timeline(request: Request) -> HTMLResponse:
    from storage.dashboard_reads import step_times
    from storage.operations import recent_requests

    with _connection(request) as conn:
        requests = recent_requests(conn, limit=_rows(request))
        times = step_times(conn, [r.request_id for r in requests])
    triggers: dict[str, dict] = {}
    for summary in requests:  # newest decision first; one trigger wakes several strategies
        steps = times[summary.request_id]
        trigger = triggers.setdefault(
            summary.trigger_event_id,
            {"event_id": summary.trigger_event_id, "kind": summary.trigger, "steps": steps},
        )
        trigger.setdefault("requests", []).append({"summary": summary, "steps": _latencies(steps)})
    return render(request, "timeline.html", title="Timeline", triggers=list(triggers.values()))


STEPS = (
    ("released", "released_at"),
    ("stored", "stored_at"),
    ("requested", "registered_at"),
    ("generated", "generated_at"),
    ("evaluated", "evaluated_at"),
    ("allocated", "allocated_at"),
)


def _latencies(times) -> list[dict]:
    """Each step's time and the seconds since the step before that happened."""
    out, previous = [], None
    for name, field in STEPS:
        at = getattr(times, field)
        latency = (at - previous).total_seconds() if at and previous else None
        out.append({"name": name, "at": at, "latency_s": latency})
        previous = at or previous
    return out


@router.get("/requests/{request_id}", response_class=HTMLResponse)
def request_detail(request: Request, request_id: str) -> HTMLResponse:
    from storage.dashboard_reads import allocation_positions, step_times
    from storage.operations import request_alphas, request_summary

    with _connection(request) as conn:
        summary = request_summary(conn, request_id)
        if summary is None:
            return render(
                request, "missing.html", 404, title="Not found", what=f"request {request_id!r}"
            )
        alphas = request_alphas(conn, request_id)
        steps = _latencies(step_times(conn, [request_id])[request_id])
        weights = allocation_positions(conn, summary.allocation_id) if summary.allocation_id else {}
    return render(
        request,
        "request.html",
        title=f"Request {request_id}",
        summary=summary,
        steps=steps,
        alphas=alphas,
        weights=weights,
    )


@router.get("/positions", response_class=HTMLResponse)
def positions(request: Request) -> HTMLResponse:
    from storage.allocations import latest_class_exposures
    from storage.operations import latest_positions

    with _connection(request) as conn:
        rows = latest_positions(conn)
        exposures = latest_class_exposures(conn)
    strategies: dict[str, dict] = {}
    for row in rows:
        entry = strategies.setdefault(
            row.strategy_id, {"first": row, "weights": {}, "exposures": []}
        )
        entry["weights"][row.asset] = row.weight
    for exposure in exposures.itertuples():
        if exposure.strategy_id in strategies:
            strategies[exposure.strategy_id]["exposures"].append(exposure)
    figure = figures.positions_bars(rows) if rows else None
    return render(
        request,
        "positions.html",
        title="Positions",
        strategies=strategies,
        figure=figure,
        plots=bool(rows),
    )


@router.get("/alphas", response_class=HTMLResponse)
def alphas(request: Request) -> HTMLResponse:
    from storage.dashboard_reads import latest_pools

    with _connection(request) as conn:
        rows = latest_pools(conn, limit=_rows(request))
    pools: dict[str, list] = {}
    for alpha in rows:
        pools.setdefault(alpha.strategy_id, []).append(alpha)
    return render(request, "alphas.html", title="Alphas", pools=pools)


@router.get("/performance", response_class=HTMLResponse)
def performance(request: Request) -> HTMLResponse:
    results, error = request.app.state.performance.read(request.app.state.pool)
    plotted = [
        {"result": r, "figure": figures.growth_lines(r.series, r.strategy_id) if r.series else None}
        for r in results
    ]
    return render(
        request,
        "performance.html",
        title="Performance",
        strategies=plotted,
        error=error,
        plots=any(p["figure"] for p in plotted),
    )


@router.get("/failures", response_class=HTMLResponse)
def failures(request: Request) -> HTMLResponse:
    from storage.dashboard_reads import failed_requests
    from storage.dead_letters import list_dead_letters

    with _connection(request) as conn:
        letters = list_dead_letters(conn, limit=_rows(request))
        failed = failed_requests(conn, limit=_rows(request))
    return render(request, "failures.html", title="Failures", letters=letters, failed=failed)


@router.get("/walkforward", response_class=HTMLResponse)
def walkforward(request: Request) -> HTMLResponse:
    from storage.walkforward_reports import latest_report

    with _connection(request) as conn:
        stored = latest_report(conn)
    plots = figures.walkforward_figures(stored.series) if stored and stored.series else {}
    return render(
        request,
        "walkforward.html",
        title="Walk-forward",
        stored=stored,
        figures=plots,
        plots=bool(plots),
    )
