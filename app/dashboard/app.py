"""The dashboard's FastAPI application: :func:`create_app` wires the viewer role's pool
(opened when the server starts, closed when it stops), the pages, the static files and
the headers every response carries.

Read-only by construction: the pool logs in as the viewer role, which can only SELECT
(storage/admin.py), and every route is a GET (FastAPI answers 405 to anything else).
Plotly's script is served from the pinned Python package, never a CDN: the machines it
runs on may reach no outside site.
"""

from __future__ import annotations

import hashlib
import logging
import math
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import jinja2
import psycopg
from fastapi import FastAPI, Request
from fastapi.responses import PlainTextResponse, Response
from fastapi.templating import Jinja2Templates
from starlette.middleware.gzip import GZipMiddleware

from alphafactory.settings import Settings
from app.walkforward_html import num, pct

log = logging.getLogger("alphafactory.dashboard")
HERE = Path(__file__).resolve().parent
POOL_SIZE = 4  # pages are a few queries each; a handful of people look at once
# Everything comes from this server; plotly.js sets inline styles on the elements it
# draws, which 'unsafe-inline' for styles allows (no script may be inline).
CONTENT_SECURITY_POLICY = (
    "default-src 'none'; script-src 'self'; style-src 'self' 'unsafe-inline'; "
    "img-src 'self' data:; connect-src 'self'; font-src 'self'; base-uri 'none'; "
    "form-action 'none'; frame-ancestors 'none'"
)
SECURITY_HEADERS = {
    "Content-Security-Policy": CONTENT_SECURITY_POLICY,
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "X-Frame-Options": "DENY",
}


@dataclass(frozen=True)
class StaticFile:
    body: bytes
    media_type: str
    etag: str

    @classmethod
    def of(cls, body: bytes, media_type: str) -> StaticFile:
        return cls(body, media_type, '"' + hashlib.sha256(body).hexdigest()[:32] + '"')


def static_files() -> dict[str, StaticFile]:
    """URL name -> file: plotly.js under its version (so a new pin is a new URL and the
    old one may be cached for good), the dashboard's own script and style sheet."""
    import plotly
    from plotly.offline import get_plotlyjs

    js, css = "text/javascript; charset=utf-8", "text/css; charset=utf-8"
    return {
        f"plotly-{plotly.__version__}.min.js": StaticFile.of(get_plotlyjs().encode(), js),
        "dashboard.js": StaticFile.of((HERE / "static" / "dashboard.js").read_bytes(), js),
        "dashboard.css": StaticFile.of((HERE / "static" / "dashboard.css").read_bytes(), css),
    }


def templates() -> Jinja2Templates:
    import plotly

    environment = jinja2.Environment(
        loader=jinja2.FileSystemLoader(HERE / "templates"),
        autoescape=True,  # every page: what Postgres holds is data, never markup
        undefined=jinja2.StrictUndefined,
    )
    environment.filters.update(
        pct=lambda value: pct(_finite(value)),
        num=lambda value, digits=2: num(_finite(value), digits),
        when=when,
        clock=lambda value: "" if value is None else f"{value.astimezone(UTC):%H:%M:%S}",
        seconds=seconds,
    )
    environment.globals["plotly_js"] = f"/static/plotly-{plotly.__version__}.min.js"
    return Jinja2Templates(env=environment)


def _finite(value: float | None) -> float | None:
    """NaN (a metric of too short a series) shows as blank, as a missing value does."""
    return value if value is None or math.isfinite(value) else None


def when(value: datetime | None) -> str:
    return "" if value is None else value.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S")


def seconds(value: float | None) -> str:
    """A duration people read: 0.42 s, 12.3 s, 4 min 05 s, 3 h 10 min, 2 d 4 h."""
    if value is None:
        return ""
    if abs(value) < 60:
        return f"{value:.2f} s" if abs(value) < 10 else f"{value:.1f} s"
    whole = round(value)
    for unit, size, sub, sub_size in (("d", 86400, "h", 3600), ("h", 3600, "min", 60)):
        if abs(whole) >= size:
            return f"{whole // size} {unit} {whole % size // sub_size} {sub}"
    return f"{whole // 60} min {whole % 60:02d} s"


def create_app(settings: Settings, *, pool=None) -> FastAPI:
    """The dashboard application; ``pool`` (a test's) is used instead of opening one."""
    from app.dashboard import pages
    from app.dashboard.performance import PerformanceCache

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        from storage.db import open_pool

        opened = None
        if app.state.pool is None:
            opened = app.state.pool = open_pool(
                settings.postgres.dsn("viewer"),
                min_size=1,
                max_size=POOL_SIZE,
                name="alphafactory-dashboard",
                timeout_s=10.0,
            )
        log.info("dashboard at http://%s:%d/", settings.dashboard.host, settings.dashboard.port)
        try:
            yield
        finally:
            if opened is not None:
                opened.close()

    # no /docs, /redoc or /openapi.json: the pages are the interface
    app = FastAPI(
        title="alphafactory", docs_url=None, redoc_url=None, openapi_url=None, lifespan=lifespan
    )
    app.state.settings, app.state.pool, app.state.templates = settings, pool, templates()
    app.state.static = static_files()
    app.state.performance = PerformanceCache(settings)
    app.add_middleware(GZipMiddleware, minimum_size=2048)
    app.middleware("http")(security_headers)
    app.add_api_route("/static/{name}", static, methods=["GET"], include_in_schema=False)

    @app.exception_handler(psycopg.OperationalError)
    async def database_unavailable(request: Request, error: psycopg.OperationalError):
        # Postgres down or restarting: say so (the pool replaces broken connections)
        log.warning("%s: Postgres unavailable: %s", request.url.path, error)
        reason = (str(error).splitlines() or [type(error).__name__])[0][:300]
        return pages.render(
            request, "unavailable.html", 503, title="Unavailable", what="Postgres", error=reason
        )

    app.include_router(pages.router)
    return app


async def security_headers(request: Request, call_next) -> Response:
    response = await call_next(request)
    for name, value in SECURITY_HEADERS.items():
        response.headers.setdefault(name, value)
    return response


def static(name: str, request: Request) -> Response:
    """A file of :func:`static_files`, with its ETag and how long browsers may keep it."""
    found = request.app.state.static.get(name)
    if found is None:
        return PlainTextResponse("not found", status_code=404)
    headers = {"ETag": found.etag, "Cache-Control": "public, max-age=86400"}
    if name.startswith("plotly-"):  # its URL names its version: it never changes
        headers["Cache-Control"] = "public, max-age=31536000, immutable"
    if request.headers.get("if-none-match") == found.etag:
        return Response(status_code=304, headers=headers)
    return Response(found.body, media_type=found.media_type, headers=headers)
